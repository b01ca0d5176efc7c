//! weft's certificates: the webhook's certificate authority and the serving
//! certificate it signs for the `weft-injector` Service, plus the few reads
//! (`not_after`) that `weft check` needs.
//!
//! Everything here is pure: keys are made in memory (ECDSA P-256 through
//! rcgen's ring backend) and returned as PEM. Writing them into Secrets or
//! files, and the cert-manager alternative, belong to `weft-webhook-config`
//! and the CLI. The mesh's own trust anchor and issuer come in a later issue.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod ca;
mod error;
mod pem;
mod validity;

pub use ca::{Ca, CertifiedKeyPem};
pub use error::Error;
pub use pem::not_after;
pub use validity::{CLOCK_SKEW_ALLOWANCE, DEFAULT_CA_VALIDITY, DEFAULT_SERVING_VALIDITY};

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
