//! The mesh PKI of an e2e run: a trust anchor, and the files weft-control
//! reads as the issuer Secret and trust-anchor ConfigMap would be mounted
//! (`tls.crt`, `tls.key`, `ca-bundle.crt`). An issuer rotation replaces the
//! files the way the kubelet updates a mounted Secret. A test can also load
//! the current issuer to mint a leaf of its own, to play a peer whose
//! certificate it controls.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;
use weft_certs::{DEFAULT_ISSUER_NAME, Issuer, TrustAnchor};
use weft_webhook_config::IdentityCerts;

use crate::error::{Error, Result};

/// The anchor's lifetime: longer than any test, short enough to be fake.
const ANCHOR_VALIDITY: Duration = Duration::from_secs(30 * 86_400);
/// Each issuer's lifetime.
const ISSUER_VALIDITY: Duration = Duration::from_secs(7 * 86_400);

/// An anchor and the issuer files signed by it.
pub struct MeshPki {
    dir: TempDir,
    anchor: TrustAnchor,
}

impl std::fmt::Debug for MeshPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshPki")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl MeshPki {
    /// A new anchor and a first issuer, written to a temporary folder.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("weft-e2e-mesh-pki-")
            .tempdir()
            .map_err(Error::io("creating the mesh PKI folder"))?;
        let anchor = TrustAnchor::generate("weft e2e trust anchor", ANCHOR_VALIDITY)
            .map_err(Error::MeshPki)?;
        let pki = MeshPki { dir, anchor };
        write_replacing(&pki.bundle_file(), pki.anchor.cert_pem())?;
        pki.rotate_issuer()?;
        Ok(pki)
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The trust anchor's certificate (PEM): what every proxy trusts.
    pub fn anchor_pem(&self) -> &str {
        self.anchor.cert_pem()
    }

    /// The trust bundle file (`ca-bundle.crt`).
    pub fn bundle_file(&self) -> PathBuf {
        self.dir().join("ca-bundle.crt")
    }

    /// The issuer certificate file (`tls.crt`).
    pub fn issuer_cert_file(&self) -> PathBuf {
        self.dir().join("tls.crt")
    }

    /// The issuer key file (`tls.key`).
    pub fn issuer_key_file(&self) -> PathBuf {
        self.dir().join("tls.key")
    }

    /// Replaces the issuer with a new one from the same anchor; returns its
    /// certificate (PEM). The key goes first: a reader that sees the new key
    /// with the old certificate must keep its previous issuer.
    pub fn rotate_issuer(&self) -> Result<String> {
        let pair = self
            .anchor
            .issue_issuer(DEFAULT_ISSUER_NAME, ISSUER_VALIDITY)
            .map_err(Error::MeshPki)?;
        write_replacing(&self.issuer_key_file(), &pair.key_pem)?;
        write_replacing(&self.issuer_cert_file(), &pair.cert_pem)?;
        Ok(pair.cert_pem)
    }

    /// The issuer certificate now on disk (PEM).
    pub fn issuer_cert_pem(&self) -> Result<String> {
        read(&self.issuer_cert_file())
    }

    /// The issuer now on disk, with its key: it signs what weft-control
    /// would sign.
    pub fn issuer(&self) -> Result<Issuer> {
        Issuer::from_pem(
            &read(&self.issuer_cert_file())?,
            &read(&self.issuer_key_file())?,
        )
        .map_err(Error::MeshPki)
    }

    /// The identity material for a render of the manifests.
    pub fn identity_certs(&self) -> Result<IdentityCerts> {
        Ok(IdentityCerts {
            trust_anchors_pem: read(&self.bundle_file())?,
            issuer_cert_pem: read(&self.issuer_cert_file())?,
            issuer_key_pem: read(&self.issuer_key_file())?,
        })
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))
}

/// Writes `contents` aside and renames it over `path`, so a reader never
/// sees half a file.
fn write_replacing(path: &Path, contents: &str) -> Result<()> {
    let aside = path.with_extension("new");
    std::fs::write(&aside, contents).map_err(Error::io(format!("writing {}", aside.display())))?;
    std::fs::rename(&aside, path).map_err(Error::io(format!("replacing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_replaces_the_issuer_under_the_same_anchor() {
        let pki = MeshPki::new().expect("pki");
        let first = pki.issuer_cert_pem().expect("first");
        let bundle = weft_certs::TrustBundle::from_pem(pki.anchor_pem()).expect("bundle");
        pki.issuer()
            .expect("load")
            .check_signed_by(&bundle)
            .expect("signed");
        let second = pki.rotate_issuer().expect("rotate");
        assert_ne!(first, second);
        assert_eq!(pki.issuer_cert_pem().expect("second"), second);
        let issuer = pki.issuer().expect("load the new one");
        issuer.check_signed_by(&bundle).expect("same anchor");
        assert_eq!(pki.identity_certs().expect("certs").issuer_cert_pem, second);
    }
}
