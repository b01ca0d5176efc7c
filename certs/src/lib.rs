//! weft's certificates: the webhook's certificate authority and the serving
//! certificate it signs for the `weft-injector` Service; the mesh's trust
//! anchor, the issuer it signs, and the proxies' leaf certificates issued
//! from their CSRs for a SPIFFE identity; plus the reads (`not_after`,
//! `summarize`) that `weft check` needs.
//!
//! Everything here is pure: keys are made in memory (ECDSA P-256 through
//! rcgen's ring backend) and returned as PEM, and nothing touches the
//! network. Writing them into Secrets or files, the cert-manager
//! alternative, and deciding who may have which identity (the TokenReview)
//! belong to `weft-webhook-config`, the CLI and `weft-control`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod anchor;
mod bundle;
mod ca;
mod csr;
mod error;
mod inspect;
mod issuer;
mod pem;
mod signer;
mod spiffe;
mod validity;

pub use anchor::{DEFAULT_ISSUER_NAME, DEFAULT_TRUST_ANCHOR_NAME, TrustAnchor};
pub use bundle::{BundledAnchor, TrustBundle};
pub use ca::{Ca, CertifiedKeyPem};
pub use csr::{CertificateRequest, MAX_CSR_PEM_BYTES, RequestedName};
pub use error::Error;
pub use inspect::{CertificateSummary, Role, summarize};
pub use issuer::{IssuedCertificate, Issuer};
pub use pem::not_after;
pub use spiffe::SpiffeId;
pub use validity::{
    CLOCK_SKEW_ALLOWANCE, DEFAULT_CA_VALIDITY, DEFAULT_ISSUER_VALIDITY, DEFAULT_LEAF_VALIDITY,
    DEFAULT_SERVING_VALIDITY, DEFAULT_TRUST_ANCHOR_VALIDITY,
};

/// The DNS names a client can use for a webhook Service: `svc`, `svc.ns`,
/// `svc.ns.svc` and `svc.ns.svc.cluster.local`.
///
/// The API server calls a webhook at `<svc>.<ns>.svc`; the other forms cover
/// clients inside the namespace and those that use the fully-qualified name.
pub fn webhook_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_dns_names_cover_every_form_the_api_server_uses() {
        assert_eq!(
            webhook_dns_names("weft-injector", "weft"),
            [
                "weft-injector",
                "weft-injector.weft",
                "weft-injector.weft.svc",
                "weft-injector.weft.svc.cluster.local",
            ]
        );
    }
}
