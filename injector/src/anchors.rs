//! The mesh's trust anchors as the injector writes them into every pod
//! (`WEFT_PROXY_TRUST_ANCHORS`), reloaded from `--trust-anchors-file` while
//! serving.
//!
//! Rotating the trust anchor goes through a bundle of the old and the new
//! anchor (docs/architecture.md, "Trust anchor rotation"): the operator
//! updates the `weft-trust-anchors` ConfigMap, and pods created from then
//! on must carry the bundle. The kubelet projects the new ConfigMap into the
//! injector's volume (a symlink swap), so an [`AnchorsReloader`] polls the
//! file's content, as [`crate::tls::CertReloader`] does for the serving
//! certificate, and swaps the planner's configuration when it changes. A
//! file that does not parse is logged and counted, and the previous anchors
//! stay in use: a broken ConfigMap never reaches a pod.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};

use crate::InjectorConfig;
use crate::metrics::{Metrics, ReloadResult};

/// Why a trust-anchors file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AnchorsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The content is not UTF-8 PEM, or a block is broken.
    #[error("{path} is not PEM: {reason}")]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The file holds no certificate.
    #[error("{path} holds no certificate")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads and checks a trust-anchors file: UTF-8 PEM with at least one
/// certificate, every block parsable. Returns its text as written.
pub fn read_anchors(path: &Path) -> Result<String, AnchorsError> {
    let bytes = std::fs::read(path).map_err(|source| AnchorsError::Read {
        path: path.to_owned(),
        source,
    })?;
    check(path, bytes)
}

fn check(path: &Path, bytes: Vec<u8>) -> Result<String, AnchorsError> {
    let not_pem = |reason: String| AnchorsError::NotPem {
        path: path.to_owned(),
        reason,
    };
    let pem = String::from_utf8(bytes).map_err(|e| not_pem(e.to_string()))?;
    let anchors = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem(e.to_string()))?;
    if anchors.is_empty() {
        return Err(AnchorsError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(pem)
}

/// What one poll found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reload {
    /// The file is as last seen.
    Unchanged,
    /// New anchors are in the configuration; the next review writes them.
    Loaded,
    /// The file changed but cannot be used; the previous anchors stay.
    Failed,
}

/// Polls `--trust-anchors-file` and swaps new anchors into the shared
/// configuration.
pub struct AnchorsReloader {
    path: PathBuf,
    config: Arc<ArcSwap<InjectorConfig>>,
    metrics: Arc<Metrics>,
    seen: Option<[u8; 32]>,
}

impl AnchorsReloader {
    /// A reloader of `path` into `config`, whose anchors were read from
    /// `path` at start (so an unchanged file is not loaded again).
    pub fn new(path: &Path, config: Arc<ArcSwap<InjectorConfig>>, metrics: Arc<Metrics>) -> Self {
        let seen = config
            .load()
            .trust_anchors_pem
            .as_ref()
            .map(|pem| digest(pem.as_bytes()));
        AnchorsReloader {
            path: path.to_owned(),
            config,
            metrics,
            seen,
        }
    }

    /// Looks at the file once.
    pub async fn poll(&mut self) -> Reload {
        let read = tokio::fs::read(&self.path)
            .await
            .map_err(|source| AnchorsError::Read {
                path: self.path.clone(),
                source,
            });
        // A missing or unreadable file during a ConfigMap update is not a
        // change of content: nothing is loaded, and the next poll looks again.
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::debug!(%error, "trust anchors file unreadable; keeping the loaded anchors");
                return Reload::Unchanged;
            }
        };
        let seen = digest(&bytes);
        if self.seen == Some(seen) {
            return Reload::Unchanged;
        }
        self.seen = Some(seen);
        match check(&self.path, bytes) {
            Ok(pem) => {
                let mut next = InjectorConfig::clone(&self.config.load());
                next.trust_anchors_pem = Some(pem);
                self.config.store(Arc::new(next));
                self.metrics.trust_anchors_reload(ReloadResult::Success);
                tracing::info!(file = %self.path.display(), "trust anchors loaded; new pods get them");
                Reload::Loaded
            }
            Err(error) => {
                self.metrics.trust_anchors_reload(ReloadResult::Failure);
                tracing::warn!(%error, "trust anchors file changed but is not usable; keeping the loaded anchors");
                Reload::Failed
            }
        }
    }

    /// Polls every `interval`, forever.
    pub async fn run(mut self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let _ = self.poll().await;
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n";
    const B: &str = "-----BEGIN CERTIFICATE-----\nMIIBAQ==\n-----END CERTIFICATE-----\n";

    fn anchors(config: &ArcSwap<InjectorConfig>) -> Option<String> {
        config.load().trust_anchors_pem.clone()
    }

    #[tokio::test]
    async fn new_anchors_replace_the_old_and_bad_files_are_refused()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("ca-bundle.crt");
        std::fs::write(&path, A)?;
        let start = InjectorConfig::default().with_trust_anchors(read_anchors(&path)?);
        let config = Arc::new(ArcSwap::from_pointee(start));
        let metrics = Arc::new(Metrics::new());
        let mut reloader = AnchorsReloader::new(&path, config.clone(), metrics.clone());

        assert_eq!(reloader.poll().await, Reload::Unchanged, "read at start");
        let bundle = format!("{A}{B}");
        std::fs::write(&path, &bundle)?;
        assert_eq!(reloader.poll().await, Reload::Loaded);
        assert_eq!(anchors(&config).as_deref(), Some(bundle.as_str()));
        assert_eq!(reloader.poll().await, Reload::Unchanged);

        for bad in ["", "not pem at all", "-----BEGIN CERTIFICATE-----\n!!\n"] {
            std::fs::write(&path, bad)?;
            assert_eq!(reloader.poll().await, Reload::Failed, "{bad:?}");
            assert_eq!(anchors(&config).as_deref(), Some(bundle.as_str()));
        }
        std::fs::remove_file(&path)?;
        assert_eq!(reloader.poll().await, Reload::Unchanged, "a missing file");
        assert_eq!(anchors(&config).as_deref(), Some(bundle.as_str()));

        std::fs::write(&path, B)?;
        assert_eq!(reloader.poll().await, Reload::Loaded);
        assert_eq!(anchors(&config).as_deref(), Some(B));
        assert_eq!(metrics.trust_anchors_reloads(ReloadResult::Success), 2);
        assert_eq!(metrics.trust_anchors_reloads(ReloadResult::Failure), 3);
        Ok(())
    }

    #[test]
    fn read_anchors_names_the_file_and_the_problem() {
        let missing = read_anchors(Path::new("/nonexistent/anchors.pem"));
        assert!(matches!(missing, Err(AnchorsError::Read { .. })));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "# nothing here\n").expect("write");
        let empty = read_anchors(&path).expect_err("no certificate");
        assert!(empty.to_string().contains("empty.pem"), "{empty}");
        assert!(empty.to_string().contains("no certificate"), "{empty}");
    }
}
