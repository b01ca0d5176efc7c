//! Mutual TLS between two real `weft-proxy run` processes on loopback: a
//! "client pod" proxy whose outbound goes to a "server pod" proxy's inbound,
//! both certified by the stand-in control plane of `mtls_support`, with
//! destination announcing the server's identity.
//!
//! Shown here: HTTP/1, HTTP/2 and opaque bytes (including a server that
//! speaks first) cross mesh TLS with the right identities in both sides'
//! metrics; a peer with the wrong identity, clients with a foreign, expired
//! or missing certificate are refused and counted; `require-identity`
//! refuses plaintext; the application's own TLS passes through; the proxy
//! is ready only once certified, re-reads its token, renews, and keeps its
//! certificate while identity is down; a destination failure means
//! plaintext, counted; destination's changes (an address that changes
//! hands, a pod that leaves the mesh) are followed from the next
//! connection on, and its watches are reopened when it restarts; proxies
//! certified under two anchors of one bundle (mid-rotation) talk.

mod mtls_support;
mod run_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use mtls_support::{ControlPlane, Destination, MeshProxy, Pki, Spawn, id, meshed, unmeshed};
use run_support::{
    TestResult, admin_get, body_bytes, h1_client, h2_client, hash_to_eof, metric, request,
    send_payload, servers, wait_metrics,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use weft_proxy::tls::verify::MeshServerVerifier;
use weft_proxy::tls::{MESH_ALPN, TrustAnchors, peer};

const READY: Duration = Duration::from_secs(15);

/// Two meshed proxies: `client`'s outbound goes to `server`'s inbound,
/// which goes to `app`.
struct Mesh {
    pki: Pki,
    control: ControlPlane,
    client: MeshProxy,
    server: MeshProxy,
}

/// Starts the server proxy at `server_ip` (certified by `server_control`,
/// inbound to `app`) and the client proxy (certified by `client_control`,
/// outbound to the server's inbound), each with its extra environment, and
/// waits until both are ready. Returns `(client, server)`.
async fn pair(
    server_control: &ControlPlane,
    client_control: &ControlPlane,
    app: SocketAddr,
    server_ip: Ipv4Addr,
    server_extra: &[(&str, &str)],
    client_extra: &[(&str, &str)],
) -> TestResult<(MeshProxy, MeshProxy)> {
    let server_inbound = mtls_support::inbound_at(server_ip);
    let server = MeshProxy::spawn(
        server_control,
        Spawn {
            sa: "server",
            inbound_target: app,
            outbound_target: app,
            ip: Some(server_ip),
            token: true,
            extra: server_extra,
        },
    )?;
    let client = MeshProxy::spawn(
        client_control,
        Spawn {
            sa: "client",
            inbound_target: app,
            outbound_target: server_inbound,
            ip: None,
            token: true,
            extra: client_extra,
        },
    )?;
    server.wait_ready(READY).await?;
    client.wait_ready(READY).await?;
    Ok((client, server))
}

async fn mesh(app: SocketAddr, server_extra: &[(&str, &str)]) -> TestResult<Mesh> {
    let pki = Pki::new("mesh anchor")?;
    let control = ControlPlane::start(&pki).await?;
    let server_ip = mtls_support::loopback_ip();
    let server_inbound = mtls_support::inbound_at(server_ip);
    control.answer(server_inbound, meshed(server_inbound, "server", "server-0"));
    let (client, server) = pair(&control, &control, app, server_ip, server_extra, &[]).await?;
    Ok(Mesh {
        pki,
        control,
        client,
        server,
    })
}

#[tokio::test]
async fn http_between_meshed_proxies_is_mutual_tls_with_identities_in_metrics() -> TestResult {
    let app = servers::http_app().await?;
    let mesh = mesh(app.addr, &[]).await?;

    let mut h1 = h1_client(mesh.client.outbound).await?;
    for _ in 0..3 {
        let response = h1.send_request(request("GET", "/status/200", "")?).await?;
        assert_eq!(response.status(), 200);
        body_bytes(response).await?;
    }
    let echoed = h1
        .send_request(request("POST", "/echo", vec![7u8; 100_000])?)
        .await?;
    assert_eq!(body_bytes(echoed).await?, vec![7u8; 100_000]);
    let mut h2 = h2_client::<Full<Bytes>>(mesh.client.outbound).await?;
    let req = Request::get("http://web.test/status/204").body(Full::new(Bytes::new()))?;
    h2.ready().await?;
    assert_eq!(h2.send_request(req).await?.status(), 204);

    let (server_id, client_id) = (id("server"), id("client"));
    let outbound = [
        ("direction", "outbound"),
        ("tls", "true"),
        ("server_id", server_id.as_str()),
        ("dst_namespace", "shop"),
        ("dst_pod", "server-0"),
        ("dst_deployment", "server"),
        ("status_code", "200"),
    ];
    let text = wait_metrics(mesh.client.admin, |t| {
        metric(t, "response_total", &outbound) == 4.0
    })
    .await?;
    assert_eq!(
        metric(&text, "destination_lookups_total", &[("result", "meshed")]),
        2.0,
        "{text}"
    );
    assert!(metric(&text, "identity_cert_expiration_timestamp_seconds", &[]) > now_unix());
    assert_eq!(
        metric(&text, "identity_certify_total", &[("result", "issued")]),
        1.0
    );

    let inbound = [
        ("direction", "inbound"),
        ("tls", "true"),
        ("client_id", client_id.as_str()),
    ];
    let text = wait_metrics(mesh.server.admin, |t| {
        metric(t, "request_total", &inbound) == 5.0
    })
    .await?;
    assert_eq!(metric(&text, "tcp_open_total", &inbound), 2.0, "{text}");
    assert_eq!(metric(&text, "request_total", &[("tls", "false")]), 0.0);
    Ok(())
}

#[tokio::test]
async fn opaque_bytes_and_server_greetings_cross_mesh_tls() -> TestResult {
    let (exchange, mut received) = servers::exchange_server().await?;
    let mesh = mesh(exchange, &[]).await?;
    for (seed, up, down) in [(1u64, 10usize, 5usize), (2, 3_000_000, 1_000_000)] {
        let stream = TcpStream::connect(mesh.client.outbound).await?;
        let (mut read, mut write) = stream.into_split();
        let mut header = Vec::with_capacity(16);
        header.extend_from_slice(&(seed + 100).to_le_bytes());
        header.extend_from_slice(&(down as u64).to_le_bytes());
        write.write_all(&header).await?;
        let sent = send_payload(&mut write, seed, up).await?;
        write.shutdown().await?;
        let (got, _) = hash_to_eof(&mut read).await?;
        assert_eq!(got, down);
        let at_server = received.recv().await.ok_or("exchange server gone")?;
        assert_eq!((at_server.len, at_server.sha256), (up, sent));
    }
    let text = wait_metrics(mesh.server.admin, |t| {
        metric(
            t,
            "tcp_close_total",
            &[("tls", "true"), ("client_id", &id("client"))],
        ) == 2.0
    })
    .await?;
    assert_eq!(metric(&text, "tcp_open_total", &[("tls", "false")]), 0.0);

    // A server that speaks first: its greeting races the mesh ClientHello
    // at the inbound proxy and must still arrive inside mesh TLS.
    let greeting = servers::greeting_server(b"220 ready\r\n").await?;
    let mesh = self::mesh(greeting, &[]).await?;
    for _ in 0..10 {
        let mut stream = TcpStream::connect(mesh.client.outbound).await?;
        let mut hello = [0u8; 11];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut hello)).await??;
        assert_eq!(&hello, b"220 ready\r\n");
        stream.write_all(b"EHLO test\r\n").await?;
        let mut echo = [0u8; 11];
        stream.read_exact(&mut echo).await?;
        assert_eq!(&echo, b"EHLO test\r\n");
    }
    wait_metrics(mesh.server.admin, |t| {
        metric(t, "tcp_open_total", &[("tls", "true")]) == 10.0
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_peer_with_another_identity_than_announced_is_refused() -> TestResult {
    let app = servers::http_app().await?;
    let mesh = mesh(app.addr, &[]).await?;
    // The client proxy watches the address from its first connection.
    let mut h1 = h1_client(mesh.client.outbound).await?;
    let response = h1.send_request(request("GET", "/status/200", "")?).await?;
    assert_eq!(response.status(), 200);
    // Destination now says another workload is there: the watch brings it.
    mesh.control.answer(
        mesh.server.inbound,
        meshed(mesh.server.inbound, "billing", "billing-0"),
    );
    wait_metrics(mesh.client.admin, |t| {
        metric(t, "destination_updates_total", &[]) == 1.0
    })
    .await?;
    for _ in 0..5 {
        let mut h1 = h1_client(mesh.client.outbound).await?;
        let response = h1.send_request(request("GET", "/status/200", "")?).await?;
        assert_eq!(response.status(), 502, "the old identity was accepted");
    }
    let text = mesh.client.metrics().await?;
    assert_eq!(
        metric(
            &text,
            "tls_handshake_failures_total",
            &[("direction", "outbound")]
        ),
        5.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "response_total",
            &[("server_id", &id("billing")), ("status_code", "502")]
        ),
        5.0
    );
    Ok(())
}

/// A TLS client speaking mesh TLS to `addr` as `sa` would, with `cert` (or
/// none), verifying the server as `server_sa`.
async fn mesh_client(
    anchors: &TrustAnchors,
    addr: SocketAddr,
    cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    server_sa: &str,
) -> TestResult<tokio_rustls::client::TlsStream<TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = MeshServerVerifier::new(anchors, mtls_support::TD, provider.clone());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![MESH_ALPN.to_vec()];
    let name: ServerName<'static> = peer::server_name(&id(server_sa).parse()?)?;
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    // TLS 1.3: the server judges the client certificate after the client's
    // handshake is done; a refusal shows on the first exchange.
    tls.write_all(b"GET /status/200 HTTP/1.1\r\nhost: web\r\n\r\n")
        .await?;
    let mut answer = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut answer)).await??;
    if &answer != b"HTTP/1.1 200" {
        return Err(format!("unexpected answer {:?}", String::from_utf8_lossy(&answer)).into());
    }
    Ok(tls)
}

#[tokio::test]
async fn clients_with_foreign_expired_or_no_certificates_are_refused() -> TestResult {
    let app = servers::http_app().await?;
    let mesh = mesh(app.addr, &[]).await?;
    let anchors = TrustAnchors::from_pem(mesh.pki.anchor.cert_pem())?;
    let hour = Duration::from_secs(3600);
    let target = mesh.server.inbound;

    // A proxy of this mesh (right CA, valid certificate) gets through.
    let good = mesh.pki.leaf("client", &[], hour, SystemTime::now())?;
    mesh_client(&anchors, target, Some(good), "server").await?;

    let foreign = Pki::new("another mesh")?.leaf("client", &[], hour, SystemTime::now())?;
    let expired = mesh.pki.leaf(
        "client",
        &[],
        Duration::from_secs(60),
        SystemTime::now() - Duration::from_secs(240),
    )?;
    for (what, cert) in [
        ("another CA", Some(foreign)),
        ("expired", Some(expired)),
        ("no certificate", None),
    ] {
        let result = mesh_client(&anchors, target, cert, "server").await;
        assert!(result.is_err(), "{what}: accepted");
    }
    let text = wait_metrics(mesh.server.admin, |t| {
        metric(t, "inbound_refused_total", &[("reason", "tls_handshake")]) == 3.0
    })
    .await?;
    assert_eq!(
        metric(
            &text,
            "tls_handshake_failures_total",
            &[("direction", "inbound")]
        ),
        3.0
    );
    assert_eq!(metric(&text, "request_total", &[("tls", "true")]), 1.0);
    Ok(())
}

#[tokio::test]
async fn require_identity_refuses_plaintext_but_not_mesh_tls() -> TestResult {
    let app = servers::http_app().await?;
    let mesh = mesh(app.addr, &[("WEFT_PROXY_INBOUND_REQUIRE_IDENTITY", "true")]).await?;
    // Plaintext HTTP straight to the server pod's inbound proxy.
    let mut plain = h1_client(mesh.server.inbound).await?;
    assert!(
        plain
            .send_request(request("GET", "/status/200", "")?)
            .await
            .is_err(),
        "plaintext was served"
    );
    // The refused client never reached the application: the proxy
    // authenticates before it connects.
    assert_eq!(
        app.connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the application saw a connection from a refused client"
    );
    // Through the client pod's proxy: mesh TLS, served.
    let mut h1 = h1_client(mesh.client.outbound).await?;
    let response = h1.send_request(request("GET", "/status/200", "")?).await?;
    assert_eq!(response.status(), 200);
    let text = wait_metrics(mesh.server.admin, |t| {
        metric(t, "request_total", &[("tls", "true")]) == 1.0
    })
    .await?;
    assert_eq!(
        metric(
            &text,
            "inbound_refused_total",
            &[("reason", "identity_required")]
        ),
        1.0
    );
    assert_eq!(metric(&text, "request_total", &[("tls", "false")]), 0.0);
    Ok(())
}

#[tokio::test]
async fn the_applications_own_tls_passes_through_untouched() -> TestResult {
    // The application serves its own TLS, with its own CA, on the pod port.
    let app_pki = Pki::new("app ca")?;
    let (chain, key) = app_pki.leaf(
        "app",
        &["app.test".to_owned()],
        Duration::from_secs(3600),
        SystemTime::now(),
    )?;
    let mut server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut line = [0u8; 5];
                    if tls.read_exact(&mut line).await.is_ok() {
                        let _ = tls.write_all(&line).await;
                        let _ = tls.shutdown().await;
                    }
                }
            });
        }
    });
    let mesh = mesh(app, &[]).await?;

    // An unmeshed client's TLS straight to the server pod's inbound proxy.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(
        app_pki.anchor.cert_pem().as_bytes(),
    )?)?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(mesh.server.inbound).await?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("app.test")?, tcp)
        .await?;
    tls.write_all(b"hello").await?;
    let mut echo = Vec::new();
    tls.read_to_end(&mut echo).await?;
    assert_eq!(echo, b"hello");
    wait_metrics(mesh.server.admin, |t| {
        metric(
            t,
            "tcp_open_total",
            &[("direction", "inbound"), ("tls", "passthrough")],
        ) == 1.0
    })
    .await?;
    Ok(())
}

use rustls::pki_types::pem::PemObject as _;

#[tokio::test]
async fn ready_only_once_certified_and_the_token_is_read_again() -> TestResult {
    let pki = Pki::new("mesh anchor")?;
    let control = ControlPlane::start(&pki).await?;
    let app = servers::http_app().await?;
    let proxy = MeshProxy::spawn(
        &control,
        Spawn {
            sa: "late",
            inbound_target: app.addr,
            outbound_target: app.addr,
            ip: None,
            token: false,
            extra: &[],
        },
    )?;
    // No token yet: alive, not ready, and saying why in its metrics.
    let text = wait_for_metrics(proxy.admin, Duration::from_secs(10), |t| {
        metric(t, "identity_certify_total", &[("result", "no_token")]) >= 1.0
    })
    .await?;
    assert_eq!(
        metric(&text, "identity_cert_expiration_timestamp_seconds", &[]),
        0.0
    );
    assert_eq!(admin_get(proxy.admin, "/ready").await?.0, 503);
    assert_eq!(admin_get(proxy.admin, "/live").await?.0, 200);
    // The kubelet projects the token: the next attempt reads it.
    proxy.write_token()?;
    proxy.wait_ready(Duration::from_secs(20)).await?;
    assert_eq!(control.issued("late"), 1);
    Ok(())
}

#[tokio::test]
async fn certificates_are_renewed_and_kept_while_identity_is_down() -> TestResult {
    let app = servers::http_app().await?;
    let pki = Pki::new("mesh anchor")?;
    let control = ControlPlane::start(&pki).await?;
    // Certificates of 8 s: renewed about every 5.6 s.
    control.set_lifetime(Duration::from_secs(8));
    let server_ip = mtls_support::loopback_ip();
    let server_inbound = mtls_support::inbound_at(server_ip);
    control.answer(server_inbound, meshed(server_inbound, "server", "server-0"));
    let (client, server) = pair(&control, &control, app.addr, server_ip, &[], &[]).await?;

    // Traffic across at least one renewal on both sides.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while control.issued("client") < 2 || control.issued("server") < 2 {
        let mut h1 = h1_client(client.outbound).await?;
        let response = h1.send_request(request("GET", "/status/200", "")?).await?;
        assert_eq!(response.status(), 200);
        if tokio::time::Instant::now() > deadline {
            return Err("no renewal within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Identity goes down: renewals fail, the current certificates serve on.
    control.set_identity_down(true);
    wait_for_metrics(client.admin, Duration::from_secs(15), |t| {
        metric(t, "identity_certify_total", &[("result", "unavailable")]) >= 1.0
    })
    .await?;
    // Both certificates must still be valid for the handshake to pass.
    let mut expires = f64::INFINITY;
    for proxy in [&client, &server] {
        let text = proxy.metrics().await?;
        expires = expires.min(metric(
            &text,
            "identity_cert_expiration_timestamp_seconds",
            &[],
        ));
    }
    if expires > now_unix() + 1.0 {
        let mut h1 = h1_client(client.outbound).await?;
        let response = h1.send_request(request("GET", "/status/200", "")?).await?;
        assert_eq!(
            response.status(),
            200,
            "the old certificate stopped serving early"
        );
    }
    // Past its expiry the certificate is dropped: no mesh TLS...
    wait_for_metrics(client.admin, Duration::from_secs(15), |t| {
        metric(t, "identity_cert_expiration_timestamp_seconds", &[]) == 0.0
    })
    .await?;
    let mut h1 = h1_client(client.outbound).await?;
    let response = h1.send_request(request("GET", "/status/200", "")?).await?;
    assert_eq!(response.status(), 502);
    // ... until identity answers again.
    control.set_identity_down(false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut h1 = h1_client(client.outbound).await?;
        let response = h1.send_request(request("GET", "/status/200", "")?).await?;
        if response.status() == 200 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("mesh TLS did not recover after identity came back".into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_destination_failure_means_plaintext_and_is_counted() -> TestResult {
    let app = servers::http_app().await?;
    let pki = Pki::new("mesh anchor")?;
    let control = ControlPlane::start(&pki).await?;
    let server_ip = mtls_support::loopback_ip();
    let server_inbound = mtls_support::inbound_at(server_ip);
    control.answer(server_inbound, Destination::Unavailable);
    let (client, server) = pair(&control, &control, app.addr, server_ip, &[], &[]).await?;
    let mut h1 = h1_client(client.outbound).await?;
    let response = h1.send_request(request("GET", "/status/200", "")?).await?;
    assert_eq!(response.status(), 200);
    let text = wait_metrics(client.admin, |t| {
        metric(t, "request_total", &[("tls", "false")]) == 1.0
    })
    .await?;
    assert_eq!(
        metric(&text, "destination_lookups_total", &[("result", "failed")]),
        1.0
    );
    let text = wait_metrics(server.admin, |t| {
        metric(
            t,
            "request_total",
            &[("direction", "inbound"), ("tls", "false")],
        ) == 1.0
    })
    .await?;
    assert_eq!(metric(&text, "request_total", &[("tls", "true")]), 0.0);
    Ok(())
}

/// Polls `/metrics` until `check` passes, for up to `limit` (the proxy may
/// not be listening yet at first).
async fn wait_for_metrics(
    admin: SocketAddr,
    limit: Duration,
    check: impl Fn(&str) -> bool,
) -> TestResult<String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok((_, text)) = admin_get(admin, "/metrics").await {
            if check(&text) {
                return Ok(text);
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("metrics never matched within {limit:?}; last scrape:\n{last}").into())
}

#[tokio::test]
async fn proxies_under_the_old_and_the_new_anchor_talk_through_a_bundle() -> TestResult {
    // Mid-rotation: the client pod was certified under the old anchor, the
    // server pod under the new one; both trust the bundle of the two.
    let app = servers::http_app().await?;
    let (old, new) = (Pki::new("old anchor")?, Pki::new("new anchor")?);
    let (old_control, new_control) = (
        ControlPlane::start(&old).await?,
        ControlPlane::start(&new).await?,
    );
    let bundle = format!("{}{}", old.anchor.cert_pem(), new.anchor.cert_pem());
    let with_bundle = [("WEFT_PROXY_TRUST_ANCHORS", bundle.as_str())];
    let server_ip = mtls_support::loopback_ip();
    let server_inbound = mtls_support::inbound_at(server_ip);
    old_control.answer(server_inbound, meshed(server_inbound, "server", "server-0"));
    let (client, server) = pair(
        &new_control,
        &old_control,
        app.addr,
        server_ip,
        &with_bundle,
        &with_bundle,
    )
    .await?;
    let mut h1 = h1_client(client.outbound).await?;
    let response = h1.send_request(request("GET", "/status/200", "")?).await?;
    assert_eq!(response.status(), 200);
    let client_id = id("client");
    wait_metrics(server.admin, |t| {
        metric(
            t,
            "request_total",
            &[("tls", "true"), ("client_id", &client_id)],
        ) == 1.0
    })
    .await?;
    Ok(())
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The client proxy's outbound HTTP/1 answer for one new connection.
async fn get_status(client: &MeshProxy) -> TestResult<u16> {
    let mut h1 = h1_client(client.outbound).await?;
    let response = h1.send_request(request("GET", "/status/200", "")?).await?;
    let status = response.status().as_u16();
    body_bytes(response).await?;
    Ok(status)
}

#[tokio::test]
async fn an_address_that_changes_hands_is_followed_from_the_next_connection() -> TestResult {
    let app = servers::http_app().await?;
    let Mesh {
        pki: _pki,
        control,
        client,
        server,
    } = mesh(app.addr, &[]).await?;
    let addr = server.inbound;
    let server_ip = match addr {
        SocketAddr::V4(v4) => *v4.ip(),
        SocketAddr::V6(_) => return Err("the test proxies are on IPv4 loopback".into()),
    };
    assert_eq!(get_status(&client).await?, 200);
    let text = wait_metrics(client.admin, |t| {
        metric(t, "response_total", &[("server_id", &id("server"))]) == 1.0
    })
    .await?;
    assert_eq!(metric(&text, "destination_watches", &[]), 1.0, "{text}");
    assert_eq!(control.watches_open(), 1);

    // The pod goes and another workload's pod gets its IP; destination
    // has not seen it yet, so the client still asks for the old identity
    // and the new peer is refused.
    drop(server);
    let billing = MeshProxy::spawn(
        &control,
        Spawn {
            sa: "billing",
            inbound_target: app.addr,
            outbound_target: app.addr,
            ip: Some(server_ip),
            token: true,
            extra: &[],
        },
    )?;
    billing.wait_ready(READY).await?;
    assert_eq!(get_status(&client).await?, 502);

    // Destination sees the new pod: the very next connection, once the
    // update is in, is mutual TLS with the new identity.
    control.answer(addr, meshed(addr, "billing", "billing-0"));
    wait_metrics(client.admin, |t| {
        metric(t, "destination_updates_total", &[]) == 1.0
    })
    .await?;
    assert_eq!(get_status(&client).await?, 200);
    let billing_id = id("billing");
    let text = wait_metrics(client.admin, |t| {
        metric(
            t,
            "response_total",
            &[
                ("tls", "true"),
                ("server_id", billing_id.as_str()),
                ("dst_pod", "billing-0"),
                ("status_code", "200"),
            ],
        ) == 1.0
    })
    .await?;
    assert_eq!(
        metric(&text, "destination_lookups_total", &[("result", "failed")]),
        0.0
    );
    let client_id = id("client");
    wait_metrics(billing.admin, |t| {
        metric(
            t,
            "request_total",
            &[("tls", "true"), ("client_id", client_id.as_str())],
        ) == 1.0
    })
    .await?;

    // The pod leaves the mesh: plaintext from the next connection on.
    control.answer(addr, unmeshed(addr));
    wait_metrics(client.admin, |t| {
        metric(t, "destination_updates_total", &[]) == 2.0
    })
    .await?;
    assert_eq!(get_status(&client).await?, 200);
    let text = wait_metrics(client.admin, |t| {
        metric(
            t,
            "response_total",
            &[("direction", "outbound"), ("tls", "false")],
        ) == 1.0
    })
    .await?;
    assert_eq!(
        metric(
            &text,
            "destination_lookups_total",
            &[("result", "unmeshed")]
        ),
        1.0
    );
    // All of it on the one watch opened by the first connection.
    assert_eq!(control.watches_opened(), 1);
    Ok(())
}

#[tokio::test]
async fn a_restarting_destination_has_its_watches_reopened() -> TestResult {
    let app = servers::http_app().await?;
    let mesh = mesh(app.addr, &[]).await?;
    assert_eq!(get_status(&mesh.client).await?, 200);
    assert_eq!(mesh.control.watches_opened(), 1);

    // Destination restarts: its streams end; the proxy keeps its answer
    // and opens the watch again after a short back-off.
    mesh.control.end_watches();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while mesh.control.watches_opened() < 2 {
        if tokio::time::Instant::now() > deadline {
            return Err("the watch was not reopened within 5 s".into());
        }
        assert_eq!(get_status(&mesh.client).await?, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A change on the new stream is followed (and the same answer sent
    // again on reopening was no update: the count ends at exactly one).
    mesh.control.answer(
        mesh.server.inbound,
        meshed(mesh.server.inbound, "billing", "billing-0"),
    );
    let text = wait_metrics(mesh.client.admin, |t| {
        metric(t, "destination_updates_total", &[]) == 1.0
    })
    .await?;
    assert_eq!(metric(&text, "destination_watches", &[]), 1.0, "{text}");
    assert_eq!(
        metric(&text, "destination_lookups_total", &[("result", "failed")]),
        0.0
    );
    assert_eq!(get_status(&mesh.client).await?, 502);
    let text = mesh.client.metrics().await?;
    assert_eq!(metric(&text, "destination_updates_total", &[]), 1.0);
    Ok(())
}
