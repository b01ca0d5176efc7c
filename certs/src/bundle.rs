//! A trust bundle: the anchors a proxy trusts (`ca-bundle.crt`). During an
//! anchor rotation it holds the old and the new anchor, so certificates
//! from either chain verify.

use std::time::SystemTime;

use crate::{Error, pem};

/// One anchor of a bundle, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundledAnchor {
    der: Vec<u8>,
    subject_der: Vec<u8>,
    subject: String,
    not_after: SystemTime,
}

impl BundledAnchor {
    /// The certificate (PEM).
    pub fn cert_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der)
    }

    /// The subject, as text (`CN=weft trust anchor`).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// When the anchor expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }
}

/// The anchors of a mesh, in the order read, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustBundle {
    anchors: Vec<BundledAnchor>,
}

impl TrustBundle {
    /// Reads every `CERTIFICATE` in `text`. Each must be a CA certificate;
    /// a certificate listed twice is kept once. An empty bundle is an error.
    pub fn from_pem(text: &str) -> Result<TrustBundle, Error> {
        let mut bundle = TrustBundle {
            anchors: Vec::new(),
        };
        for der in pem::certificates(text)? {
            bundle.push(der)?;
        }
        Ok(bundle)
    }

    /// The bundles' anchors merged, in order, without duplicates: the
    /// bundle for an anchor rotation is `merge([old, new])`.
    pub fn merge<'b>(bundles: impl IntoIterator<Item = &'b TrustBundle>) -> TrustBundle {
        let mut merged = TrustBundle {
            anchors: Vec::new(),
        };
        for anchor in bundles.into_iter().flat_map(|b| &b.anchors) {
            if !merged.anchors.iter().any(|a| a.der == anchor.der) {
                merged.anchors.push(anchor.clone());
            }
        }
        merged
    }

    fn push(&mut self, der: Vec<u8>) -> Result<(), Error> {
        if self.anchors.iter().any(|a| a.der == der) {
            return Ok(());
        }
        let cert = pem::parse_x509(&der)?;
        match cert.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {}
            Ok(_) => {
                return Err(Error::NotCa(
                    "a trust anchor must be a CA certificate (basicConstraints CA:TRUE)",
                ));
            }
            Err(e) => return Err(Error::X509(e.to_string())),
        }
        let subject_der = cert.subject().as_raw().to_vec();
        let subject = cert.subject().to_string();
        let not_after = pem::cert_not_after(&cert)?;
        self.anchors.push(BundledAnchor {
            der,
            subject_der,
            subject,
            not_after,
        });
        Ok(())
    }

    /// The anchors.
    pub fn anchors(&self) -> &[BundledAnchor] {
        &self.anchors
    }

    /// The bundle as PEM, one certificate after the other.
    pub fn to_pem(&self) -> String {
        self.anchors.iter().map(BundledAnchor::cert_pem).collect()
    }

    /// Whether the first certificate in `cert_pem` is signed directly by
    /// one of the anchors (its issuer name is the anchor's subject and the
    /// signature verifies with the anchor's key). Dates are not checked.
    pub fn signed_by_anchor(&self, cert_pem: &str) -> Result<bool, Error> {
        let ders = pem::certificates(cert_pem)?;
        let Some(first) = ders.first() else {
            return Ok(false);
        };
        let cert = pem::parse_x509(first)?;
        for anchor in &self.anchors {
            if anchor.subject_der != cert.issuer().as_raw() {
                continue;
            }
            let parsed = pem::parse_x509(&anchor.der)?;
            if cert.verify_signature(Some(parsed.public_key())).is_ok() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
