//! Metrics of the proxy's identity and mesh TLS, exported beside the golden
//! metrics on `/metrics`:
//!
//! - `identity_cert_expiration_timestamp_seconds`: when the certificate in
//!   use expires (Unix seconds; 0 before the first one).
//! - `identity_certify_total{result}`: certification attempts by outcome.
//! - `tls_handshake_failures_total{direction}`: mesh handshakes that failed.
//! - `inbound_refused_total{reason}`: inbound connections refused
//!   (`identity_required`: not mesh TLS while the pod requires identity;
//!   `tls_handshake`: a mesh handshake that failed).
//! - `destination_lookups_total{result}`: outbound connections by what
//!   destination said (`meshed`, `unmeshed`, `service` — balanced over a
//!   Service's endpoints — or `failed`, which goes out in plaintext).
//! - `destination_watches` and `destination_updates_total`: the destination
//!   client's watches ([`crate::destination::metrics`]).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::destination::WatchMetrics;

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Why an inbound connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Plaintext or the application's TLS while identity is required.
    IdentityRequired,
    /// A mesh TLS handshake that failed.
    TlsHandshake,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Self::IdentityRequired => "identity_required",
            Self::TlsHandshake => "tls_handshake",
        }
    }
}

/// What destination said about an outbound connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A meshed peer: mesh TLS.
    Meshed,
    /// Not meshed: plaintext.
    Unmeshed,
    /// No answer: plaintext.
    Failed,
    /// A Service: balanced over its endpoints.
    Service,
}

impl Lookup {
    fn as_str(self) -> &'static str {
        match self {
            Self::Meshed => "meshed",
            Self::Unmeshed => "unmeshed",
            Self::Failed => "failed",
            Self::Service => "service",
        }
    }
}

/// The identity and mesh TLS metric families.
#[derive(Debug, Default)]
pub struct MeshMetrics {
    expiration: Gauge,
    certify: Family<ResultLabel, Counter>,
    handshake_failures: Family<DirectionLabel, Counter>,
    refused: Family<ReasonLabel, Counter>,
    lookups: Family<ResultLabel, Counter>,
    destination: WatchMetrics,
}

impl MeshMetrics {
    /// Registers every family in `registry` (no prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "identity_cert_expiration_timestamp_seconds",
            "When the proxy's certificate expires, in Unix seconds (0: none yet)",
            metrics.expiration.clone(),
        );
        registry.register(
            "identity_certify",
            "Certification requests to identity, by result",
            metrics.certify.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "Mesh TLS handshakes that failed",
            metrics.handshake_failures.clone(),
        );
        registry.register(
            "inbound_refused",
            "Inbound connections refused, by reason",
            metrics.refused.clone(),
        );
        registry.register(
            "destination_lookups",
            "Outbound connections by destination's answer (failed: sent in plaintext)",
            metrics.lookups.clone(),
        );
        metrics.destination.register(registry);
        metrics
    }

    /// The destination client's watch metrics.
    pub fn destination(&self) -> &WatchMetrics {
        &self.destination
    }

    /// Records a certification attempt's `result`.
    pub fn certified(&self, result: &'static str) {
        self.certify.get_or_create(&ResultLabel { result }).inc();
    }

    /// Records the expiry of the certificate in use (Unix seconds).
    pub fn set_expiration(&self, unix_seconds: i64) {
        self.expiration.set(unix_seconds);
    }

    /// Counts a failed outbound handshake.
    pub fn handshake_failed_outbound(&self) {
        self.handshake_failures
            .get_or_create(&DirectionLabel {
                direction: "outbound",
            })
            .inc();
    }

    /// Counts a refused inbound connection (a failed inbound handshake is
    /// also a handshake failure).
    pub fn refused(&self, refusal: Refusal) {
        if refusal == Refusal::TlsHandshake {
            self.handshake_failures
                .get_or_create(&DirectionLabel {
                    direction: "inbound",
                })
                .inc();
        }
        self.refused
            .get_or_create(&ReasonLabel {
                reason: refusal.as_str(),
            })
            .inc();
    }

    /// Counts an outbound connection's destination answer.
    pub fn lookup(&self, lookup: Lookup) {
        self.lookups
            .get_or_create(&ResultLabel {
                result: lookup.as_str(),
            })
            .inc();
    }
}
