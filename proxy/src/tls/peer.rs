//! Who a mesh peer is: the SPIFFE ID in its certificate, and the TLS server
//! name the outbound proxy sends to ask for a given identity.
//!
//! The server name is `<sa>.<ns>.serviceaccount.identity.weft.<td>`, the
//! identity written as a DNS name (SNI carries only DNS names). Within one
//! trust domain the mapping is one-to-one — a namespace is a single DNS
//! label, so the last label before the fixed suffix is the namespace and
//! what precedes it the ServiceAccount — which lets the server verifier
//! compare the name it was given with the one computed from the
//! certificate.

use std::str::FromStr;

use rustls::pki_types::{CertificateDer, ServerName};
use weft_certs::SpiffeId;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// The labels between an identity's namespace and its trust domain.
const SERVER_NAME_INFIX: &str = "serviceaccount.identity.weft";

/// Why a certificate names no usable mesh identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerIdError {
    /// The DER does not parse as an X.509 certificate.
    #[error("the certificate does not parse: {0}")]
    Parse(String),
    /// No `spiffe://` URI among its subjectAltNames.
    #[error("the certificate carries no SPIFFE ID")]
    Missing,
    /// More than one `spiffe://` URI: ambiguous, so refused.
    #[error("the certificate carries {0} SPIFFE IDs; a mesh certificate has exactly one")]
    Several(usize),
    /// The URI is not a weft identity.
    #[error("{0}")]
    Invalid(String),
    /// The identity belongs to another trust domain.
    #[error("{id} is not in the trust domain {expected}")]
    ForeignTrustDomain {
        /// The identity presented.
        id: String,
        /// The local trust domain.
        expected: String,
    },
    /// The identity's server name is not a valid DNS name (too long).
    #[error("{id} cannot be written as a TLS server name: {reason}")]
    NoServerName {
        /// The identity.
        id: String,
        /// Why.
        reason: String,
    },
}

/// The one SPIFFE ID of a certificate, in `trust_domain`.
pub fn spiffe_id(cert: &CertificateDer<'_>, trust_domain: &str) -> Result<SpiffeId, PeerIdError> {
    let (_, parsed) =
        X509Certificate::from_der(cert.as_ref()).map_err(|e| PeerIdError::Parse(e.to_string()))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| PeerIdError::Parse(e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some(*uri),
            _ => None,
        })
        .collect();
    let uri = match uris.as_slice() {
        [] => return Err(PeerIdError::Missing),
        [one] => *one,
        several => return Err(PeerIdError::Several(several.len())),
    };
    let id = SpiffeId::from_str(uri).map_err(|e| PeerIdError::Invalid(e.to_string()))?;
    if id.trust_domain() != trust_domain {
        return Err(PeerIdError::ForeignTrustDomain {
            id: id.to_string(),
            expected: trust_domain.to_owned(),
        });
    }
    Ok(id)
}

/// The server name that asks a peer for `id`.
pub fn server_name(id: &SpiffeId) -> Result<ServerName<'static>, PeerIdError> {
    ServerName::try_from(server_name_text(id)).map_err(|e| PeerIdError::NoServerName {
        id: id.to_string(),
        reason: e.to_string(),
    })
}

/// [`server_name`] as text.
pub fn server_name_text(id: &SpiffeId) -> String {
    format!(
        "{}.{}.{SERVER_NAME_INFIX}.{}",
        id.service_account(),
        id.namespace(),
        id.trust_domain()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(td: &str, ns: &str, sa: &str) -> SpiffeId {
        SpiffeId::new(td, ns, sa).expect("valid identity")
    }

    #[test]
    fn server_names_read_like_the_identity() -> Result<(), PeerIdError> {
        let name = server_name(&id("cluster.local", "shop", "web"))?;
        assert_eq!(
            name.to_str(),
            "web.shop.serviceaccount.identity.weft.cluster.local"
        );
        Ok(())
    }

    #[test]
    fn server_names_differ_for_every_identity_of_a_domain() {
        // A dotted ServiceAccount must not collide with a namespace split.
        let pairs = [("a.b", "c"), ("a", "b"), ("b", "a"), ("a.b.c", "d")];
        let names: std::collections::HashSet<String> = pairs
            .iter()
            .map(|(sa, ns)| server_name_text(&id("td", ns, sa)))
            .collect();
        assert_eq!(names.len(), pairs.len());
    }

    #[test]
    fn an_overlong_identity_has_no_server_name() {
        let sa = [
            "a".repeat(60),
            "b".repeat(60),
            "c".repeat(60),
            "d".repeat(60),
        ]
        .join(".");
        let result = server_name(&id("cluster.local", "shop", &sa));
        assert!(matches!(result, Err(PeerIdError::NoServerName { .. })));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let der = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01]);
        assert!(matches!(
            spiffe_id(&der, "cluster.local"),
            Err(PeerIdError::Parse(_))
        ));
    }
}
