//! The webhook's serving certificate, reloaded from its files while serving.
//!
//! rustls asks a [`CertResolver`] for the certificate at every handshake,
//! and the resolver hands out whatever pair is current in an `ArcSwap`. A
//! [`CertReloader`] polls the certificate and key files, and when their
//! content changes (a rotated Secret: Kubernetes swaps a symlink, so watching
//! content rather than inotify events or mtimes is what works) it loads the
//! new pair and swaps it in. Connections already open keep the session they
//! negotiated; a new pair that does not load is logged and the old one kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest as _, Sha256};

use crate::metrics::{Metrics, ReloadResult};

/// How often the reloader looks at the files by default. Kubernetes takes
/// up to a minute to project a rotated Secret, so 2 s adds little.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Why a certificate pair cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate, or a broken one.
    #[error("the certificate file holds no valid PEM certificate: {0}")]
    Certificate(String),
    /// The key file holds no PEM private key, or a broken one.
    #[error("the key file holds no valid PEM private key: {0}")]
    Key(String),
    /// rustls refused the pair (unsupported key type, or a key that does
    /// not belong to the certificate).
    #[error("the certificate and key cannot be served: {0}")]
    Rejected(#[source] rustls::Error),
}

/// The crypto provider of every TLS endpoint here: ring (no aws-lc).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a servable pair from PEM: the certificate chain (leaf first) and
/// its private key (PKCS#8, SEC1 or PKCS#1).
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Certificate("no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(TlsError::Rejected)
}

/// Hands rustls the current serving certificate at each handshake.
#[derive(Default)]
pub struct CertResolver {
    current: ArcSwapOption<CertifiedKey>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver")
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl CertResolver {
    /// A resolver with no certificate yet: handshakes fail until one is set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `key` from the next handshake on.
    pub fn set(&self, key: CertifiedKey) {
        self.current.store(Some(Arc::new(key)));
    }

    /// Whether a certificate is loaded (part of readiness).
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // One certificate for every name: the webhook Service has one identity.
        self.current.load_full()
    }
}

/// The rustls configuration of the webhook port: TLS 1.2 and 1.3, no client
/// certificates (the API server does not send one by default), HTTP/2 and
/// HTTP/1.1 by ALPN.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rejected)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// What one look at the files found.
#[derive(Debug)]
pub enum Reload {
    /// Same content as last time: nothing to do.
    Unchanged,
    /// A new pair is served.
    Loaded,
    /// The files changed but do not hold a servable pair; the previous pair
    /// (if any) is still served.
    Failed(TlsError),
}

/// The content the reloader last looked at: a digest of both files, or the
/// error that reading them gave (so a missing file is reported once, not
/// every poll).
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Content([u8; 32]),
    Unreadable(String),
}

/// Polls the certificate and key files and swaps in each new valid pair.
#[derive(Debug)]
pub struct CertReloader {
    cert_path: PathBuf,
    key_path: PathBuf,
    resolver: Arc<CertResolver>,
    metrics: Arc<Metrics>,
    provider: Arc<CryptoProvider>,
    seen: Option<Seen>,
}

impl CertReloader {
    /// A reloader of `cert_path` and `key_path` into `resolver`.
    pub fn new(
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
        resolver: Arc<CertResolver>,
        metrics: Arc<Metrics>,
    ) -> Self {
        CertReloader {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            resolver,
            metrics,
            provider: provider(),
            seen: None,
        }
    }

    /// Looks at the files once and loads them if they changed since the
    /// last look (the first look always loads).
    pub async fn poll(&mut self) -> Reload {
        let files = read_pair(&self.cert_path, &self.key_path).await;
        let seen = match &files {
            Ok((cert, key)) => Seen::Content(digest(cert, key)),
            Err(error) => Seen::Unreadable(error.to_string()),
        };
        if self.seen.as_ref() == Some(&seen) {
            return Reload::Unchanged;
        }
        self.seen = Some(seen);

        let loaded = files.and_then(|(cert, key)| certified_key(&cert, &key, &self.provider));
        match loaded {
            Ok(key) => {
                self.resolver.set(key);
                self.metrics.certificate_reload(ReloadResult::Success);
                tracing::info!(cert = %self.cert_path.display(), "serving certificate loaded");
                Reload::Loaded
            }
            Err(error) => {
                self.metrics.certificate_reload(ReloadResult::Failure);
                // During a Secret update the two files can briefly disagree;
                // the next poll sees the settled pair and loads it.
                tracing::warn!(
                    cert = %self.cert_path.display(),
                    key = %self.key_path.display(),
                    %error,
                    kept_previous = self.resolver.is_loaded(),
                    "cannot load the serving certificate"
                );
                Reload::Failed(error)
            }
        }
    }

    /// Polls every `interval` until the task is dropped.
    pub async fn run(mut self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let _ = self.poll().await;
        }
    }
}

async fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |path: &Path| {
        let path = path.to_owned();
        async move {
            tokio::fs::read(&path)
                .await
                .map_err(|source| TlsError::Read { path, source })
        }
    };
    Ok((read(cert).await?, read(key).await?))
}

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    // Length-prefixed so moving bytes between the files changes the digest.
    hash.update((cert.len() as u64).to_be_bytes());
    hash.update(cert);
    hash.update(key);
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_typed_error_not_a_panic() {
        let provider = provider();
        assert!(matches!(
            certified_key(b"", b"", &provider),
            Err(TlsError::Certificate(_))
        ));
        assert!(matches!(
            certified_key(b"not pem at all", b"nor this", &provider),
            Err(TlsError::Certificate(_))
        ));
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            certified_key(broken, b"", &provider),
            Err(TlsError::Certificate(_))
        ));
    }

    #[test]
    fn digest_depends_on_where_the_bytes_are() {
        assert_ne!(digest(b"ab", b"c"), digest(b"a", b"bc"));
        assert_eq!(digest(b"ab", b"c"), digest(b"ab", b"c"));
    }

    #[tokio::test]
    async fn missing_files_fail_once_then_stay_quiet() {
        let dir = std::env::temp_dir().join(format!("weft-tls-missing-{}", std::process::id()));
        let metrics = Arc::new(Metrics::new());
        let resolver = Arc::new(CertResolver::new());
        let mut reloader = CertReloader::new(
            dir.join("tls.crt"),
            dir.join("tls.key"),
            resolver.clone(),
            metrics.clone(),
        );
        assert!(matches!(
            reloader.poll().await,
            Reload::Failed(TlsError::Read { .. })
        ));
        assert!(matches!(reloader.poll().await, Reload::Unchanged));
        assert_eq!(metrics.certificate_reloads(ReloadResult::Failure), 1);
        assert!(!resolver.is_loaded());
    }
}
