//! The webhook's certificate authority: a self-signed ECDSA P-256 CA that
//! signs the injector's serving certificate. The API server trusts it through
//! the webhook's `caBundle`; nothing else does.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};

use crate::signer::{Signer, self_signed_ca};
use crate::{Error, validity};

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedKeyPem {
    /// The certificate (`CERTIFICATE` block).
    pub cert_pem: String,
    /// Its PKCS#8 private key (`PRIVATE KEY` block).
    pub key_pem: String,
}

impl fmt::Debug for CertifiedKeyPem {
    // Keys end up in logs through `{:?}` far too easily.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKeyPem")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// A CA that can issue serving certificates.
pub struct Ca {
    signer: Signer,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("cert_pem", &self.signer.cert_pem)
            .field("key_pem", &"[elided]")
            .field("not_after", &self.signer.not_after)
            .finish()
    }
}

impl Ca {
    /// A new self-signed CA named `common_name`, valid from a few minutes ago
    /// (clock skew) for `validity`, that may sign leaves but no other CA.
    pub fn generate(common_name: &str, validity: Duration) -> Result<Ca, Error> {
        // Path length 0: this CA signs serving certificates, never another CA.
        let signer = self_signed_ca(
            common_name,
            validity,
            0,
            vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ],
        )?;
        Ok(Ca { signer })
    }

    /// Load an existing CA (`weft install --ca-cert-file --ca-key-file`).
    ///
    /// The certificate must be a single CA certificate allowed to sign
    /// certificates, and the key (PKCS#8) must be its own. An expired CA
    /// loads, but refuses to issue.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, Error> {
        Ok(Ca {
            signer: Signer::from_pem(cert_pem, key_pem)?,
        })
    }

    /// The CA certificate (PEM): the webhook's `caBundle`.
    pub fn cert_pem(&self) -> &str {
        &self.signer.cert_pem
    }

    /// The CA's private key (PKCS#8 PEM).
    pub fn key_pem(&self) -> &str {
        &self.signer.key_pem
    }

    /// When the CA expires.
    pub fn not_after(&self) -> SystemTime {
        self.signer.not_after
    }

    /// A serving certificate for `dns_names` (an entry that parses as an IP
    /// address becomes an IP SAN), valid from a few minutes ago for
    /// `validity` but never past the CA's own expiry.
    ///
    /// The leaf is not a CA, allows only `digitalSignature` (all an ECDSA TLS
    /// server key does) and the `serverAuth` extended key usage.
    pub fn issue_serving(
        &self,
        dns_names: &[String],
        validity: Duration,
    ) -> Result<CertifiedKeyPem, Error> {
        let now = SystemTime::now();
        self.signer.check_valid_at(now)?;
        let (not_before, not_after) = validity::window(now, validity)?;
        let not_after = not_after.min(self.signer.not_after);

        let Some(first) = dns_names.first() else {
            return Err(Error::InvalidName {
                name: String::new(),
                reason: "a serving certificate needs at least one name".to_owned(),
            });
        };
        let sans = dns_names
            .iter()
            .map(|name| san(name))
            .collect::<Result<Vec<_>, _>>()?;

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        // Readers (`openssl x509 -noout -subject`, `kubectl`) show the CN;
        // verifiers use only the SANs.
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let cert = params.signed_by(&key, &self.signer.issuer)?;

        Ok(CertifiedKeyPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A CA's common name must be printable text.
pub(crate) fn check_common_name(common_name: &str) -> Result<(), Error> {
    if common_name.trim().is_empty() || common_name.chars().any(char::is_control) {
        return Err(Error::InvalidName {
            name: common_name.to_owned(),
            reason: "a CA name must be non-empty printable text".to_owned(),
        });
    }
    Ok(())
}

/// One SAN: an IP address when it parses as one, else a DNS name.
pub(crate) fn san(name: &str) -> Result<SanType, Error> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if name.is_empty() || name.len() > 253 || !name.bytes().all(is_dns_byte) {
        return Err(Error::InvalidName {
            name: name.to_owned(),
            reason: "expected a DNS name (letters, digits, '-', '.', '*') or an IP address"
                .to_owned(),
        });
    }
    let ia5 = name
        .try_into()
        .map_err(|e: rcgen::Error| Error::InvalidName {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(SanType::DnsName(ia5))
}

fn is_dns_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'*')
}
