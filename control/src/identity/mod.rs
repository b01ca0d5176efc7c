//! Identity: signs each proxy's certificate for the SPIFFE ID of its
//! ServiceAccount, after the API server has vouched for the proxy's token.
//!
//! - [`token`]: the TokenReview and what its answer proves (pure parts
//!   tested without a cluster);
//! - [`issuer`]: the issuer key and certificate, reloaded from their files;
//! - [`serving`]: identity's own TLS certificate, issued from that issuer;
//! - `api`: the `POST /v1/certify` handler;
//! - [`metrics`]: the `weft_identity_*` series.
//!
//! The issuer key never leaves this process and a proxy's key never leaves
//! the proxy: only CSRs come in and certificates go out.

mod api;
pub mod issuer;
pub mod metrics;
pub mod serving;
pub mod token;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use tokio::sync::Semaphore;
use weft_certs::SpiffeId;

pub use api::{CERTIFY_PATH, CertifyError, CertifyRequest, CertifyResponse, ErrorBody};

use self::issuer::IssuerStore;
use self::metrics::IdentityMetrics;
use self::serving::{CONTROL_SERVICE_ACCOUNT, ServingCert, control_plane_dns_names};
use self::token::TokenReviewer;
use crate::tls::{self, TlsError};

/// The largest request body read: a token (about 1 KiB) and a CSR (at most
/// 16 KiB) with room to spare.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How identity behaves.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// The SPIFFE trust domain of every identity it signs.
    pub trust_domain: String,
    /// The control plane's namespace (its own identity and Service names).
    pub control_plane_namespace: String,
    /// Lifetime of a proxy's certificate (never past the issuer's).
    pub leaf_lifetime: Duration,
    /// Largest request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// A request body must arrive within this time (else 408).
    pub body_timeout: Duration,
    /// TokenReviews in flight at once; more requests wait.
    pub max_concurrent_reviews: usize,
    /// How long a request waits for its turn before a 503.
    pub queue_timeout: Duration,
}

impl IdentityConfig {
    /// The defaults for `trust_domain` and `control_plane_namespace`.
    pub fn new(trust_domain: &str, control_plane_namespace: &str) -> Self {
        IdentityConfig {
            trust_domain: trust_domain.to_owned(),
            control_plane_namespace: control_plane_namespace.to_owned(),
            leaf_lifetime: weft_certs::DEFAULT_LEAF_VALIDITY,
            max_body_bytes: MAX_BODY_BYTES,
            body_timeout: Duration::from_secs(10),
            max_concurrent_reviews: 64,
            queue_timeout: Duration::from_secs(5),
        }
    }
}

/// Why identity cannot start.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The trust domain or namespace cannot form a SPIFFE ID.
    #[error("invalid identity configuration: {0}")]
    Config(#[from] weft_certs::Error),
    /// The TLS configuration was refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// What the handlers share.
pub(crate) struct Shared {
    config: IdentityConfig,
    reviewer: Arc<dyn TokenReviewer>,
    issuers: Arc<IssuerStore>,
    metrics: IdentityMetrics,
    reviews: Semaphore,
}

/// The identity service: its router, TLS configuration and readiness.
pub struct Identity {
    shared: Arc<Shared>,
    serving: Arc<ServingCert>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("config", &self.shared.config)
            .field("serving", &self.serving)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Identity signing with the issuers in `issuers` for tokens that
    /// `reviewer` vouches for.
    pub fn new(
        config: IdentityConfig,
        reviewer: Arc<dyn TokenReviewer>,
        issuers: Arc<IssuerStore>,
        metrics: IdentityMetrics,
    ) -> Result<Identity, IdentityError> {
        let own = SpiffeId::new(
            &config.trust_domain,
            &config.control_plane_namespace,
            CONTROL_SERVICE_ACCOUNT,
        )?;
        let serving = Arc::new(ServingCert::new(
            own,
            control_plane_dns_names(&config.control_plane_namespace),
            weft_certs::DEFAULT_LEAF_VALIDITY,
        ));
        let reviews = Semaphore::new(config.max_concurrent_reviews.max(1));
        Ok(Identity {
            shared: Arc::new(Shared {
                config,
                reviewer,
                issuers,
                metrics,
                reviews,
            }),
            serving,
        })
    }

    /// The router of the identity port (`POST /v1/certify`).
    pub fn router(&self) -> Router {
        api::router(self.shared.clone())
    }

    /// The TLS configuration of the identity (and destination) port,
    /// serving the control plane's own certificate.
    pub fn tls_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        Ok(Arc::new(tls::server_config(self.serving.clone())?))
    }

    /// Ready: an issuer is loaded and identity has its serving certificate.
    pub fn is_ready(&self) -> bool {
        self.shared.issuers.current().is_some() && self.serving.is_loaded()
    }

    /// Issues or renews identity's serving certificate if needed (after an
    /// issuer reload, and periodically).
    pub fn refresh_serving(&self) {
        if let Err(error) = self
            .serving
            .refresh(&self.shared.issuers, SystemTime::now())
        {
            tracing::error!(%error, "cannot issue identity's serving certificate");
        }
    }

    /// The metrics it records into.
    pub fn metrics(&self) -> &IdentityMetrics {
        &self.shared.metrics
    }
}

/// `t` as RFC 3339 in UTC (`2025-06-01T12:00:00Z`).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(timestamp) => timestamp.to_string(),
        // Outside jiff's range (years beyond ±9999): never for a real date.
        Err(_) => format!("{t:?}"),
    }
}

#[cfg(test)]
mod tests;
