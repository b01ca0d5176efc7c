//! Shared pieces of the `mtls_*` tests: a test PKI from `weft-certs`, a
//! stand-in control plane (identity's `POST /v1/certify`, destination's
//! `GET /v1/resolve` and `GET /v1/watch`, served over real TLS with a
//! certificate from the test issuer, answering from tables the test fills;
//! a watch streams each change the test makes), and `weft-proxy run`
//! processes configured for the mesh.
//!
//! The control plane here is a test double of weft-control's two APIs as
//! docs/architecture.md specifies them, so the proxy is tested alone; the
//! real control plane is exercised end to end by the e2e suite.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use weft_certs::{CertificateRequest, Issuer, SpiffeId, TrustAnchor};

use super::run_support::{TestResult, admin_get};

/// The trust domain of every test identity.
pub const TD: &str = "cluster.local";
/// The namespace of the test pods.
pub const NS: &str = "shop";
/// How long a quiet destination watch waits before a `{}` heartbeat (as
/// weft-control).
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The SPIFFE ID of ServiceAccount `sa` in the test namespace.
pub fn id(sa: &str) -> String {
    format!("spiffe://{TD}/ns/{NS}/sa/{sa}")
}

/// A trust anchor and an issuer it signed.
pub struct Pki {
    pub anchor: TrustAnchor,
    pub issuer: Issuer,
    issuer_cert_pem: String,
    issuer_key_pem: String,
}

impl Pki {
    /// A fresh anchor (named `name`) and issuer.
    pub fn new(name: &str) -> TestResult<Self> {
        let day = Duration::from_secs(86_400);
        let anchor = TrustAnchor::generate(name, 30 * day)?;
        let pair = anchor.issue_issuer(&format!("{name} issuer"), 10 * day)?;
        let issuer = Issuer::from_pem(&pair.cert_pem, &pair.key_pem)?;
        Ok(Self {
            anchor,
            issuer,
            issuer_cert_pem: pair.cert_pem,
            issuer_key_pem: pair.key_pem,
        })
    }

    /// Another handle on the same issuer (same certificate and key).
    pub fn issuer(&self) -> TestResult<Issuer> {
        Ok(Issuer::from_pem(
            &self.issuer_cert_pem,
            &self.issuer_key_pem,
        )?)
    }

    /// A leaf for `sa` (plus `names` as DNS/IP SANs) issued as of `now`:
    /// its chain (leaf, issuer) and key, for a test TLS endpoint.
    pub fn leaf(
        &self,
        sa: &str,
        names: &[String],
        validity: Duration,
        now: SystemTime,
    ) -> TestResult<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let spiffe = SpiffeId::new(TD, NS, sa)?;
        let (pair, _) = self.issuer.issue_with_key(&spiffe, names, validity, now)?;
        let chain = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes())?;
        Ok((chain, key))
    }
}

/// What destination answers for an address.
#[derive(Clone, Debug)]
pub enum Destination {
    /// 200 with this JSON.
    Answer(Value),
    /// 503, as while destination's caches sync.
    Unavailable,
}

/// A meshed answer for `sa` with workload labels of pod `pod`.
pub fn meshed(addr: SocketAddr, sa: &str, pod: &str) -> Destination {
    Destination::Answer(json!({
        "addr": addr.to_string(),
        "meshed": true,
        "identity": id(sa),
        "opaque": false,
        "proxy_port": 4143,
        "labels": {
            "dst_namespace": NS,
            "dst_pod": pod,
            "dst_deployment": sa,
            "dst_serviceaccount": sa,
        },
    }))
}

/// An unmeshed answer, as destination gives for an address no pod has.
pub fn unmeshed(addr: SocketAddr) -> Destination {
    Destination::Answer(json!({ "addr": addr.to_string(), "meshed": false }))
}

struct State {
    issuer: Issuer,
    tokens: Mutex<HashMap<String, String>>,
    answers: Mutex<HashMap<String, Destination>>,
    // Bumped on every change of `answers`: open watches look again.
    version: watch::Sender<u64>,
    // Bumped to end every open watch.
    ends: watch::Sender<u64>,
    watches_opened: AtomicUsize,
    watches_open: AtomicUsize,
    lifetime: Mutex<Duration>,
    identity_down: AtomicBool,
    issued: Mutex<Vec<String>>,
}

/// The stand-in control plane: identity and destination on one TLS port.
pub struct ControlPlane {
    pub addr: SocketAddr,
    state: Arc<State>,
    anchors_pem: String,
}

impl ControlPlane {
    /// Serves on 127.0.0.1 with a certificate for weft-control's identity
    /// and the IP SAN 127.0.0.1, issued by `pki`.
    pub async fn start(pki: &Pki) -> TestResult<Self> {
        Self::serve_on(pki, TcpListener::bind("127.0.0.1:0").await?)
    }

    /// Serves on `listener` (e.g. one made in a rig pod), with its IP as
    /// the certificate's IP SAN.
    pub fn serve_on(pki: &Pki, listener: TcpListener) -> TestResult<Self> {
        let addr = listener.local_addr()?;
        let (chain, key) = pki.leaf(
            "weft-control",
            &[addr.ip().to_string()],
            Duration::from_secs(3600),
            SystemTime::now(),
        )?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let state = Arc::new(State {
            issuer: pki.issuer()?,
            tokens: Mutex::default(),
            answers: Mutex::default(),
            version: watch::Sender::new(0),
            ends: watch::Sender::new(0),
            watches_opened: AtomicUsize::new(0),
            watches_open: AtomicUsize::new(0),
            lifetime: Mutex::new(Duration::from_secs(3600)),
            identity_down: AtomicBool::new(false),
            issued: Mutex::default(),
        });
        let serving = state.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, state) = (acceptor.clone(), serving.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(route(&state, req).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            state,
            anchors_pem: pki.anchor.cert_pem().to_owned(),
        })
    }

    /// The PEM bundle proxies trust.
    pub fn anchors_pem(&self) -> &str {
        &self.anchors_pem
    }

    /// The variables that put a proxy of ServiceAccount `sa` in the mesh
    /// (what the injector writes), its token read from `token_file`.
    pub fn mesh_env(&self, sa: &str, token_file: &std::path::Path) -> Vec<(String, String)> {
        [
            ("WEFT_PROXY_POD_NAMESPACE", NS.to_owned()),
            ("WEFT_PROXY_SERVICE_ACCOUNT", sa.to_owned()),
            ("WEFT_PROXY_IDENTITY_TRUST_DOMAIN", TD.to_owned()),
            (
                "WEFT_PROXY_IDENTITY_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("WEFT_PROXY_IDENTITY_ADDR", self.addr.to_string()),
            ("WEFT_PROXY_DESTINATION_ADDR", self.addr.to_string()),
            ("WEFT_PROXY_TRUST_ANCHORS", self.anchors_pem.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Identity grants `token` the ServiceAccount `sa` (in the test namespace).
    pub fn grant(&self, token: &str, sa: &str) {
        lock(&self.state.tokens).insert(token.to_owned(), sa.to_owned());
    }

    /// Destination's answer for `addr`, from now on: open watches on it
    /// send it at once (when it differs from their last line).
    pub fn answer(&self, addr: SocketAddr, destination: Destination) {
        lock(&self.state.answers).insert(addr.to_string(), destination);
        self.state.version.send_modify(|v| *v += 1);
    }

    /// Ends every open watch, as a restarting destination does.
    pub fn end_watches(&self) {
        self.state.ends.send_modify(|v| *v += 1);
    }

    /// Watches opened so far.
    pub fn watches_opened(&self) -> usize {
        self.state.watches_opened.load(Ordering::SeqCst)
    }

    /// Watches open now.
    pub fn watches_open(&self) -> usize {
        self.state.watches_open.load(Ordering::SeqCst)
    }

    /// The lifetime of certificates issued from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        *lock(&self.state.lifetime) = lifetime;
    }

    /// Makes identity answer 503 (as while the API server is unreachable).
    pub fn set_identity_down(&self, down: bool) {
        self.state.identity_down.store(down, Ordering::SeqCst);
    }

    /// How many certificates were issued for ServiceAccount `sa`.
    pub fn issued(&self, sa: &str) -> usize {
        let wanted = id(sa);
        lock(&self.state.issued)
            .iter()
            .filter(|i| **i == wanted)
            .count()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn refuse(status: StatusCode, why: impl std::fmt::Display) -> Response<Full<Bytes>> {
    reply(status, &json!({ "error": why.to_string() }))
}

type Reply = Response<UnsyncBoxBody<Bytes, Infallible>>;

async fn route(state: &Arc<State>, req: Request<Incoming>) -> Reply {
    let full = |response: Response<Full<Bytes>>| response.map(BodyExt::boxed_unsync);
    match (req.method().as_str(), req.uri().path()) {
        ("POST", "/v1/certify") => full(certify(state, req).await),
        ("GET", "/v1/resolve") => full(resolve(state, &req)),
        ("GET", "/v1/watch") => watch_addr(state, &req),
        _ => full(refuse(StatusCode::NOT_FOUND, "no such route")),
    }
}

async fn certify(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "not JSON");
    };
    let (Some(token), Some(csr)) = (request["token"].as_str(), request["csr"].as_str()) else {
        return refuse(StatusCode::BAD_REQUEST, "token and csr are required");
    };
    let csr = match CertificateRequest::from_pem(csr) {
        Ok(csr) => csr,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let Some(sa) = lock(&state.tokens).get(token).cloned() else {
        return refuse(StatusCode::UNAUTHORIZED, "unknown token");
    };
    let identity = match SpiffeId::new(TD, NS, &sa) {
        Ok(identity) => identity,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, e),
    };
    if let Err(e) = csr.check_identity(&identity) {
        return refuse(StatusCode::FORBIDDEN, e);
    }
    if state.identity_down.load(Ordering::SeqCst) {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "identity is down");
    }
    let lifetime = *lock(&state.lifetime);
    match state
        .issuer
        .certify(&csr, &identity, lifetime, SystemTime::now())
    {
        Ok(issued) => {
            lock(&state.issued).push(identity.to_string());
            reply(
                StatusCode::OK,
                &json!({
                    "certificate": issued.cert_pem,
                    "chain": issued.chain_pem,
                    "not_after": "",
                }),
            )
        }
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn query_addr(req: &Request<Incoming>) -> String {
    req.uri()
        .query()
        .and_then(|q| q.strip_prefix("addr="))
        .unwrap_or_default()
        .replace("%5B", "[")
        .replace("%5D", "]")
}

/// The answer for `addr` now; `None` while "unavailable".
fn lookup(state: &State, addr: &str) -> Option<Value> {
    match lock(&state.answers).get(addr) {
        Some(Destination::Answer(json)) => Some(json.clone()),
        Some(Destination::Unavailable) => None,
        None => Some(json!({ "addr": addr, "meshed": false })),
    }
}

fn resolve(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match lookup(state, &query_addr(req)) {
        Some(answer) => reply(StatusCode::OK, &answer),
        None => refuse(StatusCode::SERVICE_UNAVAILABLE, "caches not synced"),
    }
}

/// A watch's body: the lines its task sends.
struct Lines(mpsc::Receiver<Bytes>);

impl http_body::Body for Lines {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|l| Ok(Frame::data(l))))
    }
}

fn line(answer: &Value) -> Bytes {
    Bytes::from(format!("{answer}\n"))
}

/// Counts a watch as open until dropped.
struct OpenWatch(Arc<State>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.watches_open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `/v1/watch` as weft-control serves it: the answer, then a line on each
/// change, `{}` after [`HEARTBEAT`] without one; 503 while unavailable.
/// The stream ends when the client leaves, the answer becomes unavailable,
/// or the test ends every watch.
fn watch_addr(state: &Arc<State>, req: &Request<Incoming>) -> Reply {
    let addr = query_addr(req);
    let Some(first) = lookup(state, &addr) else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
            .map(BodyExt::boxed_unsync);
    };
    let (lines, body) = mpsc::channel(16);
    let mut version = state.version.subscribe();
    let mut ends = state.ends.subscribe();
    state.watches_opened.fetch_add(1, Ordering::SeqCst);
    state.watches_open.fetch_add(1, Ordering::SeqCst);
    let open = OpenWatch(state.clone());
    tokio::spawn(async move {
        let state = &open.0;
        let mut last = first;
        if lines.send(line(&last)).await.is_err() {
            return;
        }
        loop {
            let next = tokio::select! {
                changed = version.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    match lookup(state, &addr) {
                        Some(answer) if answer != last => answer,
                        Some(_) => continue,
                        None => return,
                    }
                }
                _ = ends.changed() => return,
                () = lines.closed() => return,
                () = tokio::time::sleep(HEARTBEAT) => {
                    if lines.send(Bytes::from_static(b"{}\n")).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            last = next;
            if lines.send(line(&last)).await.is_err() {
                return;
            }
        }
    });
    let mut response = Response::new(Lines(body).boxed_unsync());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// A loopback address of its own for each proxy (all of 127.0.0.0/8 is
/// `lo`), so each listens on the real ports 4143, 4140 and 4191 and tests
/// running in parallel never race for a free port.
pub fn loopback_ip() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    Ipv4Addr::new(
        127,
        100 + (pid % 100) as u8,
        (n / 250 % 256) as u8,
        (n % 250 + 1) as u8,
    )
}

/// The inbound listener of the proxy that will run on `ip`.
pub fn inbound_at(ip: Ipv4Addr) -> SocketAddr {
    SocketAddr::from((ip, 4143))
}

/// A `weft-proxy run` process in the mesh, killed on drop.
pub struct MeshProxy {
    child: Child,
    pub sa: String,
    pub inbound: SocketAddr,
    pub outbound: SocketAddr,
    pub admin: SocketAddr,
    pub token_file: PathBuf,
    _dir: tempfile::TempDir,
}

/// How to start a [`MeshProxy`].
pub struct Spawn<'a> {
    /// Its ServiceAccount (and so its identity).
    pub sa: &'a str,
    /// Where inbound connections go (the "application").
    pub inbound_target: SocketAddr,
    /// Where outbound connections go (the peer's inbound proxy).
    pub outbound_target: SocketAddr,
    /// The proxy's loopback address (chosen by the caller when destination
    /// must know it before the proxy starts), or a fresh one.
    pub ip: Option<Ipv4Addr>,
    /// Whether the token file exists at start.
    pub token: bool,
    /// More variables.
    pub extra: &'a [(&'a str, &'a str)],
}

impl MeshProxy {
    /// Starts the proxy; does not wait for `/ready`.
    pub fn spawn(control: &ControlPlane, spawn: Spawn<'_>) -> TestResult<Self> {
        let dir = tempfile::tempdir()?;
        let token_file = dir.path().join("token");
        let token = format!("token-{}", spawn.sa);
        control.grant(&token, spawn.sa);
        if spawn.token {
            std::fs::write(&token_file, &token)?;
        }
        let ip = spawn.ip.unwrap_or_else(loopback_ip);
        let inbound = SocketAddr::from((ip, 4143));
        let (outbound, admin) = (SocketAddr::from((ip, 4140)), SocketAddr::from((ip, 4191)));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft-proxy"));
        cmd.arg("run")
            .env_clear()
            .env("WEFT_PROXY_LOG", "warn")
            .env("WEFT_PROXY_INBOUND_LISTEN_ADDR", inbound.to_string())
            .env("WEFT_PROXY_OUTBOUND_LISTEN_ADDR", outbound.to_string())
            .env("WEFT_PROXY_ADMIN_LISTEN_ADDR", admin.to_string())
            .env(
                "WEFT_PROXY_INBOUND_FIXED_TARGET",
                spawn.inbound_target.to_string(),
            )
            .env(
                "WEFT_PROXY_OUTBOUND_FIXED_TARGET",
                spawn.outbound_target.to_string(),
            )
            .env("WEFT_PROXY_SHUTDOWN_GRACE_PERIOD", "2s")
            .envs(control.mesh_env(spawn.sa, &token_file))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in spawn.extra {
            cmd.env(k, v);
        }
        Ok(Self {
            child: cmd.spawn()?,
            sa: spawn.sa.to_owned(),
            inbound,
            outbound,
            admin,
            token_file,
            _dir: dir,
        })
    }

    /// The process id (for CPU accounting in the benchmark).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes the token file (as the kubelet does when it projects it).
    pub fn write_token(&self) -> TestResult {
        std::fs::write(&self.token_file, format!("token-{}", self.sa))?;
        Ok(())
    }

    /// Waits until `/ready` answers 200.
    pub async fn wait_ready(&self, limit: Duration) -> TestResult {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok((200, _)) = admin_get(self.admin, "/ready").await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("proxy {} never became ready", self.sa).into());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The proxy's `/metrics` text.
    pub async fn metrics(&self) -> TestResult<String> {
        Ok(admin_get(self.admin, "/metrics").await?.1)
    }
}

impl Drop for MeshProxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
