//! A real `weft-injector` server on loopback for the integration tests, and
//! clients that trust only the CA they are given.
//!
//! The serving certificate lives in a Kubernetes-style Secret volume: the
//! files are symlinks through `..data`, and a rotation swaps that symlink,
//! exactly what the kubelet's atomic writer does.

#![allow(dead_code)] // each test binary uses a different part of the support

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use weft_injector::InjectorConfig;
use weft_injector::metrics::Metrics;
use weft_injector::namespaces::StaticNamespaces;
use weft_injector::server::{AppState, Limits, Server};
use weft_injector::tls::{self, CertReloader, CertResolver};

/// The namespace whose pods are injected.
pub const MESHED_NS: &str = "emojivoto";
/// A namespace without the opt-in annotation.
pub const PLAIN_NS: &str = "plain";

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A CA and a serving certificate it signed for `localhost` and `127.0.0.1`.
pub struct Issued {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A fresh CA named `name` and a serving certificate for loopback.
pub fn issue(name: &str) -> Issued {
    let ca = weft_certs::Ca::generate(name, DAY).expect("CA");
    let serving = ca
        .issue_serving(&["localhost".to_owned(), "127.0.0.1".to_owned()], DAY)
        .expect("serving certificate");
    Issued {
        ca_pem: ca.cert_pem().to_owned(),
        cert_pem: serving.cert_pem,
        key_pem: serving.key_pem,
    }
}

/// A Secret-volume-like directory: `tls.crt` and `tls.key` are symlinks into
/// `..data`, itself a symlink to the current timestamped directory.
pub struct SecretVolume {
    dir: tempfile::TempDir,
    generation: u32,
}

impl SecretVolume {
    /// A volume holding `issued`.
    pub fn new(issued: &Issued) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut volume = SecretVolume { dir, generation: 0 };
        volume.write(issued);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(Path::new("..data").join(name), volume.path(name))
                .expect("file symlink");
        }
        volume
    }

    /// The path of `name` inside the volume.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Swaps in `issued` atomically, as the kubelet updates a Secret.
    pub fn write(&mut self, issued: &Issued) {
        self.generation += 1;
        let data = format!("..gen_{}", self.generation);
        std::fs::create_dir(self.path(&data)).expect("data dir");
        std::fs::write(self.path(&data).join("tls.crt"), &issued.cert_pem).expect("cert");
        std::fs::write(self.path(&data).join("tls.key"), &issued.key_pem).expect("key");
        std::os::unix::fs::symlink(&data, self.path("..data_tmp")).expect("tmp symlink");
        std::fs::rename(self.path("..data_tmp"), self.path("..data")).expect("swap ..data");
    }

    /// Overwrites the files in place with arbitrary bytes (a broken update).
    pub fn write_raw(&mut self, cert: &[u8], key: &[u8]) {
        std::fs::write(self.path("tls.crt"), cert).expect("cert");
        std::fs::write(self.path("tls.key"), key).expect("key");
    }
}

/// A running webhook.
pub struct TestServer {
    pub https: SocketAddr,
    pub admin: SocketAddr,
    pub ca_pem: String,
    pub volume: SecretVolume,
    pub metrics: Arc<Metrics>,
    pub namespaces: Arc<StaticNamespaces>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    reloader: JoinHandle<()>,
}

/// Limits short enough for tests to watch timeouts happen.
pub fn fast_limits() -> Limits {
    Limits {
        request_timeout: Duration::from_millis(500),
        handshake_timeout: Duration::from_millis(500),
        drain_timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}

impl TestServer {
    /// Starts a server on 127.0.0.1 with fresh certificates, reloading them
    /// every 100 ms.
    pub async fn start(limits: Limits) -> TestServer {
        let issued = issue("weft-test-ca");
        let volume = SecretVolume::new(&issued);
        let metrics = Arc::new(Metrics::new());
        let certs = Arc::new(CertResolver::new());
        let mut reloader = CertReloader::new(
            volume.path("tls.crt"),
            volume.path("tls.key"),
            certs.clone(),
            metrics.clone(),
        );
        assert!(matches!(reloader.poll().await, tls::Reload::Loaded));
        let reloader = tokio::spawn(reloader.run(Duration::from_millis(100)));

        let namespaces = Arc::new(StaticNamespaces::new(HashMap::from([
            (
                MESHED_NS.to_owned(),
                BTreeMap::from([("weft.dev/inject".to_owned(), "enabled".to_owned())]),
            ),
            (PLAIN_NS.to_owned(), BTreeMap::new()),
        ])));
        let state = AppState::new(
            InjectorConfig::default(),
            namespaces.clone(),
            certs.clone(),
            metrics.clone(),
            &limits,
        );
        let tls = Arc::new(tls::server_config(certs).expect("server TLS config"));
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let server = Server::bind(loopback, loopback, state, tls, limits)
            .await
            .expect("bind");
        let https = server.https_addr().expect("https addr");
        let admin = server.admin_addr().expect("admin addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        TestServer {
            https,
            admin,
            ca_pem: issued.ca_pem,
            volume,
            metrics,
            namespaces,
            stop: Some(stop),
            task: Some(task),
            reloader,
        }
    }

    /// Signals shutdown and waits for `serve` to return.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("serve task");
        }
    }

    /// An HTTP/1.1 connection trusting only this server's CA.
    pub async fn h1(&self) -> H1 {
        H1::connect(self.https, &self.ca_pem)
            .await
            .expect("connect")
    }

    /// The admin port's answer to `GET path`.
    pub async fn admin_get(&self, path: &str) -> (StatusCode, String) {
        let tcp = TcpStream::connect(self.admin).await.expect("admin connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .expect("admin handshake");
        tokio::spawn(conn);
        let request = Request::get(path)
            .header(header::HOST, "localhost")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = sender.send_request(request).await.expect("admin response");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// One sample of the admin port's `/metrics`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.admin_get("/metrics").await;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.reloader.abort();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A rustls client configuration that trusts only `ca_pem`.
pub fn client_tls(ca_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to `addr` as `localhost`, trusting only `ca_pem`.
pub async fn tls_connect(
    addr: SocketAddr,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    TlsConnector::from(client_tls(ca_pem, alpn))
        .connect(name, tcp)
        .await
}

/// A keep-alive HTTP/1.1 connection over TLS.
pub struct H1 {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl H1 {
    /// Connects and completes TLS and the HTTP/1.1 handshake.
    pub async fn connect(addr: SocketAddr, ca_pem: &str) -> std::io::Result<H1> {
        let tls = tls_connect(addr, ca_pem, &[b"http/1.1"]).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(H1 { sender })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: http::Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Result<(StatusCode, Bytes), hyper::Error> {
        self.sender.ready().await?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.into()))
            .expect("request");
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// POSTs `body` to `/mutate`.
    pub async fn mutate(&mut self, body: impl Into<Bytes>) -> (StatusCode, Bytes) {
        self.send(http::Method::POST, "/mutate", body)
            .await
            .expect("mutate")
    }

    /// GETs `path`.
    pub async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let (status, body) = self
            .send(http::Method::GET, path, Bytes::new())
            .await
            .expect("get");
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// An HTTP/2 connection over TLS (ALPN `h2`).
pub async fn h2(
    addr: SocketAddr,
    ca_pem: &str,
) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let tls = tls_connect(addr, ca_pem, &[b"h2"]).await.expect("connect");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

/// An AdmissionReview for `object` of `kind` in `namespace`.
pub fn review(
    uid: &str,
    namespace: &str,
    kind: (&str, &str, &str),
    object: serde_json::Value,
) -> Vec<u8> {
    let (group, resource, kind) = kind;
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "requestKind": {"group": group, "version": "v1", "kind": kind},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": object,
            "dryRun": false,
        }
    }))
    .expect("review JSON")
}

/// The core-group Pod kind triple for [`review`].
pub const POD: (&str, &str, &str) = ("", "pods", "Pod");

/// A pod as the ReplicaSet controller creates it for a typical Deployment.
pub fn typical_pod(namespace: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-7d4b9c8f6d-",
            "namespace": namespace,
            "labels": {"app": "web", "version": "v11", "pod-template-hash": "7d4b9c8f6d"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6d",
                "uid": "8a1c7f7e-0000-4000-8000-000000000001", "controller": true,
                "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "serviceAccountName": "web",
            "containers": [{
                "name": "web-svc",
                "image": "docker.l5d.io/buoyantio/emojivoto-web:v11",
                "env": [
                    {"name": "WEB_PORT", "value": "8080"},
                    {"name": "EMOJISVC_HOST", "value": "emoji-svc.emojivoto:8080"},
                    {"name": "VOTINGSVC_HOST", "value": "voting-svc.emojivoto:8080"}
                ],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                "volumeMounts": [{"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]
            }],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst"
        }
    })
}

/// The decoded `response` of an AdmissionReview answer.
pub fn response_of(body: &[u8]) -> serde_json::Value {
    let review: serde_json::Value = serde_json::from_slice(body).expect("answer is JSON");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    review["response"].clone()
}

/// The JSON patch a response carries, decoded from base64.
pub fn patch_of(response: &serde_json::Value) -> json_patch::Patch {
    use base64::Engine as _;
    assert_eq!(response["patchType"], "JSONPatch");
    let encoded = response["patch"]
        .as_str()
        .expect("patch is a base64 string");
    let text = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("standard base64");
    serde_json::from_slice(&text).expect("a JSON patch")
}
