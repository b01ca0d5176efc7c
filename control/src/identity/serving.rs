//! The control plane's own serving certificate.
//!
//! Proxies reach identity (and destination) over TLS and verify them
//! against the same trust anchors as any mesh peer, so the control plane
//! serves a leaf from its own issuer: the SPIFFE ID of the `weft-control`
//! ServiceAccount plus the DNS names of the `weft-identity` and
//! `weft-destination` Services. It is made in memory (the key never touches
//! disk) when the first issuer loads, and made again when the issuer
//! changes or 70 % of its lifetime has passed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use weft_certs::SpiffeId;

use super::issuer::IssuerStore;
use crate::tls::{self, TlsError};

/// The ServiceAccount the control plane runs as (its identity's name).
pub const CONTROL_SERVICE_ACCOUNT: &str = "weft-control";
/// The Service proxies reach identity through.
pub const IDENTITY_SERVICE: &str = "weft-identity";

/// The share of a serving certificate's lifetime after which it is renewed.
const RENEW_AT: f64 = 0.7;

/// The Service proxies reach destination through (same process, same
/// certificate).
pub const DESTINATION_SERVICE: &str = "weft-destination";

/// The DNS names of the control plane's Services in `namespace`, each as
/// `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc` and `<svc>.<ns>.svc.cluster.local`.
pub fn control_plane_dns_names(namespace: &str) -> Vec<String> {
    let mut names = weft_certs::webhook_dns_names(IDENTITY_SERVICE, namespace);
    names.extend(weft_certs::webhook_dns_names(
        DESTINATION_SERVICE,
        namespace,
    ));
    names
}

struct Serving {
    key: Arc<CertifiedKey>,
    issuer_generation: u64,
    renew_after: SystemTime,
}

/// Hands rustls identity's current certificate at each handshake.
pub struct ServingCert {
    identity: SpiffeId,
    dns_names: Vec<String>,
    lifetime: Duration,
    current: ArcSwapOption<Serving>,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert")
            .field("identity", &self.identity)
            .field("dns_names", &self.dns_names)
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

/// What [`ServingCert::refresh`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    /// The certificate in use is still good.
    Kept,
    /// A new certificate is served from the next handshake on.
    Issued,
    /// No issuer is loaded yet: nothing to sign with.
    NoIssuer,
}

impl ServingCert {
    /// A certificate for `identity` and `dns_names` that lives `lifetime`;
    /// none is made until [`ServingCert::refresh`] finds an issuer.
    pub fn new(identity: SpiffeId, dns_names: Vec<String>, lifetime: Duration) -> Self {
        ServingCert {
            identity,
            dns_names,
            lifetime,
            current: ArcSwapOption::empty(),
        }
    }

    /// Whether a certificate is being served (part of readiness).
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Issues a new certificate when there is none, the issuer changed, or
    /// the current one is past 70 % of its life at `now`.
    pub fn refresh(&self, issuers: &IssuerStore, now: SystemTime) -> Result<Refresh, TlsError> {
        let Some(loaded) = issuers.current() else {
            return Ok(Refresh::NoIssuer);
        };
        if let Some(current) = self.current.load().as_ref()
            && current.issuer_generation == loaded.generation
            && now < current.renew_after
        {
            return Ok(Refresh::Kept);
        }
        let (pair, not_after) = loaded
            .issuer
            .issue_with_key(&self.identity, &self.dns_names, self.lifetime, now)
            .map_err(TlsError::Issue)?;
        let key = tls::certified_key(pair.cert_pem.as_bytes(), pair.key_pem.as_bytes())?;
        let life = not_after.duration_since(now).unwrap_or_default();
        self.current.store(Some(Arc::new(Serving {
            key: Arc::new(key),
            issuer_generation: loaded.generation,
            renew_after: now + life.mul_f64(RENEW_AT),
        })));
        tracing::info!(
            identity = %self.identity,
            not_after = %super::rfc3339(not_after),
            "identity serving certificate issued"
        );
        Ok(Refresh::Issued)
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load().as_ref().map(|s| s.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use weft_certs::{DEFAULT_ISSUER_NAME, Issuer, TrustAnchor};

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn issuer(anchor: &TrustAnchor) -> Result<Issuer, Box<dyn std::error::Error>> {
        let pair = anchor.issue_issuer(DEFAULT_ISSUER_NAME, 30 * DAY)?;
        Ok(Issuer::from_pem(&pair.cert_pem, &pair.key_pem)?)
    }

    #[test]
    fn issued_once_then_renewed_late_in_life_or_with_a_new_issuer()
    -> Result<(), Box<dyn std::error::Error>> {
        let anchor = TrustAnchor::generate("anchor", 60 * DAY)?;
        let store = IssuerStore::new();
        let serving = ServingCert::new(
            SpiffeId::new("cluster.local", "weft", CONTROL_SERVICE_ACCOUNT)?,
            control_plane_dns_names("weft"),
            DAY,
        );
        let now = SystemTime::now();
        assert_eq!(serving.refresh(&store, now)?, Refresh::NoIssuer);
        assert!(!serving.is_loaded());

        store.set(issuer(&anchor)?);
        assert_eq!(serving.refresh(&store, now)?, Refresh::Issued);
        assert!(serving.is_loaded());
        assert_eq!(serving.refresh(&store, now + DAY / 2)?, Refresh::Kept);
        assert_eq!(serving.refresh(&store, now + DAY * 3 / 4)?, Refresh::Issued);

        store.set(issuer(&anchor)?);
        assert_eq!(serving.refresh(&store, now + DAY * 3 / 4)?, Refresh::Issued);
        Ok(())
    }
}
