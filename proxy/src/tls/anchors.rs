//! The mesh trust anchors (`WEFT_PROXY_TRUST_ANCHORS`): a PEM bundle of one
//! or more root certificates. Every certificate in it is trusted, so during
//! a rotation the bundle holds the old and the new anchor and peers whose
//! certificates chain to either keep talking.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::TlsError;

/// The roots every mesh and control-plane certificate must chain to.
#[derive(Clone, Debug)]
pub struct TrustAnchors {
    roots: Arc<RootCertStore>,
}

impl TrustAnchors {
    /// Reads every `CERTIFICATE` block of `pem`; at least one is needed and
    /// each must be usable as a root.
    pub fn from_pem(pem: &str) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for (i, der) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
            let index = i + 1;
            let der = der.map_err(|e| TlsError::BadAnchor {
                index,
                reason: e.to_string(),
            })?;
            roots.add(der).map_err(|e| TlsError::BadAnchor {
                index,
                reason: e.to_string(),
            })?;
        }
        if roots.is_empty() {
            return Err(TlsError::NoAnchors);
        }
        Ok(Self {
            roots: Arc::new(roots),
        })
    }

    /// The anchors as rustls roots.
    pub fn roots(&self) -> Arc<RootCertStore> {
        self.roots.clone()
    }

    /// How many anchors the bundle holds.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether the bundle is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_certs::TrustAnchor;

    fn anchor() -> Result<TrustAnchor, weft_certs::Error> {
        TrustAnchor::generate("test anchor", std::time::Duration::from_secs(3600))
    }

    #[test]
    fn a_bundle_of_several_anchors_trusts_them_all() -> Result<(), Box<dyn std::error::Error>> {
        let (old, new) = (anchor()?, anchor()?);
        let bundle = format!("{}{}", old.cert_pem(), new.cert_pem());
        assert_eq!(TrustAnchors::from_pem(&bundle)?.len(), 2);
        Ok(())
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(matches!(
            TrustAnchors::from_pem("no pem here"),
            Err(TlsError::NoAnchors)
        ));
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            TrustAnchors::from_pem(broken),
            Err(TlsError::BadAnchor { index: 1, .. })
        ));
    }
}
