//! The mesh's trust anchor: the root every proxy trusts (through
//! `WEFT_PROXY_TRUST_ANCHORS`). It signs issuers and nothing else; its key
//! belongs offline, with the operator, not in the cluster.

use std::fmt;
use std::time::{Duration, SystemTime};

use rcgen::{KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256};

use crate::ca::check_common_name;
use crate::signer::{Signer, ca_params, self_signed_ca};
use crate::{CertifiedKeyPem, Error, validity};

/// The common name `weft certs anchor` gives a new trust anchor.
pub const DEFAULT_TRUST_ANCHOR_NAME: &str = "weft trust anchor";
/// The common name `weft certs issuer` gives a new issuer.
pub const DEFAULT_ISSUER_NAME: &str = "weft identity issuer";

/// A trust anchor with its key: able to sign issuers.
pub struct TrustAnchor {
    signer: Signer,
}

impl fmt::Debug for TrustAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchor")
            .field("cert_pem", &self.signer.cert_pem)
            .field("key_pem", &"[elided]")
            .field("not_after", &self.signer.not_after)
            .finish()
    }
}

impl TrustAnchor {
    /// A new self-signed ECDSA P-256 root named `common_name`, valid from a
    /// few minutes ago for `validity`. Path length 1: it signs issuers, and
    /// issuers sign only leaves.
    pub fn generate(common_name: &str, validity: Duration) -> Result<TrustAnchor, Error> {
        let signer = self_signed_ca(
            common_name,
            validity,
            1,
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        )?;
        Ok(TrustAnchor { signer })
    }

    /// Loads a trust anchor (`ca.crt`, `ca.key`): a CA certificate whose
    /// path length allows it to sign an issuer, and its PKCS#8 key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<TrustAnchor, Error> {
        let signer = Signer::from_pem(cert_pem, key_pem)?;
        if signer.path_len == Some(0) {
            return Err(Error::NotCa(
                "its path length is 0, so it cannot sign an issuer (a CA itself)",
            ));
        }
        Ok(TrustAnchor { signer })
    }

    /// The anchor certificate (PEM): what goes into the trust bundle.
    pub fn cert_pem(&self) -> &str {
        &self.signer.cert_pem
    }

    /// The anchor's private key (PKCS#8 PEM).
    pub fn key_pem(&self) -> &str {
        &self.signer.key_pem
    }

    /// When the anchor expires.
    pub fn not_after(&self) -> SystemTime {
        self.signer.not_after
    }

    /// A new issuer: an ECDSA P-256 intermediate CA named `common_name`,
    /// path length 0 (it can sign leaves, never another CA), valid from a
    /// few minutes ago for `validity` but never past the anchor.
    pub fn issue_issuer(
        &self,
        common_name: &str,
        validity: Duration,
    ) -> Result<CertifiedKeyPem, Error> {
        check_common_name(common_name)?;
        let now = SystemTime::now();
        self.signer.check_valid_at(now)?;
        let (not_before, not_after) = validity::window(now, validity)?;

        let mut params = ca_params(
            common_name,
            0,
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
            not_before.max(self.signer.not_before),
            not_after.min(self.signer.not_after),
        )?;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.signer.issuer)?;
        Ok(CertifiedKeyPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
