//! Load against the real webhook over HTTPS on loopback.
//!
//! The server runs on a current-thread runtime in its own thread (one
//! core); the client is a multi-thread runtime with several keep-alive
//! HTTP/1.1 connections, like the API server's pool. Two runs:
//!
//! 1. a fixed rate of 1,000 reviews/s, open loop: a pacer thread releases
//!    each review at its intended send time, whichever connection is free
//!    sends it, and latency is measured from the intended time, so a stall
//!    is charged to every review it delayed (no coordinated omission);
//! 2. saturation: every connection sends back to back; reviews/s and latency.
//!
//! Run: `cargo bench -p weft-injector --bench https_load`
//! (`WEFT_BENCH_SECONDS` changes the length of each run, default 5).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use weft_injector::InjectorConfig;
use weft_injector::metrics::Metrics;
use weft_injector::namespaces::StaticNamespaces;
use weft_injector::server::{AppState, Limits, Server};
use weft_injector::tls::{self, CertResolver};

const CONNECTIONS: usize = 8;
const FIXED_RATE: u64 = 1_000;
const NAMESPACE: &str = "emojivoto";

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // should not spend ten seconds loading the machine.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("https_load: run with `cargo bench -p weft-injector --bench https_load`");
        return;
    }
    let seconds: u64 = std::env::var("WEFT_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);

    let ca = weft_certs::Ca::generate("weft-bench-ca", Duration::from_secs(3600)).expect("CA");
    let serving = ca
        .issue_serving(&["localhost".to_owned()], Duration::from_secs(3600))
        .expect("serving certificate");
    let key = tls::certified_key(
        serving.cert_pem.as_bytes(),
        serving.key_pem.as_bytes(),
        &tls::provider(),
    )
    .expect("certified key");

    let metrics = Arc::new(Metrics::new());
    let server_metrics = metrics.clone();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        runtime.block_on(async move {
            let certs = Arc::new(CertResolver::new());
            certs.set(key);
            let namespaces = Arc::new(StaticNamespaces::new(HashMap::from([(
                NAMESPACE.to_owned(),
                BTreeMap::from([("weft.dev/inject".to_owned(), "enabled".to_owned())]),
            )])));
            let limits = Limits::default();
            let state = AppState::new(
                InjectorConfig::default(),
                namespaces,
                certs.clone(),
                server_metrics,
                &limits,
            );
            let tls = Arc::new(tls::server_config(certs).expect("server TLS"));
            let loopback: SocketAddr = "127.0.0.1:0".parse().expect("addr");
            let server = Server::bind(loopback, loopback, state, tls, limits)
                .await
                .expect("bind");
            addr_tx
                .send(server.https_addr().expect("addr"))
                .expect("report addr");
            server
                .serve(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
    });
    let addr = addr_rx.recv().expect("server started");

    let client = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    client.block_on(async {
        let body = Bytes::from(review_body());
        let tls = client_tls(ca.cert_pem());
        let mut senders = Vec::new();
        for _ in 0..CONNECTIONS {
            senders.push(connect(addr, tls.clone()).await);
        }
        check_answer(&mut senders[0], body.clone()).await;

        println!(
            "https_load: typical pod ({} bytes per review), {CONNECTIONS} keep-alive HTTP/1.1 connections, server on one core",
            body.len()
        );
        // Warm-up: let the connections, allocator and caches settle.
        let _ = saturate(&mut senders, body.clone(), Duration::from_millis(500)).await;

        let run = Duration::from_secs(seconds);
        let before = ServerSide::read(&metrics);
        let (latencies, errors) = fixed_rate(&mut senders, body.clone(), FIXED_RATE, run).await;
        println!(
            "fixed rate {FIXED_RATE}/s for {seconds}s (open loop, from intended send time): {} reviews, {errors} errors, {}",
            latencies.len(),
            summary(latencies, &[50.0, 90.0, 99.0, 99.9, 100.0])
        );
        println!("  server side: {}", ServerSide::read(&metrics).since(&before));

        let before = ServerSide::read(&metrics);
        let started = Instant::now();
        let (latencies, errors) = saturate(&mut senders, body.clone(), run).await;
        let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
        println!(
            "saturation for {seconds}s: {rate:.0} reviews/s, {errors} errors, {}",
            summary(latencies, &[50.0, 99.0, 100.0])
        );
        println!("  server side: {}", ServerSide::read(&metrics).since(&before));
    });

    let _ = stop_tx.send(());
    server.join().expect("server thread");
}

/// Sends `rate` reviews per second for `run`, open loop.
async fn fixed_rate(
    senders: &mut Vec<SendRequest<Full<Bytes>>>,
    body: Bytes,
    rate: u64,
    run: Duration,
) -> (Vec<Duration>, usize) {
    let total = rate * run.as_secs();
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let (due_tx, due_rx) = mpsc::unbounded_channel::<Instant>();
    let due_rx = Arc::new(Mutex::new(due_rx));

    // The pacer is an OS thread: thread::sleep wakes within tens of
    // microseconds, where the runtime's timer has millisecond granularity.
    let start = Instant::now() + Duration::from_millis(20);
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let due = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if due_tx.send(due).is_err() {
                return;
            }
        }
    });

    let mut tasks = Vec::new();
    for mut sender in senders.drain(..) {
        let (due_rx, body) = (due_rx.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                // Whichever connection is free takes the next due review.
                let due = { due_rx.lock().await.recv().await };
                let Some(due) = due else { break };
                match send(&mut sender, body.clone()).await {
                    Ok(()) => latencies.push(due.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (sender, latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (sender, mut l, e) = task.await.expect("connection task");
        senders.push(sender);
        latencies.append(&mut l);
        errors += e;
    }
    pacer.join().expect("pacer");
    (latencies, errors)
}

/// Every connection sends back to back for `run`.
async fn saturate(
    senders: &mut Vec<SendRequest<Full<Bytes>>>,
    body: Bytes,
    run: Duration,
) -> (Vec<Duration>, usize) {
    let end = Instant::now() + run;
    let mut tasks = Vec::new();
    for mut sender in senders.drain(..) {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < end {
                let sent = Instant::now();
                match send(&mut sender, body.clone()).await {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (sender, latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (sender, mut l, e) = task.await.expect("connection task");
        senders.push(sender);
        latencies.append(&mut l);
        errors += e;
    }
    (latencies, errors)
}

/// The server's own view from its review-duration histogram: how many
/// reviews took longer than 250 µs and 1 ms from body read to answer. When
/// the client sees a slow tail the server did not, the time went to
/// scheduling or the network stack, not to the webhook's code.
#[derive(Debug, Default)]
struct ServerSide {
    count: f64,
    le_250us: f64,
    le_1ms: f64,
}

impl ServerSide {
    fn read(metrics: &Metrics) -> Self {
        let text = metrics.encode();
        let get = |series: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let histogram = "weft_injector_admission_review_duration_seconds";
        ServerSide {
            count: get(&format!("{histogram}_count")),
            le_250us: get(&format!("{histogram}_bucket{{le=\"0.00025\"}}")),
            le_1ms: get(&format!("{histogram}_bucket{{le=\"0.001\"}}")),
        }
    }

    fn since(&self, before: &ServerSide) -> String {
        let count = self.count - before.count;
        let over = |le: f64, le_before: f64| count - (le - le_before);
        format!(
            "{count} reviews, {} over 250 µs, {} over 1 ms",
            over(self.le_250us, before.le_250us),
            over(self.le_1ms, before.le_1ms)
        )
    }
}

#[derive(Debug)]
struct Failed;

async fn send(sender: &mut SendRequest<Full<Bytes>>, body: Bytes) -> Result<(), Failed> {
    sender.ready().await.map_err(|_| Failed)?;
    let response = sender
        .send_request(request(body))
        .await
        .map_err(|_| Failed)?;
    let ok = response.status() == StatusCode::OK;
    let body = response.into_body().collect().await.map_err(|_| Failed)?;
    if ok && !body.to_bytes().is_empty() {
        Ok(())
    } else {
        Err(Failed)
    }
}

fn request(body: Bytes) -> Request<Full<Bytes>> {
    Request::post("/mutate")
        .header(header::HOST, "weft-injector.weft.svc")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .expect("request")
}

/// Fails loudly unless the server really injects the bench pod.
async fn check_answer(sender: &mut SendRequest<Full<Bytes>>, body: Bytes) {
    sender.ready().await.expect("ready");
    let response = sender.send_request(request(body)).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let review: serde_json::Value = serde_json::from_slice(&body).expect("JSON answer");
    assert_eq!(
        review["response"]["patchType"], "JSONPatch",
        "the bench pod must be injected: {review}"
    );
}

fn summary(mut latencies: Vec<Duration>, percentiles: &[f64]) -> String {
    if latencies.is_empty() {
        return "no samples".to_owned();
    }
    latencies.sort_unstable();
    percentiles
        .iter()
        .map(|p| {
            let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
            let value = latencies[rank.clamp(1, latencies.len()) - 1];
            let name = if *p >= 100.0 {
                "max".to_owned()
            } else {
                format!("p{p}")
            };
            format!("{name} {:.3} ms", value.as_secs_f64() * 1e3)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn connect(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let stream = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn);
    sender
}

fn client_tls(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A review of the pod the ReplicaSet controller makes for a typical
/// Deployment: one container, ports, env, resources, the token volume.
fn review_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "b6a1f2c0-1111-4222-8333-444455556666",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "c3f0a0a0-0000-4000-8000-000000000002",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": "web-7d4b9c8f6d-",
                    "namespace": NAMESPACE,
                    "labels": {"app": "web", "version": "v11", "pod-template-hash": "7d4b9c8f6d"},
                    "annotations": {"kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "name": "web-7d4b9c8f6d", "uid": "8a1c7f7e-0000-4000-8000-000000000001",
                        "controller": true, "blockOwnerDeletion": true}]
                },
                "spec": {
                    "serviceAccountName": "web",
                    "containers": [{
                        "name": "web-svc",
                        "image": "docker.l5d.io/buoyantio/emojivoto-web:v11",
                        "env": [
                            {"name": "WEB_PORT", "value": "8080"},
                            {"name": "EMOJISVC_HOST", "value": "emoji-svc.emojivoto:8080"},
                            {"name": "VOTINGSVC_HOST", "value": "voting-svc.emojivoto:8080"},
                            {"name": "INDEX_BUNDLE", "value": "dist/index_bundle.js"}
                        ],
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                        "volumeMounts": [{"name": "kube-api-access-abcde",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]
                    }],
                    "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
                    ]}}],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "tolerations": [
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                    ]
                }
            },
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    }))
    .expect("review JSON")
}
