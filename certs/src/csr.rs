//! Certificate signing requests from proxies: parsed, their signature
//! checked (the requester holds the private key), and the names they ask
//! for read out so identity can compare them with the identity the
//! requester proved.
//!
//! Only the public key is ever taken from a CSR. Its subject, its requested
//! key usages and any request to be a CA are ignored: the issuer decides
//! what a mesh certificate holds.

use std::fmt;
use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer as _;

use crate::{Error, SpiffeId};

/// The largest CSR accepted, in bytes of PEM. A P-256 CSR with one URI is
/// under 600 bytes; anything near this limit is not a proxy's request.
pub const MAX_CSR_PEM_BYTES: usize = 16 * 1024;

const PEM_LABEL: &str = "CERTIFICATE REQUEST";

/// One name a CSR asks to be certified for (a subjectAltName entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedName {
    /// A URI, such as a SPIFFE ID.
    Uri(String),
    /// A DNS name.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
    /// An e-mail address.
    Email(String),
    /// Any other kind of name, described.
    Other(String),
}

impl fmt::Display for RequestedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestedName::Uri(uri) => write!(f, "URI:{uri}"),
            RequestedName::Dns(name) => write!(f, "DNS:{name}"),
            RequestedName::Ip(ip) => write!(f, "IP:{ip}"),
            RequestedName::Email(email) => write!(f, "email:{email}"),
            RequestedName::Other(what) => f.write_str(what),
        }
    }
}

/// A CSR whose signature verified: the public key to certify and the names
/// it asks for.
#[derive(Debug, Clone)]
pub struct CertificateRequest {
    spki_der: Vec<u8>,
    requested: Vec<RequestedName>,
    asks_for_ca: bool,
}

impl CertificateRequest {
    /// Parses one PEM `CERTIFICATE REQUEST` and verifies its signature.
    ///
    /// Refused (as [`Error::InvalidCsr`]): text over [`MAX_CSR_PEM_BYTES`],
    /// anything but exactly one CSR block, DER that does not parse or has
    /// trailing bytes, a bad signature, a key other than ECDSA P-256, ECDSA
    /// P-384 or Ed25519, and a malformed or repeated subjectAltName request.
    pub fn from_pem(text: &str) -> Result<CertificateRequest, Error> {
        if text.len() > MAX_CSR_PEM_BYTES {
            return Err(invalid(format!(
                "the CSR is {} bytes, more than the {MAX_CSR_PEM_BYTES} accepted",
                text.len()
            )));
        }
        let blocks = ::pem::parse_many(text).map_err(|e| invalid(format!("not PEM: {e}")))?;
        let mut csrs = blocks.iter().filter(|b| b.tag() == PEM_LABEL);
        let der = match (csrs.next(), csrs.next()) {
            (Some(one), None) => one.contents(),
            (None, _) => return Err(invalid(format!("no PEM block labelled {PEM_LABEL}"))),
            (Some(_), Some(_)) => {
                return Err(invalid(format!("more than one {PEM_LABEL} block")));
            }
        };
        CertificateRequest::from_der(der)
    }

    /// [`CertificateRequest::from_pem`] for DER.
    pub fn from_der(der: &[u8]) -> Result<CertificateRequest, Error> {
        let (rest, csr) = X509CertificationRequest::from_der(der)
            .map_err(|e| invalid(format!("the CSR does not parse: {e}")))?;
        if !rest.is_empty() {
            return Err(invalid(format!(
                "{} unexpected bytes after the CSR",
                rest.len()
            )));
        }
        let spki = &csr.certification_request_info.subject_pki;
        check_key_algorithm(spki)?;
        csr.verify_signature().map_err(|e| {
            invalid(format!(
                "the CSR's signature does not verify with its own key ({e})"
            ))
        })?;

        let mut requested = None;
        let mut asks_for_ca = false;
        if let Some(extensions) = csr.requested_extensions() {
            for extension in extensions {
                match extension {
                    ParsedExtension::SubjectAlternativeName(san) => {
                        if requested.is_some() {
                            return Err(invalid("the CSR repeats subjectAltName".to_owned()));
                        }
                        requested = Some(
                            san.general_names
                                .iter()
                                .map(requested_name)
                                .collect::<Result<Vec<_>, _>>()?,
                        );
                    }
                    ParsedExtension::BasicConstraints(bc) => asks_for_ca = bc.ca,
                    ParsedExtension::ParseError { error } => {
                        return Err(invalid(format!(
                            "an extension the CSR requests does not parse: {error}"
                        )));
                    }
                    // Key usages and the like are the issuer's to decide.
                    _ => {}
                }
            }
        }

        Ok(CertificateRequest {
            spki_der: spki.raw.to_vec(),
            requested: requested.unwrap_or_default(),
            asks_for_ca,
        })
    }

    /// The names the CSR asks for, in its order.
    pub fn requested_names(&self) -> &[RequestedName] {
        &self.requested
    }

    /// Whether the CSR asks to be a CA (never granted; for logs).
    pub fn asks_for_ca(&self) -> bool {
        self.asks_for_ca
    }

    /// The public key to certify (DER SubjectPublicKeyInfo).
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// `Ok` when the CSR asks for exactly `identity` as its only name, else
    /// [`Error::IdentityMismatch`] listing what it asked for.
    pub fn check_identity(&self, identity: &SpiffeId) -> Result<(), Error> {
        let expected = identity.to_string();
        match self.requested.as_slice() {
            [RequestedName::Uri(uri)] if *uri == expected => Ok(()),
            other => Err(Error::IdentityMismatch {
                requested: other.iter().map(ToString::to_string).collect(),
                allowed: expected,
            }),
        }
    }
}

fn invalid(reason: String) -> Error {
    Error::InvalidCsr { reason }
}

/// ECDSA on P-256 or P-384, or Ed25519: what rustls verifies with ring,
/// and small enough that a handshake stays cheap. RSA is refused.
fn check_key_algorithm(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<(), Error> {
    let algorithm = &spki.algorithm;
    let supported = if algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
        curve.is_some_and(|c| c == OID_EC_P256 || c == OID_NIST_EC_P384)
    } else {
        algorithm.algorithm == OID_SIG_ED25519
    };
    if supported {
        Ok(())
    } else {
        Err(invalid(format!(
            "unsupported key algorithm {}: use ECDSA P-256 (or P-384, or Ed25519)",
            algorithm.algorithm
        )))
    }
}

fn requested_name(name: &GeneralName<'_>) -> Result<RequestedName, Error> {
    Ok(match name {
        GeneralName::URI(uri) => RequestedName::Uri((*uri).to_owned()),
        GeneralName::DNSName(dns) => RequestedName::Dns((*dns).to_owned()),
        GeneralName::RFC822Name(email) => RequestedName::Email((*email).to_owned()),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => {
                RequestedName::Ip(IpAddr::from(<[u8; 4]>::try_from(*bytes).map_err(|_| {
                    invalid("a malformed IP address in subjectAltName".to_owned())
                })?))
            }
            16 => RequestedName::Ip(IpAddr::from(
                <[u8; 16]>::try_from(*bytes)
                    .map_err(|_| invalid("a malformed IP address in subjectAltName".to_owned()))?,
            )),
            _ => {
                return Err(invalid(
                    "a malformed IP address in subjectAltName".to_owned(),
                ));
            }
        },
        GeneralName::Invalid(tag, _) => {
            return Err(invalid(format!(
                "an unreadable subjectAltName entry (tag {tag})"
            )));
        }
        other => RequestedName::Other(format!("{other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256,
        PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PublicKeyData as _, SanType,
    };

    use super::*;

    fn csr_for(sans: Vec<SanType>, key: &KeyPair) -> String {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params
            .serialize_request(key)
            .and_then(|csr| csr.pem())
            .unwrap_or_default()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().unwrap_or_else(|_| panic!("{s} is IA5")))
    }

    fn web() -> Result<SpiffeId, Error> {
        SpiffeId::new("cluster.local", "shop", "web")
    }

    #[test]
    fn a_proxy_csr_asks_for_its_identity() -> Result<(), Error> {
        for alg in [
            &PKCS_ECDSA_P256_SHA256,
            &PKCS_ECDSA_P384_SHA384,
            &PKCS_ED25519,
        ] {
            let key = KeyPair::generate_for(alg)?;
            let pem = csr_for(vec![uri("spiffe://cluster.local/ns/shop/sa/web")], &key);
            let csr = CertificateRequest::from_pem(&pem)?;
            csr.check_identity(&web()?)?;
            assert!(!csr.asks_for_ca());
            assert_eq!(csr.public_key_der(), key.subject_public_key_info());
        }
        Ok(())
    }

    #[test]
    fn any_other_set_of_names_is_a_mismatch() -> Result<(), Error> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let dns = SanType::DnsName("web.shop".try_into()?);
        for sans in [
            vec![],
            vec![uri("spiffe://cluster.local/ns/shop/sa/db")],
            vec![uri("spiffe://other.domain/ns/shop/sa/web")],
            vec![uri("spiffe://cluster.local/ns/shop/sa/web"), dns.clone()],
            vec![
                uri("spiffe://cluster.local/ns/shop/sa/web"),
                uri("spiffe://cluster.local/ns/shop/sa/web"),
            ],
            vec![dns],
        ] {
            let csr = CertificateRequest::from_pem(&csr_for(sans.clone(), &key))?;
            match csr.check_identity(&web()?) {
                Err(Error::IdentityMismatch { requested, allowed }) => {
                    assert_eq!(requested.len(), sans.len());
                    assert_eq!(allowed, "spiffe://cluster.local/ns/shop/sa/web");
                }
                other => panic!("{sans:?} should be a mismatch, got {other:?}"),
            }
        }
        Ok(())
    }

    #[test]
    fn a_ca_request_is_read_but_is_only_information() -> Result<(), Error> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![uri("spiffe://cluster.local/ns/shop/sa/web")];
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let csr = CertificateRequest::from_pem(&params.serialize_request(&key)?.pem()?)?;
        assert!(csr.asks_for_ca());
        csr.check_identity(&web()?)
    }

    #[test]
    fn a_tampered_csr_fails_its_signature() -> Result<(), Error> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![uri("spiffe://cluster.local/ns/shop/sa/web")];
        let mut der = params.serialize_request(&key)?.der().to_vec();
        // Flip one byte of the requested name: the DER still parses, the
        // signature no longer matches.
        let at = der
            .windows(3)
            .position(|w| w == b"web")
            .ok_or(Error::NoPemBlock { expected: "web" })?;
        der[at] = b'd';
        match CertificateRequest::from_der(&der) {
            Err(Error::InvalidCsr { reason }) => assert!(reason.contains("signature"), "{reason}"),
            other => panic!("expected a signature error, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn garbage_is_refused_without_panicking() -> Result<(), Error> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let good = csr_for(vec![uri("spiffe://cluster.local/ns/shop/sa/web")], &key);
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        for text in [
            String::new(),
            "not pem".to_owned(),
            cert.to_owned(),
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
                .to_owned(),
            "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n"
                .to_owned(),
            format!("{good}{good}"),
            "A".repeat(MAX_CSR_PEM_BYTES + 1),
        ] {
            assert!(
                matches!(
                    CertificateRequest::from_pem(&text),
                    Err(Error::InvalidCsr { .. })
                ),
                "{text:.60} should be refused"
            );
        }
        // Every truncation of a good CSR is refused too.
        let der = ::pem::parse(&good)?.into_contents();
        for len in 0..der.len() {
            assert!(CertificateRequest::from_der(&der[..len]).is_err(), "{len}");
        }
        Ok(())
    }
}
