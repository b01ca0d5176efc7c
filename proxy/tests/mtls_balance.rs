//! Balancing a Service's traffic over its endpoints, between real
//! `weft-proxy run` processes on loopback over real mesh TLS: destination
//! (the stand-in of `mtls_support`) answers the client's original
//! destination as a Service with endpoints, each endpoint a meshed server
//! proxy in front of its own application.
//!
//! Shown here: one HTTP/2 connection spreads its requests over every
//! endpoint, and follows the Service from one endpoint to three on the same
//! connection; HTTP/1 balances per request and opaque TCP per connection;
//! an endpoint that refuses connections costs no request; the metrics say
//! `tls="true"`, `dst_service` and the workload shared by the endpoints;
//! a Service whose endpoints are all gone sends requests to the original
//! destination.

mod mtls_support;
mod run_support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use mtls_support::{ControlPlane, Destination, MeshProxy, Pki, Spawn, id};
use run_support::{TestResult, body_bytes, h1_client, h2_client, metric, request, servers};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const READY: Duration = Duration::from_secs(15);

/// A client proxy whose outbound goes to `service`, and server proxies
/// (the endpoints), each in front of its own application.
struct Rig {
    control: ControlPlane,
    client: MeshProxy,
    servers: Vec<MeshProxy>,
    service: SocketAddr,
    apps: Vec<servers::HttpApp>,
}

/// Destination's answer for the Service at `service` with meshed `endpoints`.
fn service_answer(service: SocketAddr, endpoints: &[SocketAddr], opaque: bool) -> Destination {
    let meshed: Vec<_> = endpoints.iter().map(|&e| (e, true)).collect();
    mixed_answer(service, &meshed, opaque)
}

/// The same with each endpoint meshed or not.
fn mixed_answer(
    service: SocketAddr,
    endpoints: &[(SocketAddr, bool)],
    opaque: bool,
) -> Destination {
    let endpoints: Vec<_> = endpoints
        .iter()
        .enumerate()
        .map(|(i, (addr, meshed))| {
            let labels = json!({"dst_namespace": "shop", "dst_deployment": "voting",
                                "dst_pod": format!("voting-{i}"), "dst_serviceaccount": "voting"});
            if *meshed {
                json!({
                    "addr": addr.to_string(), "meshed": true, "identity": id("voting"),
                    "opaque": opaque, "proxy_port": 4143, "labels": labels,
                })
            } else {
                json!({"addr": addr.to_string(), "meshed": false, "opaque": opaque, "labels": labels})
            }
        })
        .collect();
    Destination::Answer(json!({
        "addr": service.to_string(), "meshed": false,
        "service": {"name": "voting-svc", "namespace": "shop"},
        "labels": {"dst_namespace": "shop", "dst_service": "voting-svc"},
        "endpoints": endpoints,
    }))
}

async fn rig(n: usize) -> TestResult<Rig> {
    let pki = Pki::new("balance anchor")?;
    let control = ControlPlane::start(&pki).await?;
    let mut apps = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..n {
        let app = servers::http_app().await?;
        let server = MeshProxy::spawn(
            &control,
            Spawn {
                sa: "voting",
                inbound_target: app.addr,
                outbound_target: app.addr,
                ip: None,
                token: true,
                extra: &[],
            },
        )?;
        apps.push(app);
        servers.push(server);
    }
    // The ClusterIP: nothing listens there (kube-proxy is not in this rig),
    // so only balanced traffic succeeds.
    let service = SocketAddr::from((mtls_support::loopback_ip(), 80));
    let client = MeshProxy::spawn(
        &control,
        Spawn {
            sa: "web",
            inbound_target: service,
            outbound_target: service,
            ip: None,
            token: true,
            extra: &[],
        },
    )?;
    for server in &servers {
        server.wait_ready(READY).await?;
    }
    client.wait_ready(READY).await?;
    Ok(Rig {
        control,
        client,
        servers,
        service,
        apps,
    })
}

impl Rig {
    fn answer(&self, endpoints: &[SocketAddr], opaque: bool) {
        self.control.answer(
            self.service,
            service_answer(self.service, endpoints, opaque),
        );
    }

    fn inbounds(&self, n: usize) -> Vec<SocketAddr> {
        self.servers.iter().take(n).map(|s| s.inbound).collect()
    }

    /// Requests each server proxy took in, in order.
    async fn spread(&self, what: &str) -> TestResult<Vec<f64>> {
        let mut counts = Vec::new();
        for server in &self.servers {
            let text = server.metrics().await?;
            counts.push(metric(
                &text,
                what,
                &[("direction", "inbound"), ("tls", "true")],
            ));
        }
        Ok(counts)
    }
}

async fn h2_requests(
    h2: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    n: usize,
) -> TestResult {
    for _ in 0..n {
        let req =
            Request::get("http://voting-svc.shop/status/200").body(Full::new(Bytes::new()))?;
        h2.ready().await?;
        let response = h2.send_request(req).await?;
        assert_eq!(response.status(), 200);
    }
    Ok(())
}

#[tokio::test]
async fn one_http2_connection_spreads_its_requests_and_follows_new_endpoints() -> TestResult {
    let rig = rig(3).await?;
    rig.answer(&rig.inbounds(1), false);
    let mut h2 = h2_client::<Full<Bytes>>(rig.client.outbound).await?;
    h2_requests(&mut h2, 30).await?;
    assert_eq!(rig.spread("request_total").await?, [30.0, 0.0, 0.0]);

    // Scaled to three, on the same client connection.
    rig.answer(&rig.inbounds(3), false);
    let mut waited = 0;
    loop {
        h2_requests(&mut h2, 30).await?;
        let spread = rig.spread("request_total").await?;
        if spread[1] > 0.0 && spread[2] > 0.0 {
            break;
        }
        waited += 1;
        assert!(waited < 20, "the new endpoints got nothing: {spread:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Eight at a time, all answered. How evenly they spread depends on
    // each endpoint's latency on this noisy machine (peak-EWMA believes a
    // slow response at once): the balancer's fairness is its unit tests',
    // the spread in the cluster is measured in docs/benchmarks.md.
    let before = rig.spread("request_total").await?;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut h2 = h2.clone();
        tasks.push(tokio::spawn(async move { h2_requests(&mut h2, 100).await }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let spread = rig.spread("request_total").await?;
    let total: f64 = spread.iter().sum();
    assert_eq!(total - before.iter().sum::<f64>(), 800.0, "{spread:?}");
    eprintln!("800 requests, 8 at a time, over 3 endpoints: {before:?} -> {spread:?}");

    // Each request is labelled as the endpoint that took it: mesh TLS, the
    // Service's name, the workload and the pod.
    let text = rig.client.metrics().await?;
    let voting = id("voting");
    let outbound = [
        ("direction", "outbound"),
        ("tls", "true"),
        ("server_id", voting.as_str()),
        ("dst_service", "voting-svc"),
        ("dst_namespace", "shop"),
        ("dst_deployment", "voting"),
        ("dst_serviceaccount", "voting"),
        ("status_code", "200"),
    ];
    assert_eq!(metric(&text, "response_total", &outbound), total);
    for (i, &took) in spread.iter().enumerate() {
        let pod = format!("voting-{i}");
        let mut labels = outbound.to_vec();
        labels.push(("dst_pod", pod.as_str()));
        assert_eq!(
            metric(&text, "response_total", &labels),
            took,
            "{pod}: {text}"
        );
    }
    assert!(
        metric(&text, "destination_lookups_total", &[("result", "service")]) >= 1.0,
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn http1_balances_per_request_and_a_refusing_endpoint_costs_nothing() -> TestResult {
    let rig = rig(2).await?;
    // A third endpoint refuses every connection (its pod is gone).
    let gone = SocketAddr::from((mtls_support::loopback_ip(), 4143));
    let mut endpoints = rig.inbounds(2);
    endpoints.push(gone);
    rig.answer(&endpoints, false);
    let mut h1 = h1_client(rig.client.outbound).await?;
    for _ in 0..200 {
        let response = h1.send_request(request("GET", "/status/200", "")?).await?;
        assert_eq!(
            response.status(),
            200,
            "a request failed on the gone endpoint"
        );
        body_bytes(response).await?;
    }
    let spread = rig.spread("request_total").await?;
    assert_eq!(spread.iter().sum::<f64>(), 200.0);
    assert!(spread.iter().all(|&n| n >= 40.0), "{spread:?}");
    Ok(())
}

#[tokio::test]
async fn opaque_tcp_balances_per_connection() -> TestResult {
    let rig = rig(3).await?;
    rig.answer(&rig.inbounds(3), true);
    for _ in 0..60 {
        let mut stream = TcpStream::connect(rig.client.outbound).await?;
        // An HTTP request, sent opaque: the server proxy detects it inside
        // mesh TLS and the application answers.
        stream
            .write_all(b"GET /status/200 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    }
    let spread = rig.spread("tcp_open_total").await?;
    assert_eq!(spread.iter().sum::<f64>(), 60.0, "{spread:?}");
    assert!(spread.iter().all(|&n| n >= 8.0), "{spread:?}");
    Ok(())
}

#[tokio::test]
async fn a_service_without_endpoints_goes_to_the_original_destination() -> TestResult {
    let rig = rig(1).await?;
    rig.answer(&rig.inbounds(1), false);
    let mut h2 = h2_client::<Full<Bytes>>(rig.client.outbound).await?;
    h2_requests(&mut h2, 5).await?;
    rig.answer(&[], false);
    // Nothing listens on the ClusterIP in this rig: the fallback is seen as
    // the proxy's 502 for a refused connect, not as a balanced request.
    let mut fell_back = false;
    for _ in 0..50 {
        let req =
            Request::get("http://voting-svc.shop/status/200").body(Full::new(Bytes::new()))?;
        h2.ready().await?;
        let response = h2.send_request(req).await?;
        if response.status() == 502 {
            fell_back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fell_back, "requests still went to the endpoints");
    Ok(())
}

#[tokio::test]
async fn each_request_is_labelled_as_the_endpoint_that_takes_it() -> TestResult {
    let rig = rig(2).await?;
    // Mid-rollout: one endpoint meshed, one not yet (reached in plaintext,
    // straight at its application).
    let mixed = [(rig.servers[0].inbound, true), (rig.apps[1].addr, false)];
    rig.control
        .answer(rig.service, mixed_answer(rig.service, &mixed, false));
    let mut h2 = h2_client::<Full<Bytes>>(rig.client.outbound).await?;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut h2 = h2.clone();
        tasks.push(tokio::spawn(async move { h2_requests(&mut h2, 50).await }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let voting = id("voting");
    let mesh = [
        ("direction", "outbound"),
        ("tls", "true"),
        ("server_id", voting.as_str()),
        ("dst_service", "voting-svc"),
        ("dst_deployment", "voting"),
    ];
    let plain = [
        ("direction", "outbound"),
        ("tls", "false"),
        ("dst_service", "voting-svc"),
        ("dst_deployment", "voting"),
    ];
    let text = rig.client.metrics().await?;
    let (meshed, plaintext) = (
        metric(&text, "request_total", &mesh),
        metric(&text, "request_total", &plain),
    );
    let took = rig.spread("request_total").await?[0];
    assert_eq!(meshed + plaintext, 200.0, "{text}");
    assert!(
        plaintext > 0.0,
        "the plaintext endpoint took nothing: {text}"
    );
    assert_eq!(
        meshed, took,
        "mTLS requests counted as the meshed endpoint took them"
    );

    // The rollout finishes: the same client connection's requests are all
    // mesh TLS from then on.
    rig.answer(&rig.inbounds(2), false);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = metric(&rig.client.metrics().await?, "request_total", &plain);
    h2_requests(&mut h2, 50).await?;
    let text = rig.client.metrics().await?;
    assert_eq!(metric(&text, "request_total", &plain), before, "{text}");
    Ok(())
}
