//! The issuer identity signs with, reloaded from its files while serving.
//!
//! The issuer Secret (`tls.crt`, `tls.key`) and the trust-anchor bundle are
//! mounted as files. An [`IssuerReloader`] polls them; when their content
//! changes (Kubernetes swaps a symlink, so content is what to watch) it
//! loads the new issuer, checks that one of the anchors signed it and that
//! it is valid now, and swaps it into the [`IssuerStore`]. A pair that does
//! not load is logged and counted, and the previous issuer keeps signing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use sha2::{Digest as _, Sha256};
use weft_certs::{Issuer, TrustBundle};

use super::metrics::{IdentityMetrics, ReloadResult};

/// How often the files are read by default. Kubernetes takes up to a minute
/// to project a changed Secret, so 2 s adds little.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The issuer in use, and which load it came from.
#[derive(Debug)]
pub struct LoadedIssuer {
    /// The issuer.
    pub issuer: Issuer,
    /// Counts loads: a new value means a new issuer (the serving certificate
    /// is re-issued from it).
    pub generation: u64,
}

/// The current issuer, shared by the handlers and the reloader.
#[derive(Debug, Default)]
pub struct IssuerStore {
    current: ArcSwapOption<LoadedIssuer>,
    generations: AtomicU64,
}

impl IssuerStore {
    /// A store with no issuer yet (identity is not ready).
    pub fn new() -> Self {
        Self::default()
    }

    /// The issuer in use, if one is loaded.
    pub fn current(&self) -> Option<Arc<LoadedIssuer>> {
        self.current.load_full()
    }

    /// Signs with `issuer` from now on.
    pub fn set(&self, issuer: Issuer) {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        self.current
            .store(Some(Arc::new(LoadedIssuer { issuer, generation })));
    }
}

/// Why the files do not hold a usable issuer.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate, key or bundle is invalid, or they do not fit together.
    #[error("{what}: {source}")]
    Certs {
        /// Which file or check.
        what: &'static str,
        /// What is wrong.
        source: weft_certs::Error,
    },
}

/// What one look at the files found.
#[derive(Debug)]
pub enum Reload {
    /// Same content as last time.
    Unchanged,
    /// A new issuer signs from now on.
    Loaded,
    /// The files changed but hold no usable issuer.
    Failed(IssuerError),
}

/// The issuer's files.
#[derive(Debug, Clone)]
pub struct IssuerFiles {
    /// The issuer certificate (PEM; the Secret's `tls.crt`).
    pub cert: PathBuf,
    /// Its PKCS#8 key (the Secret's `tls.key`).
    pub key: PathBuf,
    /// The trust bundle the issuer must chain to (`ca-bundle.crt`); when
    /// absent, that check is skipped.
    pub trust_anchors: Option<PathBuf>,
}

/// Polls the issuer's files and swaps in each new valid issuer.
#[derive(Debug)]
pub struct IssuerReloader {
    files: IssuerFiles,
    store: Arc<IssuerStore>,
    metrics: IdentityMetrics,
    seen: Option<Result<[u8; 32], String>>,
}

impl IssuerReloader {
    /// A reloader of `files` into `store`.
    pub fn new(files: IssuerFiles, store: Arc<IssuerStore>, metrics: IdentityMetrics) -> Self {
        IssuerReloader {
            files,
            store,
            metrics,
            seen: None,
        }
    }

    /// Looks at the files once and loads them if they changed since the
    /// last look (the first look always tries).
    pub async fn poll(&mut self) -> Reload {
        let contents = self.read().await;
        let seen = match &contents {
            Ok(texts) => Ok(digest(texts)),
            Err(error) => Err(error.to_string()),
        };
        if self.seen.as_ref() == Some(&seen) {
            return Reload::Unchanged;
        }
        self.seen = Some(seen);

        match contents.and_then(|texts| load(&texts, SystemTime::now())) {
            Ok(issuer) => {
                let not_after = issuer.not_after();
                self.store.set(issuer);
                self.metrics.issuer_loaded(not_after);
                self.metrics.issuer_reload(ReloadResult::success);
                tracing::info!(
                    cert = %self.files.cert.display(),
                    not_after = %super::rfc3339(not_after),
                    "issuer loaded"
                );
                Reload::Loaded
            }
            Err(error) => {
                self.metrics.issuer_reload(ReloadResult::failure);
                // During a Secret update the files can briefly disagree; the
                // next poll sees the settled pair and loads it.
                tracing::warn!(
                    cert = %self.files.cert.display(),
                    %error,
                    kept_previous = self.store.current().is_some(),
                    "cannot load the issuer"
                );
                Reload::Failed(error)
            }
        }
    }

    /// Polls every `interval` until the task is dropped, calling
    /// `after_poll` after each look (the serving certificate's renewal).
    pub async fn run(mut self, interval: Duration, mut after_poll: impl FnMut() + Send) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let _ = self.poll().await;
            after_poll();
        }
    }

    async fn read(&self) -> Result<Vec<String>, IssuerError> {
        let mut paths = vec![&self.files.cert, &self.files.key];
        paths.extend(self.files.trust_anchors.as_ref());
        let mut texts = Vec::with_capacity(paths.len());
        for path in paths {
            texts.push(read(path).await?);
        }
        Ok(texts)
    }
}

async fn read(path: &Path) -> Result<String, IssuerError> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|source| IssuerError::Read {
            path: path.to_owned(),
            source,
        })
}

/// The issuer in `texts` (certificate, key, optional bundle), checked.
fn load(texts: &[String], now: SystemTime) -> Result<Issuer, IssuerError> {
    let certs = |what, source| IssuerError::Certs { what, source };
    let [cert, key, rest @ ..] = texts else {
        return Err(certs(
            "issuer files",
            weft_certs::Error::NoPemBlock {
                expected: "CERTIFICATE",
            },
        ));
    };
    let issuer = Issuer::from_pem(cert, key).map_err(|e| certs("issuer certificate and key", e))?;
    if let Some(bundle) = rest.first() {
        let anchors = TrustBundle::from_pem(bundle).map_err(|e| certs("trust anchors", e))?;
        issuer
            .check_signed_by(&anchors)
            .map_err(|e| certs("trust anchors", e))?;
    }
    // An issuer outside its dates would sign certificates nobody accepts.
    if now < issuer.not_before() || now >= issuer.not_after() {
        return Err(certs(
            "issuer certificate",
            weft_certs::Error::CaNotValidNow {
                not_after_unix: issuer
                    .not_after()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    .unwrap_or(0),
            },
        ));
    }
    Ok(issuer)
}

fn digest(texts: &[String]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for text in texts {
        // Length-prefixed so bytes moving between files change the digest.
        hash.update((text.len() as u64).to_be_bytes());
        hash.update(text.as_bytes());
    }
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;
    use weft_certs::{DEFAULT_ISSUER_NAME, TrustAnchor};

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    struct Fixture {
        dir: tempfile::TempDir,
        files: IssuerFiles,
        anchor: TrustAnchor,
    }

    fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let anchor = TrustAnchor::generate("test anchor", 10 * DAY)?;
        let files = IssuerFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
            trust_anchors: Some(dir.path().join("ca-bundle.crt")),
        };
        std::fs::write(dir.path().join("ca-bundle.crt"), anchor.cert_pem())?;
        Ok(Fixture { dir, files, anchor })
    }

    fn write_issuer(f: &Fixture, anchor: &TrustAnchor) -> Result<(), Box<dyn std::error::Error>> {
        let pair = anchor.issue_issuer(DEFAULT_ISSUER_NAME, DAY)?;
        std::fs::write(&f.files.cert, pair.cert_pem)?;
        std::fs::write(&f.files.key, pair.key_pem)?;
        Ok(())
    }

    fn reloader(f: &Fixture) -> (IssuerReloader, Arc<IssuerStore>, IdentityMetrics) {
        let store = Arc::new(IssuerStore::new());
        let metrics = IdentityMetrics::register(&mut Registry::default());
        (
            IssuerReloader::new(f.files.clone(), store.clone(), metrics.clone()),
            store,
            metrics,
        )
    }

    #[tokio::test]
    async fn loads_rotates_and_keeps_the_last_good_issuer() -> Result<(), Box<dyn std::error::Error>>
    {
        let f = fixture()?;
        let (mut reloader, store, metrics) = reloader(&f);

        // Nothing there yet: one failure, then quiet until something changes.
        assert!(matches!(
            reloader.poll().await,
            Reload::Failed(IssuerError::Read { .. })
        ));
        assert!(matches!(reloader.poll().await, Reload::Unchanged));
        assert!(store.current().is_none());

        write_issuer(&f, &f.anchor)?;
        assert!(matches!(reloader.poll().await, Reload::Loaded));
        let first = store.current().ok_or("loaded")?;
        assert!(matches!(reloader.poll().await, Reload::Unchanged));

        // A new issuer from the same anchor replaces it.
        write_issuer(&f, &f.anchor)?;
        assert!(matches!(reloader.poll().await, Reload::Loaded));
        let second = store.current().ok_or("loaded")?;
        assert!(second.generation > first.generation);
        assert_ne!(second.issuer.cert_pem(), first.issuer.cert_pem());

        // An issuer from an anchor the bundle does not hold is refused...
        let stranger = TrustAnchor::generate("another anchor", DAY)?;
        write_issuer(&f, &stranger)?;
        assert!(matches!(
            reloader.poll().await,
            Reload::Failed(IssuerError::Certs {
                source: weft_certs::Error::NotSignedByAnchor,
                ..
            })
        ));
        // ...and so is a half-written pair; the last good issuer signs on.
        std::fs::write(&f.files.key, "garbage")?;
        assert!(matches!(reloader.poll().await, Reload::Failed(_)));
        let kept = store.current().ok_or("kept")?;
        assert_eq!(kept.generation, second.generation);

        assert_eq!(metrics.issuer_reload_count(ReloadResult::success), 2);
        assert_eq!(metrics.issuer_reload_count(ReloadResult::failure), 3);
        drop(f.dir);
        Ok(())
    }

    #[test]
    fn an_issuer_outside_its_dates_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let anchor = TrustAnchor::generate("test anchor", 10 * DAY)?;
        let pair = anchor.issue_issuer(DEFAULT_ISSUER_NAME, DAY)?;
        let texts = [pair.cert_pem, pair.key_pem, anchor.cert_pem().to_owned()];
        assert!(load(&texts, SystemTime::now()).is_ok());
        assert!(load(&texts, SystemTime::now() + 2 * DAY).is_err());
        Ok(())
    }
}
