//! Identity end to end: the real `weft-control` binary, running with the
//! least-privilege RBAC that `weft install` renders, against a real
//! kube-apiserver (the e2e cluster), with real ServiceAccount tokens.
//!
//! Each test starts its own cluster (the first run builds its binaries, see
//! `e2e/README.md`): `cargo test -p weft-control --test identity_e2e`. The
//! throughput figure: add `-- --ignored --nocapture certification_throughput`
//! (with `--release`).

mod identity_support;

use std::time::{Duration, SystemTime};

use futures::{StreamExt as _, TryStreamExt as _};
use http::StatusCode;
use identity_support::*;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use weft_certs::summarize;
use weft_control::identity::{CertifyResponse, ErrorBody};
use weft_e2e::Cluster;

fn error_of(body: &str) -> String {
    serde_json::from_str::<ErrorBody>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| format!("<not an error body: {body}>"))
}

/// The count of `weft_identity_certify_total{result="<result>"}`.
fn certify_count(metrics: &str, result: &str) -> u64 {
    let prefix = format!("weft_identity_certify_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A cluster with namespace `shop` and ServiceAccounts `accounts` in it, a
/// mesh PKI, and weft-control running with exactly its rendered RBAC.
async fn start(accounts: &[&str]) -> Result<(Cluster, MeshPki, Control), BoxError> {
    let cluster = Cluster::start().await?;
    let kubectl = cluster.kubectl();
    kubectl.run(&["create", "namespace", "shop"]).await?;
    for sa in accounts {
        kubectl
            .run(&["create", "serviceaccount", sa, "-n", "shop"])
            .await?;
    }
    let pki = MeshPki::new()?;
    let kubeconfig = least_privilege_kubeconfig(&cluster, &pki).await?;
    let control = Control::start(&pki, &kubeconfig).await?;
    Ok((cluster, pki, control))
}

#[tokio::test]
async fn identity_certifies_only_what_the_api_server_vouches_for() -> Result<(), BoxError> {
    let (cluster, pki, control) = start(&["web", "db", "gone"]).await?;
    let anchors = pki.anchor.cert_pem().to_owned();
    // The TLS connection itself proves identity serves a certificate that
    // chains to the anchor for weft-identity.weft.svc.cluster.local.
    let mut client = IdentityClient::connect(control.identity, &anchors).await?;
    let client_k8s = cluster.client();
    let web_uri = "spiffe://cluster.local/ns/shop/sa/web";
    let db_uri = "spiffe://cluster.local/ns/shop/sa/db";

    // A real token for the identity audience and a CSR for its own identity.
    let web_token = token(&client_k8s, "shop", "web", Some(AUDIENCE)).await?;
    let (status, body) = client.certify(&web_token, &csr_for(web_uri)?).await?;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", control.log_text());
    let answer: CertifyResponse = serde_json::from_str(&body)?;
    let leaf = &summarize(&answer.certificate)?[0];
    assert_eq!(leaf.uris, [web_uri]);
    assert!(leaf.dns_names.is_empty());
    verify_chain(&anchors, &answer)?;
    let lifetime = leaf.not_after.duration_since(SystemTime::now())?;
    assert!(lifetime > Duration::from_secs(23 * 3600) && lifetime <= Duration::from_secs(86_400));

    // Over HTTP/2 too (what the proxy speaks), on one connection.
    let mut h2 = IdentityClient::connect_h2(control.identity, &anchors).await?;
    let (status, body) = h2.certify(&web_token, &csr_for(web_uri)?).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    verify_chain(&anchors, &serde_json::from_str(&body)?)?;

    // The same token cannot get another ServiceAccount's identity.
    let (status, body) = client.certify(&web_token, &csr_for(db_uri)?).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(error_of(&body).contains(web_uri), "{body}");

    // A token for the API server's own audience is not for identity.
    let api_token = token(&client_k8s, "shop", "web", None).await?;
    let (status, body) = client.certify(&api_token, &csr_for(web_uri)?).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // An expired token, signed with the cluster's real key — and its twin,
    // identical but for a future expiry, which passes: the expiry alone is
    // what the API server refuses.
    let accounts: Api<ServiceAccount> = Api::namespaced(client_k8s.clone(), "shop");
    let uid = accounts.get("web").await?.metadata.uid.ok_or("no uid")?;
    let now = SystemTime::now();
    let expired = signed_token(
        &cluster,
        "shop",
        "web",
        &uid,
        now - Duration::from_secs(600),
    )?;
    let (status, body) = client.certify(&expired, &csr_for(web_uri)?).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let fresh = signed_token(
        &cluster,
        "shop",
        "web",
        &uid,
        now + Duration::from_secs(600),
    )?;
    let (status, body) = client.certify(&fresh, &csr_for(web_uri)?).await?;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A token signed by anyone else's key, and plain garbage.
    let stranger = rcgen::KeyPair::generate()?.serialize_pem();
    let forged = sign_es256(
        &stranger,
        &serde_json::json!({"iss": CLUSTER_ISSUER, "sub": "system:serviceaccount:shop:web",
            "aud": [AUDIENCE], "exp": 4_000_000_000u64}),
    )?;
    for bad in [forged.as_str(), "not-a-token"] {
        let (status, body) = client.certify(bad, &csr_for(web_uri)?).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }

    // A token whose ServiceAccount has since been deleted.
    let gone_token = token(&client_k8s, "shop", "gone", Some(AUDIENCE)).await?;
    cluster
        .kubectl()
        .run(&["delete", "serviceaccount", "gone", "-n", "shop"])
        .await?;
    let gone_uri = "spiffe://cluster.local/ns/shop/sa/gone";
    let (status, body) = client.certify(&gone_token, &csr_for(gone_uri)?).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // A malformed CSR, and a body that is not the request.
    let broken =
        "-----BEGIN CERTIFICATE REQUEST-----\nMIIBAA==\n-----END CERTIFICATE REQUEST-----\n";
    let (status, body) = client.certify(&web_token, broken).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = client.post(b"{}".to_vec()).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let metrics = control.metrics().await?;
    assert_eq!(certify_count(&metrics, "issued"), 3, "{metrics}");
    assert_eq!(certify_count(&metrics, "forbidden"), 1);
    assert_eq!(certify_count(&metrics, "unauthenticated"), 5);
    assert_eq!(certify_count(&metrics, "bad_request"), 2);
    assert_eq!(certify_count(&metrics, "error"), 0);
    assert!(metrics.contains("weft_identity_issuer_expiry_timestamp_seconds "));
    Ok(())
}

#[tokio::test]
async fn a_rotated_issuer_signs_from_the_next_request_on() -> Result<(), BoxError> {
    let (cluster, pki, control) = start(&["web"]).await?;
    let anchors = pki.anchor.cert_pem().to_owned();
    let web_token = token(&cluster.client(), "shop", "web", Some(AUDIENCE)).await?;
    let web_uri = "spiffe://cluster.local/ns/shop/sa/web";

    let new_issuer = pki.rotate_issuer()?;
    // The reloader polls every 2 s; the old issuer signs until then.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // A new connection each time: identity's own certificate is
        // re-issued from the new issuer too, and must still verify.
        let mut client = IdentityClient::connect(control.identity, &anchors).await?;
        let (status, body) = client.certify(&web_token, &csr_for(web_uri)?).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer: CertifyResponse = serde_json::from_str(&body)?;
        verify_chain(&anchors, &answer)?;
        if answer.chain == [new_issuer.clone()] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new issuer was not used:\n{}",
            control.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let metrics = control.metrics().await?;
    assert!(
        metrics.contains("weft_identity_issuer_reloads_total{result=\"success\"} 2"),
        "{metrics}"
    );
    Ok(())
}

/// Certification requests per second through identity, TokenReview
/// included, printed (not asserted). Each request carries a token the API
/// server has not seen (its token cache would otherwise answer), as when
/// many proxies start at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: needs the local cluster; run with --ignored --nocapture"]
async fn certification_throughput() -> Result<(), BoxError> {
    const REQUESTS: usize = 2_000;
    const CONNECTIONS: usize = 32;

    let (cluster, pki, control) = start(&["web"]).await?;
    let anchors = pki.anchor.cert_pem().to_owned();
    let web_uri = "spiffe://cluster.local/ns/shop/sa/web";

    let client = cluster.client();
    // Minted a few at a time: the API server limits requests in flight.
    let tokens: Vec<String> = futures::stream::iter(0..REQUESTS)
        .map(|_| token(&client, "shop", "web", Some(AUDIENCE)))
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let csr = csr_for(web_uri)?;

    for (label, distinct) in [
        ("distinct tokens", true),
        ("one token (API server cache)", false),
    ] {
        #[allow(clippy::disallowed_types)] // wall time of the whole run
        let started = std::time::Instant::now();
        let mut workers = Vec::new();
        for worker in 0..CONNECTIONS {
            let mine: Vec<String> = tokens
                .iter()
                .skip(worker)
                .step_by(CONNECTIONS)
                .map(|t| {
                    if distinct {
                        t.clone()
                    } else {
                        tokens[0].clone()
                    }
                })
                .collect();
            let (anchors, csr, addr) = (anchors.clone(), csr.clone(), control.identity);
            workers.push(tokio::spawn(async move {
                let mut client = IdentityClient::connect(addr, &anchors).await?;
                let mut latencies = Vec::with_capacity(mine.len());
                for token in mine {
                    #[allow(clippy::disallowed_types)]
                    let sent = std::time::Instant::now();
                    let (status, body) = client.certify(&token, &csr).await?;
                    if status != StatusCode::OK {
                        return Err::<Vec<Duration>, BoxError>(format!("{status}: {body}").into());
                    }
                    latencies.push(sent.elapsed());
                }
                Ok(latencies)
            }));
        }
        let mut latencies = Vec::new();
        for worker in workers {
            latencies.extend(worker.await??);
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
        println!(
            "identity certify, {label}: {} requests over {CONNECTIONS} connections in {:.2} s = {:.0} req/s; latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latencies.len(),
            elapsed.as_secs_f64(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.9).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            pct(1.0).as_secs_f64() * 1e3,
        );
    }
    Ok(())
}
