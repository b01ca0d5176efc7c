//! TLS as the mesh suite plays it from outside the proxies: leaf
//! certificates the test mints (from the real issuer, another CA, expired,
//! another trust domain), a probe that opens mesh TLS to a pod's inbound
//! proxy with such a certificate and records the chain the proxy presents,
//! and an HTTPS client of weft-control that verifies it as a proxy does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use weft_certs::{Issuer, SpiffeId, TrustAnchor};
use weft_testrig::Pod;

use super::TestResult;
use super::app::connect_from;

/// The ALPN protocol of mesh TLS.
pub const MESH_ALPN: &[u8] = b"weft/1";

/// A certificate chain and its key, for a TLS client.
pub struct Leaf {
    /// Leaf first, then the issuer.
    pub chain: Vec<CertificateDer<'static>>,
    /// The same chain as PEM.
    pub chain_pem: String,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

impl Leaf {
    /// A leaf for `identity` from `issuer`, as issued at `now` (valid from
    /// five minutes before `now` for `validity`).
    pub fn issue(
        issuer: &Issuer,
        identity: &SpiffeId,
        validity: Duration,
        now: SystemTime,
    ) -> TestResult<Self> {
        let (pair, _) = issuer.issue_with_key(identity, &[], validity, now)?;
        let chain = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes())?;
        Ok(Leaf {
            chain,
            chain_pem: pair.cert_pem,
            key,
        })
    }

    /// A leaf for `identity` from a CA that is not the mesh's: a new anchor
    /// and issuer made here.
    pub fn from_another_ca(identity: &SpiffeId) -> TestResult<Self> {
        let day = Duration::from_secs(86_400);
        let anchor = TrustAnchor::generate("somebody else's anchor", 30 * day)?;
        let pair = anchor.issue_issuer("somebody else's issuer", 10 * day)?;
        let issuer = Issuer::from_pem(&pair.cert_pem, &pair.key_pem)?;
        Self::issue(&issuer, identity, day, SystemTime::now())
    }

    /// A leaf for `identity` from `issuer` that expired minutes ago: issued
    /// as of the issuer's first valid second, for one minute.
    pub fn expired(issuer: &Issuer, identity: &SpiffeId) -> TestResult<Self> {
        let at = issuer.not_before() + Duration::from_secs(1);
        let leaf = Self::issue(issuer, identity, Duration::from_secs(60), at)?;
        let not_after = weft_certs::not_after(&leaf.chain_pem)?;
        if not_after >= SystemTime::now() {
            return Err("the 'expired' leaf has not expired".into());
        }
        Ok(leaf)
    }
}

/// The PEM form of a DER certificate, for `weft_certs`' readers.
pub fn pem_of(der: &CertificateDer<'_>) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.as_ref().to_vec()))
}

/// The URI SANs of a DER certificate.
pub fn uris_of(der: &CertificateDer<'_>) -> TestResult<Vec<String>> {
    let summary = weft_certs::summarize(&pem_of(der))?;
    Ok(summary.into_iter().flat_map(|c| c.uris).collect())
}

/// What a probe saw.
#[derive(Debug)]
pub struct Probe {
    /// The chain the server presented (leaf first), whatever came after.
    pub server_chain: Vec<CertificateDer<'static>>,
    /// The HTTP status of the probe's request, or why there was none.
    pub outcome: Result<u16, String>,
}

/// Opens mesh TLS from `pod` to `to` (a pod's application port, which its
/// `WEFT_INBOUND` chain redirects to the inbound proxy) with `client` as
/// the client certificate (none when `None`), then sends one HTTP/1.1
/// request inside. The server's chain is recorded, not judged: the probe
/// is there to see what the inbound proxy accepts.
pub async fn probe(
    pod: &Pod<'_>,
    to: SocketAddr,
    server_name: &str,
    client: Option<&Leaf>,
) -> TestResult<Probe> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        provider: provider.clone(),
        seen: Mutex::default(),
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone());
    let mut config = match client {
        Some(leaf) => builder.with_client_auth_cert(leaf.chain.clone(), leaf.key.clone_key())?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![MESH_ALPN.to_vec()];
    let tcp = connect_from(pod, to).await?;
    let name = ServerName::try_from(server_name.to_owned())?;
    let exchange = async {
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        // In TLS 1.3 the server judges the client's certificate after the
        // client has finished, so a refusal shows on the first read.
        let request = format!("GET /probe HTTP/1.1\r\nhost: {to}\r\nconnection: close\r\n\r\n");
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&answer);
        text.lines()
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("no HTTP answer ({} bytes)", answer.len()))
    };
    let outcome = tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .unwrap_or_else(|_| Err("no answer within 20 s".to_owned()));
    let server_chain = recorder
        .seen
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    Ok(Probe {
        server_chain,
        outcome,
    })
}

/// Records the server's chain and accepts it; the handshake's signatures
/// are still checked, so the chain is the one the server holds the key of.
#[derive(Debug)]
struct Recorder {
    provider: Arc<CryptoProvider>,
    seen: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.push(end_entity.clone().into_owned());
        seen.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The DER of the PEM certificate `pem` (its first block).
pub fn der_of(pem: &str) -> TestResult<CertificateDer<'static>> {
    Ok(CertificateDer::from_pem_slice(pem.as_bytes())?)
}

/// `GET path` over HTTPS from the host to weft-control at `addr`, verified
/// as a proxy verifies it: against `anchors_pem` only, for `name`.
pub async fn control_get(
    addr: SocketAddr,
    anchors_pem: &str,
    name: &str,
    path: &str,
) -> TestResult<(u16, String)> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(anchors_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_owned())?, tcp)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header("host", name)
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
