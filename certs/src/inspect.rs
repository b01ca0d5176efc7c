//! What a certificate says about itself, read for people: `weft check`
//! reports names, roles and expiry dates from this.

use std::time::SystemTime;

use x509_parser::extensions::GeneralName;

use crate::{Error, pem, validity};

/// The role a certificate plays, from its basicConstraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A CA that can sign CAs (a trust anchor).
    Root,
    /// A CA limited to signing leaves (path length 0: an issuer).
    Issuer,
    /// Not a CA.
    Leaf,
}

/// The facts `weft check` reports about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// The subject, as text.
    pub subject: String,
    /// The issuer's name, as text.
    pub issuer: String,
    /// What the certificate is for.
    pub role: Role,
    /// Whether the subject and issuer are the same name.
    pub self_issued: bool,
    /// Its URI SANs (a SPIFFE identity for a mesh leaf).
    pub uris: Vec<String>,
    /// Its DNS SANs.
    pub dns_names: Vec<String>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

/// A summary of every certificate in `cert_pem`, in order.
pub fn summarize(cert_pem: &str) -> Result<Vec<CertificateSummary>, Error> {
    pem::certificates(cert_pem)?
        .iter()
        .map(|der| summarize_der(der))
        .collect()
}

fn summarize_der(der: &[u8]) -> Result<CertificateSummary, Error> {
    let cert = pem::parse_x509(der)?;
    let role = match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => match bc.value.path_len_constraint {
            Some(0) => Role::Issuer,
            _ => Role::Root,
        },
        Ok(_) => Role::Leaf,
        Err(e) => return Err(Error::X509(e.to_string())),
    };
    let mut uris = Vec::new();
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => uris.push((*uri).to_owned()),
                GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                _ => {}
            }
        }
    }
    let not_before = validity::from_unix(cert.validity().not_before.timestamp())
        .ok_or_else(|| Error::X509("notBefore is out of range".to_owned()))?;
    Ok(CertificateSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        role,
        self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
        uris,
        dns_names,
        not_before,
        not_after: pem::cert_not_after(&cert)?,
    })
}
