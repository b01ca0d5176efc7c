//! The mesh issuer: the intermediate CA (signed by a trust anchor) whose key
//! identity holds in memory to sign proxies' short-lived leaf certificates.
//!
//! A leaf carries exactly one identity, as its only URI SAN, and is never
//! a CA; the CSR contributes its public key and nothing else.

use std::fmt;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType, SubjectPublicKeyInfo,
};

use crate::ca::san;
use crate::signer::{Signer, random_serial};
use crate::{CertificateRequest, CertifiedKeyPem, Error, SpiffeId, TrustBundle, validity};

/// A leaf certificate and the chain that leads from it to a trust anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The leaf (PEM).
    pub cert_pem: String,
    /// The intermediates, nearest first (PEM): the issuer certificate.
    pub chain_pem: Vec<String>,
    /// When the leaf expires.
    pub not_after: SystemTime,
}

/// The issuer CA with its key.
pub struct Issuer {
    signer: Signer,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("cert_pem", &self.signer.cert_pem)
            .field("key_pem", &"[elided]")
            .field("not_after", &self.signer.not_after)
            .finish()
    }
}

impl Issuer {
    /// Loads an issuer (`issuer.crt`/`issuer.key`, or the Secret's
    /// `tls.crt`/`tls.key`): one CA certificate allowed to sign, and its
    /// PKCS#8 key. An expired issuer loads, but refuses to issue.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Issuer, Error> {
        Ok(Issuer {
            signer: Signer::from_pem(cert_pem, key_pem)?,
        })
    }

    /// The issuer certificate (PEM), sent with every leaf as its chain.
    pub fn cert_pem(&self) -> &str {
        &self.signer.cert_pem
    }

    /// When the issuer becomes valid.
    pub fn not_before(&self) -> SystemTime {
        self.signer.not_before
    }

    /// When the issuer expires; no leaf outlives it.
    pub fn not_after(&self) -> SystemTime {
        self.signer.not_after
    }

    /// `Ok` when one of `anchors` signed this issuer, so that proxies
    /// trusting the bundle accept what it signs.
    pub fn check_signed_by(&self, anchors: &TrustBundle) -> Result<(), Error> {
        if anchors.signed_by_anchor(&self.signer.cert_pem)? {
            Ok(())
        } else {
            Err(Error::NotSignedByAnchor)
        }
    }

    /// A leaf for `identity` on the public key of `csr`, valid from a few
    /// minutes before `now` for `validity`, never past the issuer.
    ///
    /// The caller decides that the requester may hold `identity` (identity
    /// checks the token and [`CertificateRequest::check_identity`]); this
    /// signs for `identity`, whatever else the CSR asked.
    pub fn certify(
        &self,
        csr: &CertificateRequest,
        identity: &SpiffeId,
        validity: Duration,
        now: SystemTime,
    ) -> Result<IssuedCertificate, Error> {
        let public_key = SubjectPublicKeyInfo::from_der(csr.public_key_der()).map_err(|e| {
            Error::InvalidCsr {
                reason: format!("its public key cannot be certified: {e}"),
            }
        })?;
        let params = self.leaf_params(identity, &[], validity, now)?;
        let not_after = params.not_after;
        let cert = params.signed_by(&public_key, &self.signer.issuer)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            chain_pem: vec![self.signer.cert_pem.clone()],
            not_after: not_after.into(),
        })
    }

    /// A leaf for `identity` plus `dns_names`, on a key made here: the
    /// control plane's own serving certificate. Returns the leaf followed by
    /// the issuer (a servable chain) and the key.
    pub fn issue_with_key(
        &self,
        identity: &SpiffeId,
        dns_names: &[String],
        validity: Duration,
        now: SystemTime,
    ) -> Result<(CertifiedKeyPem, SystemTime), Error> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let params = self.leaf_params(identity, dns_names, validity, now)?;
        let not_after = params.not_after;
        let cert = params.signed_by(&key, &self.signer.issuer)?;
        let chain = format!("{}{}", cert.pem(), self.signer.cert_pem);
        Ok((
            CertifiedKeyPem {
                cert_pem: chain,
                key_pem: key.serialize_pem(),
            },
            not_after.into(),
        ))
    }

    fn leaf_params(
        &self,
        identity: &SpiffeId,
        dns_names: &[String],
        validity: Duration,
        now: SystemTime,
    ) -> Result<CertificateParams, Error> {
        self.signer.check_valid_at(now)?;
        let (not_before, not_after) = validity::window(now, validity)?;
        let uri =
            identity
                .to_string()
                .try_into()
                .map_err(|e: rcgen::Error| Error::InvalidName {
                    name: identity.to_string(),
                    reason: e.to_string(),
                })?;
        let mut sans = vec![SanType::URI(uri)];
        for name in dns_names {
            sans.push(san(name)?);
        }

        let mut params = CertificateParams::default();
        // No subject: the identity is the URI SAN, which rcgen then marks
        // critical as RFC 5280 requires of a certificate without a subject.
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Every proxy is both a TLS client (outbound) and server (inbound).
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        let not_before = not_before.max(self.signer.not_before);
        let not_after = not_after.min(self.signer.not_after);
        params.not_before = validity::whole_seconds(not_before).into();
        params.not_after = validity::whole_seconds(not_after).into();
        Ok(params)
    }
}
