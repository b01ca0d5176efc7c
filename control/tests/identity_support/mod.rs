//! Shared pieces of the identity suites: the real `weft-control` binary run
//! against the local cluster, a client that speaks to identity as a proxy
//! does (TLS verified against the trust anchors only), CSRs, and JWTs
//! signed with the cluster's own service-account key.

#![allow(dead_code)] // each suite uses its own subset of the helpers

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use rcgen::{CertificateParams, KeyPair, SanType};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_rustls::TlsConnector;
use weft_certs::{DEFAULT_ISSUER_NAME, TrustAnchor};
use weft_control::identity::{CERTIFY_PATH, CertifyRequest, CertifyResponse};
use weft_e2e::Cluster;
use weft_webhook_config::IdentityCerts;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The audience of a proxy's token.
pub const AUDIENCE: &str = "identity.weft.dev";
/// The name a proxy verifies identity's certificate for.
pub const IDENTITY_NAME: &str = "weft-identity.weft.svc.cluster.local";
/// The service-account issuer of the local cluster (`--service-account-issuer`).
pub const CLUSTER_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The mesh PKI of a test: an anchor, and the issuer files weft-control reads.
pub struct MeshPki {
    pub dir: tempfile::TempDir,
    pub anchor: TrustAnchor,
    pub issuer_cert: PathBuf,
    pub issuer_key: PathBuf,
    pub anchors: PathBuf,
}

impl MeshPki {
    /// A new anchor and issuer, written as the Secret and ConfigMap mount them.
    pub fn new() -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        let anchor = TrustAnchor::generate("e2e trust anchor", Duration::from_secs(86_400 * 30))?;
        let pki = MeshPki {
            issuer_cert: dir.path().join("tls.crt"),
            issuer_key: dir.path().join("tls.key"),
            anchors: dir.path().join("ca-bundle.crt"),
            dir,
            anchor,
        };
        std::fs::write(&pki.anchors, pki.anchor.cert_pem())?;
        pki.rotate_issuer()?;
        Ok(pki)
    }

    /// Writes a new issuer from the same anchor (an issuer rotation); returns
    /// its certificate.
    pub fn rotate_issuer(&self) -> Result<String, BoxError> {
        let pair = self
            .anchor
            .issue_issuer(DEFAULT_ISSUER_NAME, Duration::from_secs(86_400 * 7))?;
        // Key first, then certificate: the reloader may see the pair half
        // written, and must then keep the previous issuer.
        std::fs::write(&self.issuer_key, &pair.key_pem)?;
        std::fs::write(&self.issuer_cert, &pair.cert_pem)?;
        Ok(pair.cert_pem)
    }

    /// The identity material for a render.
    pub fn identity_certs(&self) -> Result<IdentityCerts, BoxError> {
        Ok(IdentityCerts {
            trust_anchors_pem: std::fs::read_to_string(&self.anchors)?,
            issuer_cert_pem: std::fs::read_to_string(&self.issuer_cert)?,
            issuer_key_pem: std::fs::read_to_string(&self.issuer_key)?,
        })
    }
}

/// weft-control's namespace and RBAC as `weft install` renders them, and a
/// kubeconfig (in the PKI's folder) with a token of its ServiceAccount: the
/// process then has exactly the rights the manifests grant.
pub async fn least_privilege_kubeconfig(
    cluster: &Cluster,
    pki: &MeshPki,
) -> Result<PathBuf, BoxError> {
    Ok(weft_e2e::control::least_privilege_kubeconfig(
        cluster,
        pki.identity_certs()?,
        pki.dir.path(),
    )
    .await?)
}

/// A running `weft-control` (killed on drop).
pub struct Control {
    child: Child,
    pub identity: SocketAddr,
    pub destination: SocketAddr,
    pub admin: SocketAddr,
    log: PathBuf,
}

impl Control {
    /// Starts the binary built with these tests against `kubeconfig` and
    /// waits until `/ready` says so.
    pub async fn start(pki: &MeshPki, kubeconfig: &Path) -> Result<Self, BoxError> {
        let ports = weft_e2e::ports::free_ports(3)?;
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let log = pki.dir.path().join("weft-control.log");
        let child = Command::new(env!("CARGO_BIN_EXE_weft-control"))
            .arg(format!("--identity-listen={}", addr(ports[0])))
            .arg(format!("--destination-listen={}", addr(ports[1])))
            .arg(format!("--admin-listen={}", addr(ports[2])))
            .arg("--issuer-cert-file")
            .arg(&pki.issuer_cert)
            .arg("--issuer-key-file")
            .arg(&pki.issuer_key)
            .arg("--trust-anchors-file")
            .arg(&pki.anchors)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--log=info,weft_control=debug")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()?;
        let mut control = Control {
            child,
            identity: addr(ports[0]),
            destination: addr(ports[1]),
            admin: addr(ports[2]),
            log,
        };
        control.wait_ready(Duration::from_secs(60)).await?;
        Ok(control)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), BoxError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("weft-control exited ({status}):\n{}", self.log_text()).into());
            }
            if let Ok((status, _)) = http_get(self.admin, "/ready").await
                && status == StatusCode::OK
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("weft-control not ready:\n{}", self.log_text()).into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The admin port's `/metrics` text.
    pub async fn metrics(&self) -> Result<String, BoxError> {
        Ok(http_get(self.admin, "/metrics").await?.1)
    }
}

/// One plain HTTP/1.1 GET.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(StatusCode, String), BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let request = Request::get(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8(body.to_vec())?))
}

/// A keep-alive HTTPS connection to identity, verified as a proxy verifies
/// it: against the trust anchors only, for [`IDENTITY_NAME`].
pub struct IdentityClient {
    sender: Sender,
}

/// The HTTP version negotiated by ALPN.
enum Sender {
    H1(SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl IdentityClient {
    /// Connects to `addr` with HTTP/1.1, trusting only `anchors_pem`.
    pub async fn connect(addr: SocketAddr, anchors_pem: &str) -> Result<Self, BoxError> {
        Self::connect_with(addr, anchors_pem, false).await
    }

    /// Connects to `addr` with HTTP/2 (ALPN `h2`, as the proxy does).
    pub async fn connect_h2(addr: SocketAddr, anchors_pem: &str) -> Result<Self, BoxError> {
        Self::connect_with(addr, anchors_pem, true).await
    }

    async fn connect_with(addr: SocketAddr, anchors_pem: &str, h2: bool) -> Result<Self, BoxError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(anchors_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![if h2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from(IDENTITY_NAME)?, tcp)
            .await?;
        let sender = if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
            tokio::spawn(conn);
            Sender::H2(sender)
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(conn);
            Sender::H1(sender)
        };
        Ok(IdentityClient { sender })
    }

    /// `POST /v1/certify` with `body`; the status and the body text.
    pub async fn post(&mut self, body: Vec<u8>) -> Result<(StatusCode, String), BoxError> {
        let request = Request::post(format!("https://{IDENTITY_NAME}{CERTIFY_PATH}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = match &mut self.sender {
            Sender::H1(sender) => {
                sender.ready().await?;
                let (mut parts, body) = request.into_parts();
                // HTTP/1.1 wants an origin-form target and a Host header.
                parts.uri = CERTIFY_PATH.parse()?;
                parts.headers.insert(
                    http::header::HOST,
                    http::HeaderValue::from_static(IDENTITY_NAME),
                );
                sender
                    .send_request(Request::from_parts(parts, body))
                    .await?
            }
            Sender::H2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
        };
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8(body.to_vec())?))
    }

    /// Certifies `csr` with `token`.
    pub async fn certify(
        &mut self,
        token: &str,
        csr: &str,
    ) -> Result<(StatusCode, String), BoxError> {
        let body = serde_json::to_vec(&CertifyRequest {
            token: token.to_owned(),
            csr: csr.to_owned(),
        })?;
        self.post(body).await
    }
}

/// A CSR for `uri` on a fresh key, as a proxy makes it.
pub fn csr_for(uri: &str) -> Result<String, BoxError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
    Ok(params.serialize_request(&key)?.pem()?)
}

/// A real projected-style token from the API server (TokenRequest).
pub async fn token(
    client: &kube::Client,
    namespace: &str,
    service_account: &str,
    audience: Option<&str>,
) -> Result<String, BoxError> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.map(|a| vec![a.to_owned()]).unwrap_or_default(),
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer = accounts
        .create_token_request(service_account, &PostParams::default(), &request)
        .await?;
    Ok(answer
        .status
        .ok_or("no token in the TokenRequest answer")?
        .token)
}

/// A service-account JWT signed with the cluster's own signing key (the
/// e2e PKI keeps it in `pki/sa.key`), expiring at `exp`.
pub fn signed_token(
    cluster: &Cluster,
    namespace: &str,
    service_account: &str,
    uid: &str,
    exp: SystemTime,
) -> Result<String, BoxError> {
    let key_pem = std::fs::read_to_string(cluster.dir().join("pki/sa.key"))?;
    sign_es256(
        &key_pem,
        &json!({
            "iss": CLUSTER_ISSUER,
            "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
            "aud": [AUDIENCE],
            "iat": unix(exp)? - 7200,
            "nbf": unix(exp)? - 7200,
            "exp": unix(exp)?,
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": service_account, "uid": uid},
            },
        }),
    )
}

fn unix(t: SystemTime) -> Result<i64, BoxError> {
    Ok(i64::try_from(
        t.duration_since(SystemTime::UNIX_EPOCH)?.as_secs(),
    )?)
}

/// A compact JWS (ES256) of `claims` with the PKCS#8 P-256 key in `key_pem`.
pub fn sign_es256(key_pem: &str, claims: &serde_json::Value) -> Result<String, BoxError> {
    let der = ::pem::parse(key_pem)?.into_contents();
    let rng = ring::rand::SystemRandom::new();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der,
        &rng,
    )
    .map_err(|e| format!("not a P-256 PKCS#8 key: {e}"))?;
    let header =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!({"alg": "ES256", "typ": "JWT"}))?);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
    let signing_input = format!("{header}.{payload}");
    let signature = key
        .sign(&rng, signing_input.as_bytes())
        .map_err(|e| format!("signing failed: {e}"))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

/// Checks an answer as a proxy's peer would: the chain verifies to
/// `anchors_pem` for client authentication now.
pub fn verify_chain(anchors_pem: &str, answer: &CertifyResponse) -> Result<(), BoxError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(anchors_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
    let leaf = CertificateDer::from_pem_slice(answer.certificate.as_bytes())?;
    let mut intermediates = Vec::new();
    for pem in &answer.chain {
        intermediates.push(CertificateDer::from_pem_slice(pem.as_bytes())?);
    }
    verifier.verify_client_cert(&leaf, &intermediates, UnixTime::now())?;
    Ok(())
}
