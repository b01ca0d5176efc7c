//! The real webhook server over HTTPS on loopback: reviews, probes,
//! metrics, every bad input, stalled and untrusting clients, HTTP/2,
//! certificate rotation and shutdown.

mod server_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use server_support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

const UID: &str = "b6a1f2c0-1111-4222-8333-444455556666";

#[tokio::test]
async fn injectable_pod_gets_a_patch_that_applies() {
    let server = TestServer::start(fast_limits()).await;
    let mut client = server.h1().await;

    let pod = typical_pod(MESHED_NS);
    let (status, body) = client
        .mutate(review(UID, MESHED_NS, POD, pod.clone()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = response_of(&body);
    assert_eq!(response["uid"], UID);
    assert_eq!(response["allowed"], true);
    assert!(
        response["auditAnnotations"]
            .as_object()
            .is_some_and(|audit| !audit.is_empty()),
        "audit annotations summarise the injection: {response}"
    );

    let patch = patch_of(&response);
    assert!(!patch.0.is_empty());
    let mut injected = pod.clone();
    json_patch::patch(&mut injected, &patch).expect("the patch applies to the pod");
    let names = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .map(|containers| {
                containers
                    .iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let all: Vec<String> = [
        names(&injected["spec"]["initContainers"]),
        names(&injected["spec"]["containers"]),
    ]
    .concat();
    assert!(all.contains(&"weft-init".to_owned()), "{all:?}");
    assert!(all.contains(&"weft-proxy".to_owned()), "{all:?}");
    assert!(
        all.contains(&"web-svc".to_owned()),
        "the app survives: {all:?}"
    );
    assert!(
        injected["metadata"]["annotations"]["weft.dev/proxy-version"].is_string(),
        "{injected}"
    );

    // Re-submitting the injected pod is a no-op: no patch.
    let (status, body) = client.mutate(review(UID, MESHED_NS, POD, injected)).await;
    assert_eq!(status, StatusCode::OK);
    let response = response_of(&body);
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none(), "{response}");
}

#[tokio::test]
async fn skipped_pods_and_other_kinds_are_allowed_unchanged() {
    let server = TestServer::start(fast_limits()).await;
    let mut client = server.h1().await;

    let (status, body) = client
        .mutate(review("u-plain", PLAIN_NS, POD, typical_pod(PLAIN_NS)))
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = response_of(&body);
    assert_eq!(response["uid"], "u-plain");
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
    assert!(response.get("patchType").is_none());

    // A namespace the lookup never heard of counts as unannotated.
    let (_, body) = client
        .mutate(review("u-new", "brand-new", POD, typical_pod("brand-new")))
        .await;
    assert!(response_of(&body).get("patch").is_none());

    let deployment =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    let (status, body) = client
        .mutate(review(
            "u-deploy",
            MESHED_NS,
            ("apps", "deployments", "Deployment"),
            deployment,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = response_of(&body);
    assert_eq!(response["uid"], "u-deploy");
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());

    let metric =
        |outcome: &str| format!("weft_injector_admission_reviews_total{{outcome=\"{outcome}\"}}");
    assert_eq!(server.metric(&metric("skipped")).await, Some(2.0));
    assert_eq!(
        server.metric(&metric("allowed_other_kind")).await,
        Some(1.0)
    );
    assert_eq!(server.metric(&metric("injected")).await, Some(0.0));
    assert_eq!(
        server
            .metric("weft_injector_namespace_lookups_total{source=\"unknown\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn probes_and_metrics() {
    let server = TestServer::start(fast_limits()).await;
    let mut client = server.h1().await;

    assert_eq!(client.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(client.get("/readyz").await.0, StatusCode::OK);
    assert_eq!(server.admin_get("/healthz").await.0, StatusCode::OK);
    assert_eq!(server.admin_get("/readyz").await.0, StatusCode::OK);
    // /metrics is on the admin port only.
    assert_eq!(client.get("/metrics").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        client
            .send(Method::GET, "/mutate", "")
            .await
            .expect("get")
            .0,
        StatusCode::METHOD_NOT_ALLOWED
    );

    // Not ready while the namespace cache has not synced.
    server.namespaces.set_ready(false);
    let (status, text) = server.admin_get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("namespace cache synced: false"), "{text}");
    assert_eq!(
        client.get("/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    server.namespaces.set_ready(true);
    assert_eq!(server.admin_get("/readyz").await.0, StatusCode::OK);

    for i in 0..3 {
        let (status, _) = client
            .mutate(review(
                &format!("u{i}"),
                MESHED_NS,
                POD,
                typical_pod(MESHED_NS),
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, text) = server.admin_get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(
        server
            .metric("weft_injector_admission_reviews_total{outcome=\"injected\"}")
            .await,
        Some(3.0)
    );
    assert_eq!(
        server
            .metric("weft_injector_admission_review_duration_seconds_count")
            .await,
        Some(3.0)
    );
    assert_eq!(
        server
            .metric("weft_injector_namespace_lookups_total{source=\"cache\"}")
            .await,
        Some(3.0)
    );
    assert_eq!(
        server
            .metric("weft_injector_certificate_reloads_total{result=\"success\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn bad_input_gets_documented_answers() {
    let server = TestServer::start(fast_limits()).await;
    let mut client = server.h1().await;

    let cases: [(&str, Vec<u8>, StatusCode, &str); 6] = [
        ("not JSON", b"<xml/>".to_vec(), StatusCode::BAD_REQUEST, "not a valid AdmissionReview"),
        (
            "wrong apiVersion",
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "expected apiVersion admission.k8s.io/v1",
        ),
        (
            "wrong kind",
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "kind AdmissionReview",
        ),
        (
            "no request",
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "has no request",
        ),
        (
            "no uid",
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"namespace":"x"}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "has no uid",
        ),
        (
            "5 MiB",
            {
                // Valid JSON, just too big: the size alone decides.
                let mut big = review(UID, MESHED_NS, POD, typical_pod(MESHED_NS));
                big.extend(std::iter::repeat_n(b' ', 5 * 1024 * 1024));
                big
            },
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 4194304 bytes",
        ),
    ];
    for (name, body, expected, message) in cases {
        let (status, answer) = client.mutate(body).await;
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(status, expected, "{name}: {answer}");
        assert!(answer.contains(message), "{name}: {answer}");
    }

    // The connection survived every one of them.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": ["not", "a", "name"]}, "spec": 42});
    let (status, body) = client.mutate(review(UID, MESHED_NS, POD, pod)).await;
    assert_eq!(status, StatusCode::OK);
    let response = response_of(&body);
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
    let warnings = response["warnings"].as_array().expect("warnings");
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.starts_with("weft: pod not injected: "))),
        "{warnings:?}"
    );

    let metric =
        |outcome: &str| format!("weft_injector_admission_reviews_total{{outcome=\"{outcome}\"}}");
    assert_eq!(server.metric(&metric("bad_request")).await, Some(5.0));
    assert_eq!(server.metric(&metric("too_large")).await, Some(1.0));
    assert_eq!(server.metric(&metric("invalid_pod")).await, Some(1.0));
}

/// Reads until the server closes the connection (EOF or reset) and returns
/// what it sent first, or fails after `deadline`.
async fn read_until_closed<S>(stream: &mut S, deadline: Duration) -> Vec<u8>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(deadline, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closes a stalled connection");
    received
}

#[tokio::test]
async fn stalled_clients_are_disconnected() {
    let limits = fast_limits();
    let server = TestServer::start(limits).await;
    // Generous against a loaded machine, far below "never".
    let deadline = limits.request_timeout * 6;

    // TCP only, no TLS ClientHello.
    let started = Instant::now();
    let mut tcp = TcpStream::connect(server.https).await.expect("tcp");
    read_until_closed(&mut tcp, deadline).await;
    assert!(started.elapsed() >= limits.handshake_timeout);

    // TLS, then nothing at all: hyper is still waiting to learn the protocol.
    let started = Instant::now();
    let mut tls = tls_connect(server.https, &server.ca_pem, &[b"h2"])
        .await
        .expect("tls");
    read_until_closed(&mut tls, deadline).await;
    assert!(started.elapsed() >= limits.request_timeout);

    // TLS, then half the HTTP/2 preface.
    let started = Instant::now();
    let mut tls = tls_connect(server.https, &server.ca_pem, &[b"h2"])
        .await
        .expect("tls");
    tls.write_all(b"PRI * HTTP/2.0\r\n").await.expect("write");
    read_until_closed(&mut tls, deadline).await;
    assert!(started.elapsed() >= limits.request_timeout);

    // The admin port too, without TLS.
    let started = Instant::now();
    let mut tcp = TcpStream::connect(server.admin).await.expect("tcp");
    tcp.write_all(b"GET /metr").await.expect("write");
    read_until_closed(&mut tcp, deadline).await;
    assert!(started.elapsed() >= limits.request_timeout);

    // TLS, then half a request head.
    let started = Instant::now();
    let mut tls = tls_connect(server.https, &server.ca_pem, &[b"http/1.1"])
        .await
        .expect("tls");
    tls.write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: appl")
        .await
        .expect("write");
    read_until_closed(&mut tls, deadline).await;
    assert!(started.elapsed() >= limits.request_timeout);

    // TLS, the whole head, then half the body.
    let started = Instant::now();
    let mut tls = tls_connect(server.https, &server.ca_pem, &[b"http/1.1"])
        .await
        .expect("tls");
    tls.write_all(
        b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"apiVersion\":",
    )
    .await
    .expect("write");
    let answer = read_until_closed(&mut tls, deadline).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= limits.request_timeout);

    assert_eq!(
        server.metric("weft_injector_request_timeouts_total").await,
        Some(1.0)
    );
    assert_eq!(
        server
            .metric("weft_injector_tls_handshake_failures_total")
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn a_client_that_does_not_trust_our_ca_fails_the_handshake() {
    let server = TestServer::start(fast_limits()).await;
    let stranger = issue("some-other-ca");
    let result = tls_connect(server.https, &stranger.ca_pem, &[b"http/1.1"]).await;
    let error = result.expect_err("an unknown CA must not verify");
    assert!(
        error.to_string().contains("UnknownIssuer")
            || error.to_string().contains("invalid peer certificate"),
        "{error}"
    );
    // The server still serves clients that do trust it.
    let mut client = server.h1().await;
    assert_eq!(client.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn http2_reviews_work() {
    let server = TestServer::start(fast_limits()).await;
    let mut sender = h2(server.https, &server.ca_pem).await;
    let request = http::Request::post("https://localhost/mutate")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(review(
            UID,
            MESHED_NS,
            POD,
            typical_pod(MESHED_NS),
        ))))
        .expect("request");
    let response = sender.send_request(request).await.expect("h2 response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert!(!patch_of(&response_of(&body)).0.is_empty());
}

#[tokio::test]
async fn certificate_rotation_fails_no_request() {
    let mut server = TestServer::start(fast_limits()).await;
    let old_ca = server.ca_pem.clone();

    // Keep-alive connections established on the old certificate, each
    // reviewing in a loop through the rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for worker in 0..4 {
        let mut client = server.h1().await;
        let (stop, ok) = (stop.clone(), ok.clone());
        loops.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = review(
                    &format!("w{worker}-{i}"),
                    MESHED_NS,
                    POD,
                    typical_pod(MESHED_NS),
                );
                match client.send(Method::POST, "/mutate", body).await {
                    Ok((StatusCode::OK, _)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((status, body)) => failures.push(format!("{status}: {body:?}")),
                    Err(error) => failures.push(error.to_string()),
                }
                i += 1;
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A broken update is refused and the old pair kept.
    let reloads =
        |result: &str| format!("weft_injector_certificate_reloads_total{{result=\"{result}\"}}");
    let before_broken = server.volume.path("tls.crt");
    assert!(before_broken.exists());
    let fresh = issue("weft-rotated-ca");
    server.volume.write(&Issued {
        ca_pem: fresh.ca_pem.clone(),
        cert_pem: fresh.cert_pem.clone(),
        key_pem: issue("unrelated").key_pem, // a key that is not the certificate's
    });
    wait_for_metric(&server, &reloads("failure"), 1.0).await;
    assert!(
        H1::connect(server.https, &old_ca).await.is_ok(),
        "the old certificate is still served after a bad update"
    );

    // The real rotation, to a certificate from a new CA.
    server.volume.write(&fresh);
    wait_for_metric(&server, &reloads("success"), 2.0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut new_client = H1::connect(server.https, &fresh.ca_pem)
        .await
        .expect("a client trusting only the new CA connects after the reload");
    let (status, _) = new_client
        .mutate(review(UID, MESHED_NS, POD, typical_pod(MESHED_NS)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        H1::connect(server.https, &old_ca).await.is_err(),
        "new handshakes present the new certificate"
    );

    stop.store(true, Ordering::Relaxed);
    for handle in loops {
        let failures = handle.await.expect("worker");
        assert!(
            failures.is_empty(),
            "requests failed during rotation: {failures:?}"
        );
    }
    assert!(ok.load(Ordering::Relaxed) > 0);
    server.shutdown().await;
}

async fn wait_for_metric(server: &TestServer, series: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if server.metric(series).await == Some(value) {
            return;
        }
        assert!(Instant::now() < deadline, "{series} never reached {value}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn shutdown_stops_accepting_and_closes_idle_connections() {
    let mut server = TestServer::start(fast_limits()).await;
    let mut tls = tls_connect(server.https, &server.ca_pem, &[b"http/1.1"])
        .await
        .expect("tls");
    let started = Instant::now();
    server.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    // The idle keep-alive connection was closed, and nobody listens any more.
    read_until_closed(&mut tls, Duration::from_secs(2)).await;
    assert!(TcpStream::connect(server.https).await.is_err());
}
