//! Mutual TLS between meshed pods, end to end: the real `weft-control`
//! (identity checking each proxy's ServiceAccount token with a TokenReview
//! against the local API server; destination answering from its watch of
//! the cluster's pods), real pod-bound tokens from the API server, and rig
//! pods running the real `weft-proxy init` and `weft-proxy run` as UID 2102.
//!
//! How the pieces meet is in `mesh_support/pods.rs`: weft-control runs on
//! the host's loopback, and a "control" pod forwards the Services' ports to
//! it. Needs root (the rig) and tcpdump; `WEFT_SKIP_ROOT_TESTS=1` skips it
//! when not root. `cargo test -p weft-e2e --test mesh_mtls`.

mod mesh_support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use mesh_support::app::{App, Client, request};
use mesh_support::metrics::metric;
use mesh_support::pods::{
    ControlDoor, DESTINATION_PORT, IDENTITY_PORT, Identity, Meshed, unreachable,
};
use mesh_support::tls::{Leaf, der_of, probe, uris_of};
use mesh_support::{
    APP_PORT, Env, NAMESPACE, Step as _, TRUST_DOMAIN, TestResult, server_name, spiffe,
};
use tokio::time::Instant;
use weft_certs::SpiffeId;
use weft_e2e::ControlOptions;
use weft_testrig::capture::contains;
use weft_testrig::{Capture, Rig};

/// How long a proxy gets to fetch its first certificate (debug build, busy
/// 2-core machine, a TokenReview each).
const READY: Duration = Duration::from_secs(60);
/// Only ever sent inside mesh TLS.
const SECRET_PATH: &str = "/vote/weft-secret-path-7f3a";
const SECRET_BODY: &str = "weft-secret-body-91c2: :doughnut:";
/// Sent in plaintext to an unmeshed pod, to prove the capture would show a
/// leak.
const PLAIN_MARKER: &str = "/leaderboard/weft-plaintext-control-5d1e";
/// The unmeshed pod's port.
const PLAIN_PORT: u16 = 9090;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshed_pods_talk_mutual_tls_as_their_service_accounts() {
    let Some(rig) = Rig::new_or_skip().step("the rig") else {
        return;
    };
    let env = Env::start(ControlOptions::default())
        .await
        .step("cluster and weft-control");
    let door = ControlDoor::open(rig.pod("control").step("the control pod"), &env.control)
        .step("the control pod");
    let (web, voting) = meshed_pair(&rig, &env, &door).await.step("web and voting");

    // 1. web's application calls voting's, encrypted on the wire and
    //    attributed to both ServiceAccounts in the metrics.
    mesh_traffic_is_encrypted_and_attributed(&rig, &env, &web, &voting).await;
    // 5. Whoever does not hold the identity it must show is refused.
    an_impostor_behind_a_meshed_address_is_refused(&rig, &env, &door, &web).await;
    bad_client_certificates_are_refused_inbound(&rig, &env, &voting).await;
    // 2. A token buys its own ServiceAccount's identity, no other.
    a_token_cannot_buy_another_identity(&rig, &env, &door).await;
    // web, voting and the impostor, each once: the thief got nothing.
    assert_eq!(
        env.control_metric("weft_identity_certify_total", &[("result", "issued")])
            .await
            .step("weft-control's metrics"),
        3.0
    );
}

/// Requests from web's application to voting's cross both proxies over
/// mutual TLS: both count them with `tls="true"` and the other's SPIFFE
/// ID, and a capture on web's veth shows neither path nor body, while it
/// does show a plaintext request to an unmeshed pod.
async fn mesh_traffic_is_encrypted_and_attributed(
    rig: &Rig,
    env: &Env,
    web: &Meshed<'_>,
    voting: &Meshed<'_>,
) {
    let plain = rig.pod("plain").step("the unmeshed pod");
    let plain_app = App::start(&plain, PLAIN_PORT).step("the unmeshed app");
    let plain_addr = SocketAddr::from((plain.ip(), PLAIN_PORT));
    let voting_name = env.pod_of("voting").await.step("voting's pod");

    // Everything web's pod sends or receives, as the bridge sees it.
    let capture_dir = tempfile::tempdir().step("capture folder");
    let capture = Capture::start(
        rig.bridge_netns(),
        &web.pod.bridge_port(),
        &capture_dir.path().join("web.pcap"),
    )
    .step("tcpdump");

    let (status, body) = request(&web.pod, voting.app_addr(), "GET", SECRET_PATH, "")
        .await
        .step("GET from web to voting");
    assert_eq!(status, 200);
    assert_eq!(body, format!("voting {SECRET_PATH}").as_bytes());
    let (status, echoed) = request(&web.pod, voting.app_addr(), "POST", "/echo", SECRET_BODY)
        .await
        .step("POST from web to voting");
    assert_eq!((status, &echoed[..]), (200, SECRET_BODY.as_bytes()));
    let (status, _) = request(&web.pod, plain_addr, "GET", PLAIN_MARKER, "")
        .await
        .step("GET from web to the unmeshed pod");
    assert_eq!(status, 200);
    assert_eq!((voting.app.requests(), plain_app.requests()), (2, 1));

    let (web_id, voting_id) = (spiffe("web"), spiffe("voting"));
    web.wait_metrics("counted 2 mesh responses from voting", |t| {
        metric(
            t,
            "response_total",
            &[
                ("direction", "outbound"),
                ("tls", "true"),
                ("server_id", &voting_id),
                ("dst_namespace", NAMESPACE),
                ("dst_deployment", "voting"),
                ("dst_pod", &voting_name),
                ("dst_serviceaccount", "voting"),
                ("dst_port", "8080"),
                ("classification", "success"),
            ],
        ) == 2.0
            && metric(
                t,
                "response_total",
                &[
                    ("direction", "outbound"),
                    ("tls", "false"),
                    ("dst_port", "9090"),
                ],
            ) == 1.0
    })
    .await
    .step("web's metrics");
    voting
        .wait_metrics("counted 2 mesh requests from web", |t| {
            metric(
                t,
                "response_total",
                &[
                    ("direction", "inbound"),
                    ("tls", "true"),
                    ("client_id", &web_id),
                    ("dst_port", "8080"),
                    ("classification", "success"),
                ],
            ) == 2.0
                && metric(t, "response_total", &[("tls", "false")]) == 0.0
        })
        .await
        .step("voting's metrics");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let wire = capture.finish().step("the capture");
    assert!(
        contains(&wire, PLAIN_MARKER),
        "the capture ({} bytes) lacks the plaintext request to the unmeshed pod: it proves nothing",
        wire.len()
    );
    assert!(
        contains(&wire, &server_name("voting")),
        "no mesh ClientHello for voting in the capture"
    );
    assert!(
        !contains(&wire, "weft-secret-path"),
        "the mesh request's path crossed in plaintext"
    );
    assert!(
        !contains(&wire, SECRET_BODY),
        "the mesh request's body crossed in plaintext"
    );
}

/// A pod that destination knows as `voting`, whose proxy holds a genuine
/// certificate for `web`: web's outbound proxy refuses to talk to it, and
/// no byte of the request reaches its application.
async fn an_impostor_behind_a_meshed_address_is_refused(
    rig: &Rig,
    env: &Env,
    door: &ControlDoor<'_>,
    web: &Meshed<'_>,
) {
    let pod = rig.pod("impostor").step("the impostor's pod");
    env.create_pod("voting-impostor", "voting")
        .await
        .step("the impostor's Pod object");
    env.set_ip("voting-impostor", pod.ip())
        .await
        .step("the impostor's IP");
    env.wait_meshed(SocketAddr::from((pod.ip(), APP_PORT)), "voting")
        .await
        .step("destination knows the impostor");
    let web_name = env.pod_of("web").await.step("web's pod");
    let web_token = env
        .token("web", &web_name)
        .await
        .step("a web token for the impostor");
    let who = Identity {
        service_account: "web",
        pod_name: "voting-impostor",
        token: &web_token,
    };
    let mut impostor = env.mesh(pod, door, &who).step("the impostor's proxy");
    impostor.wait_ready(READY).await.step("impostor ready");
    let (status, _) = request(&web.pod, impostor.app_addr(), "GET", "/vote", "")
        .await
        .step("GET from web to the impostor");
    assert_eq!(status, 502, "web talked to an impostor");
    assert_eq!(impostor.app.requests(), 0);
    web.wait_metrics("counted the failed handshake", |t| {
        metric(
            t,
            "tls_handshake_failures_total",
            &[("direction", "outbound")],
        ) == 1.0
    })
    .await
    .step("web's metrics");
}

/// Clients that voting's inbound proxy must refuse, probing from an
/// unmeshed pod: a certificate from another CA, an expired one and one of
/// another trust domain (both signed by the mesh's real issuer), and none
/// at all. The same probe with a genuine certificate is served, so the
/// refusals were the certificates', not the probe's.
async fn bad_client_certificates_are_refused_inbound(rig: &Rig, env: &Env, voting: &Meshed<'_>) {
    let prober = rig.pod("probe").step("the probe pod");
    let issuer = env.pki.issuer().step("the issuer");
    let web_spiffe = SpiffeId::new(TRUST_DOMAIN, NAMESPACE, "web").step("web's SPIFFE ID");
    let hour = Duration::from_secs(3600);
    let other_ca = Leaf::from_another_ca(&web_spiffe).step("a leaf from another CA");
    let expired = Leaf::expired(&issuer, &web_spiffe).step("an expired leaf");
    let foreign_id = SpiffeId::new("evil.example", NAMESPACE, "web").step("a foreign SPIFFE ID");
    let foreign = Leaf::issue(&issuer, &foreign_id, hour, SystemTime::now()).step("a foreign leaf");
    let reached = voting.app.requests();
    for (what, leaf) in [
        ("another CA", Some(&other_ca)),
        ("an expired certificate", Some(&expired)),
        ("another trust domain", Some(&foreign)),
        ("no certificate", None),
    ] {
        let seen = probe(&prober, voting.app_addr(), &server_name("voting"), leaf)
            .await
            .step("the probe");
        assert!(
            seen.outcome.is_err(),
            "{what} was served: {:?}",
            seen.outcome
        );
    }
    voting
        .wait_metrics("counted 4 refused handshakes", |t| {
            metric(t, "inbound_refused_total", &[("reason", "tls_handshake")]) == 4.0
                && metric(
                    t,
                    "tls_handshake_failures_total",
                    &[("direction", "inbound")],
                ) == 4.0
        })
        .await
        .step("voting's metrics");
    assert_eq!(
        voting.app.requests(),
        reached,
        "a refused client reached the app"
    );

    let valid = Leaf::issue(&issuer, &web_spiffe, hour, SystemTime::now()).step("a valid leaf");
    let seen = probe(
        &prober,
        voting.app_addr(),
        &server_name("voting"),
        Some(&valid),
    )
    .await
    .step("the probe");
    assert_eq!(seen.outcome, Ok(200));
    assert_eq!(voting.app.requests(), reached + 1);
    let leaf = seen
        .server_chain
        .first()
        .ok_or("voting presented no certificate")
        .step("voting's leaf");
    assert_eq!(uris_of(leaf).step("voting's URIs"), [spiffe("voting")]);
    let issuer_der = der_of(&env.pki.issuer_cert_pem().step("the issuer")).step("the issuer");
    assert_eq!(seen.server_chain.get(1), Some(&issuer_der));
}

/// A proxy given web's (real, pod-bound) token but voting's ServiceAccount
/// asks identity for voting's certificate: identity answers 403, counts a
/// forbidden request, and the proxy never becomes ready.
async fn a_token_cannot_buy_another_identity(rig: &Rig, env: &Env, door: &ControlDoor<'_>) {
    let pod = rig.pod("thief").step("the thief's pod");
    let web_name = env.pod_of("web").await.step("web's pod");
    let web_token = env.token("web", &web_name).await.step("web's token");
    let forbidden_before = env
        .control_metric("weft_identity_certify_total", &[("result", "forbidden")])
        .await
        .step("weft-control's metrics");
    let who = Identity {
        service_account: "voting",
        pod_name: &web_name,
        token: &web_token,
    };
    let thief = env.mesh(pod, door, &who).step("the thief's proxy");
    thief
        .wait_metrics("was refused by identity", |t| {
            metric(t, "identity_certify_total", &[("result", "forbidden")]) >= 1.0
        })
        .await
        .step("the thief's metrics");
    assert_eq!(
        thief.admin("/ready").await.step("the thief's /ready").0,
        503
    );
    let metrics = thief.metrics().await.step("the thief's metrics");
    assert_eq!(
        metric(&metrics, "identity_cert_expiration_timestamp_seconds", &[]),
        0.0
    );
    assert_eq!(
        metric(&metrics, "identity_certify_total", &[("result", "issued")]),
        0.0
    );
    let forbidden = env
        .control_metric("weft_identity_certify_total", &[("result", "forbidden")])
        .await
        .step("weft-control's metrics");
    assert!(
        forbidden > forbidden_before,
        "identity counted no forbidden request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_survives_the_control_plane_going_down() {
    const OUTAGE: Duration = Duration::from_secs(12);
    let Some(rig) = Rig::new_or_skip().step("the rig") else {
        return;
    };
    let mut env = Env::start(ControlOptions::default())
        .await
        .step("cluster and weft-control");
    let mut door = ControlDoor::open(rig.pod("control").step("the control pod"), &env.control)
        .step("the control pod");
    let (web, voting) = meshed_pair(&rig, &env, &door).await.step("web and voting");
    let prober = rig.pod("probe").step("the probe pod");

    let mut sent = 0u32;
    let mut keep_alive = Client::connect(&web.pod, voting.app_addr())
        .await
        .step("a keep-alive connection");
    for _ in 0..3 {
        let (status, _) = request(&web.pod, voting.app_addr(), "GET", "/vote", "")
            .await
            .step("GET before the outage");
        assert_eq!(status, 200);
        sent += 1;
    }
    assert_eq!(
        keep_alive
            .send("GET", "/keep", "")
            .await
            .step("keep-alive GET before the outage")
            .0,
        200
    );
    sent += 1;

    // Both proxies certified through the door (the only way to the host).
    assert!(
        door.connections() >= 2,
        "{} connections",
        door.connections()
    );
    // The control plane goes: the process is killed, its Services lose
    // their endpoint.
    env.control.kill();
    door.close();
    for port in [IDENTITY_PORT, DESTINATION_PORT] {
        let service = SocketAddr::from((door.ip(), port));
        assert!(
            unreachable(&prober, service).await,
            "{service} still answers"
        );
    }

    // New connections (a destination lookup and a mesh handshake each) and
    // an open one keep working on the certificates the proxies hold and on
    // destination's last answer, which a proxy keeps using while its watch
    // is down (docs/architecture.md, "Mesh TLS": up to 5 min). The outage
    // spans several of the watch's reconnection attempts.
    let started = Instant::now();
    while started.elapsed() < OUTAGE {
        let path = format!("/vote/{sent}");
        let (status, body) = request(&web.pod, voting.app_addr(), "GET", &path, "")
            .await
            .step("GET during the outage");
        assert_eq!(status, 200, "{path} failed during the outage: {body:?}");
        let (status, _) = keep_alive
            .send("GET", "/keep", "")
            .await
            .step("keep-alive GET during the outage");
        assert_eq!(status, 200, "the open connection failed during the outage");
        sent += 2;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "control plane down for {:.1} s: {sent} requests, all served over mesh TLS",
        started.elapsed().as_secs_f64()
    );
    let total = f64::from(sent);
    assert_eq!(voting.app.requests(), u64::from(sent));
    voting
        .wait_metrics("counted every request as mesh TLS from web", |t| {
            metric(
                t,
                "response_total",
                &[
                    ("direction", "inbound"),
                    ("tls", "true"),
                    ("client_id", &spiffe("web")),
                    ("classification", "success"),
                ],
            ) == total
        })
        .await
        .step("voting's metrics");
    web.wait_metrics("counted every request as mesh TLS to voting", |t| {
        metric(
            t,
            "response_total",
            &[
                ("direction", "outbound"),
                ("tls", "true"),
                ("server_id", &spiffe("voting")),
                ("classification", "success"),
            ],
        ) == total
    })
    .await
    .step("web's metrics");
    // Both stay ready: they hold valid certificates.
    assert_eq!(web.admin("/ready").await.step("web's /ready").0, 200);
    assert_eq!(voting.admin("/ready").await.step("voting's /ready").0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_issuer_under_traffic_fails_no_request() {
    // Short-lived certificates, so both proxies renew (at about 42 s) from
    // the new issuer while the test watches.
    const ROTATION_DEADLINE: Duration = Duration::from_secs(150);
    let Some(rig) = Rig::new_or_skip().step("the rig") else {
        return;
    };
    let env = Env::start(ControlOptions {
        certificate_lifetime: Some("1m".to_owned()),
        ..ControlOptions::default()
    })
    .await
    .step("cluster and weft-control");
    let door = ControlDoor::open(rig.pod("control").step("the control pod"), &env.control)
        .step("the control pod");
    let (web, voting) = meshed_pair(&rig, &env, &door).await.step("web and voting");
    let prober = rig.pod("probe").step("the probe pod");
    let old_issuer =
        der_of(&env.pki.issuer_cert_pem().step("the first issuer")).step("the first issuer");
    for pod in [&web, &voting] {
        let seen = probe(&prober, pod.app_addr(), &server_name(pod.pod.name()), None)
            .await
            .step("the probe");
        assert_eq!(
            seen.server_chain.get(1),
            Some(&old_issuer),
            "{}",
            pod.pod.name()
        );
    }

    let stop = std::sync::atomic::AtomicBool::new(false);
    let traffic = async {
        let mut keep_alive = Client::connect(&web.pod, voting.app_addr()).await?;
        let (mut served, mut failures) = (0u64, Vec::new());
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let fresh = request(&web.pod, voting.app_addr(), "GET", "/vote", "").await;
            let kept = keep_alive.send("GET", "/keep", "").await;
            for outcome in [fresh, kept] {
                match outcome {
                    Ok((200, _)) => served += 1,
                    Ok((status, body)) => failures.push(format!("{status}: {body:?}")),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((served, failures))
    };
    let rotation = async {
        let result = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let new_issuer = der_of(&env.pki.rotate_issuer()?)?;
            let started = Instant::now();
            // weft-control reloads within its 2 s poll ...
            while env
                .control_metric(
                    "weft_identity_issuer_reloads_total",
                    &[("result", "success")],
                )
                .await?
                < 2.0
            {
                if started.elapsed() > Duration::from_secs(30) {
                    return Err("weft-control never loaded the new issuer".into());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // ... and each proxy presents a certificate from it after its
            // next renewal.
            for pod in [&web, &voting] {
                loop {
                    let name = server_name(pod.pod.name());
                    let seen = probe(&prober, pod.app_addr(), &name, None).await?;
                    if seen.server_chain.get(1) == Some(&new_issuer) {
                        break;
                    }
                    if started.elapsed() > ROTATION_DEADLINE {
                        return Err(format!(
                            "{} still presents the old issuer's certificate",
                            pod.pod.name()
                        )
                        .into());
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            let rotated_after = started.elapsed();
            // Traffic on the new certificates for a moment more.
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(rotated_after)
        }
        .await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        result
    };
    let (traffic, rotation) = tokio::join!(traffic, rotation);
    let rotated_after = rotation.step("the rotation");
    let (served, failures) = traffic.step("the traffic");
    eprintln!(
        "issuer rotated; both proxies on the new issuer after {:.1} s; {served} requests, {} failed",
        rotated_after.as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} requests failed: {failures:?}",
        failures.len()
    );
    assert!(served > 100, "only {served} requests were sent");
    assert_eq!(voting.app.requests(), served);
    voting
        .wait_metrics("counted every request as mesh TLS from web", |t| {
            metric(
                t,
                "response_total",
                &[
                    ("direction", "inbound"),
                    ("tls", "true"),
                    ("client_id", &spiffe("web")),
                    ("classification", "success"),
                ],
            ) == served as f64
        })
        .await
        .step("voting's metrics");
    for pod in [&web, &voting] {
        let renewed = pod
            .metric("identity_certify_total", &[("result", "issued")])
            .await
            .step("the proxy's metrics");
        assert!(
            renewed >= 2.0,
            "{} was certified {renewed} times",
            pod.pod.name()
        );
    }
}

/// web and voting, their IPs known to destination, their proxies ready.
async fn meshed_pair<'rig>(
    rig: &'rig Rig,
    env: &Env,
    door: &ControlDoor<'_>,
) -> TestResult<(Meshed<'rig>, Meshed<'rig>)> {
    let mut pair = Vec::new();
    for sa in ["web", "voting"] {
        let pod = rig.pod(sa)?;
        let name = env.pod_of(sa).await?;
        env.set_ip(&name, pod.ip()).await?;
        env.wait_meshed(SocketAddr::from((pod.ip(), APP_PORT)), sa)
            .await?;
        let token = env.token(sa, &name).await?;
        let who = Identity {
            service_account: sa,
            pod_name: &name,
            token: &token,
        };
        pair.push(env.mesh(pod, door, &who)?);
    }
    for meshed in &mut pair {
        meshed.wait_ready(READY).await?;
    }
    let voting = pair.pop().ok_or("no voting pod")?;
    let web = pair.pop().ok_or("no web pod")?;
    Ok((web, voting))
}
