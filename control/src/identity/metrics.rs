//! Identity's Prometheus metrics, registered under `weft_identity`:
//! certification requests by result and how long they took, the issuer's
//! expiry, and issuer reloads.

use std::time::SystemTime;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Latency buckets in seconds: signing takes under a millisecond, the
/// TokenReview a few; the tail reaches the 5 s review timeout.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How a certification request ended (`result` label).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values as Prometheus shows them
pub enum CertifyResult {
    /// 200: a certificate was issued.
    issued,
    /// 400 or 413: the request or its CSR was malformed.
    bad_request,
    /// 401: the token proves no ServiceAccount for our audience.
    unauthenticated,
    /// 403: the CSR asks for another identity.
    forbidden,
    /// 5xx: the API server or the issuer failed.
    error,
}

/// Whether an issuer reload worked (`result` label).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ReloadResult {
    /// The new issuer signs from now on.
    success,
    /// The files changed but do not hold a usable issuer; the previous one
    /// (if any) keeps signing.
    failure,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertifyLabels {
    result: CertifyResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: ReloadResult,
}

/// Every identity metric.
#[derive(Debug, Clone)]
pub struct IdentityMetrics {
    certify: Family<CertifyLabels, Counter>,
    duration: Histogram,
    issuer_expiry: Gauge,
    issuer_reloads: Family<ReloadLabels, Counter>,
}

impl IdentityMetrics {
    /// Registers the metrics in `registry` (give it a sub-registry with the
    /// `weft_identity` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let certify = Family::<CertifyLabels, Counter>::default();
        registry.register(
            "certify",
            "Certification requests answered, by result",
            certify.clone(),
        );
        let duration = Histogram::new(DURATION_BUCKETS);
        registry.register_with_unit(
            "certify_duration",
            "Time from a certification request's arrival to its answer, TokenReview included",
            Unit::Seconds,
            duration.clone(),
        );
        let issuer_expiry = Gauge::default();
        registry.register(
            "issuer_expiry_timestamp_seconds",
            "When the issuer certificate in use expires (Unix time); 0 before one is loaded",
            issuer_expiry.clone(),
        );
        let issuer_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "issuer_reloads",
            "Issuer loads after its files changed, by result (the first load counts)",
            issuer_reloads.clone(),
        );
        IdentityMetrics {
            certify,
            duration,
            issuer_expiry,
            issuer_reloads,
        }
    }

    /// Counts one answered request and its duration.
    pub fn certified(&self, result: CertifyResult, seconds: f64) {
        self.certify.get_or_create(&CertifyLabels { result }).inc();
        self.duration.observe(seconds);
    }

    /// How many requests ended with `result` so far.
    pub fn certify_count(&self, result: CertifyResult) -> u64 {
        self.certify.get_or_create(&CertifyLabels { result }).get()
    }

    /// Records the expiry of the issuer now in use.
    pub fn issuer_loaded(&self, not_after: SystemTime) {
        let seconds = not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.issuer_expiry.set(seconds);
    }

    /// Counts one issuer reload attempt.
    pub fn issuer_reload(&self, result: ReloadResult) {
        self.issuer_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    /// How many issuer reloads ended with `result` so far.
    pub fn issuer_reload_count(&self, result: ReloadResult) -> u64 {
        self.issuer_reloads
            .get_or_create(&ReloadLabels { result })
            .get()
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn names_and_labels_are_the_documented_ones() -> Result<(), std::fmt::Error> {
        let mut registry = Registry::default();
        let metrics = IdentityMetrics::register(registry.sub_registry_with_prefix("weft_identity"));
        metrics.certified(CertifyResult::issued, 0.002);
        metrics.certified(CertifyResult::forbidden, 0.001);
        metrics.issuer_loaded(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(42));
        metrics.issuer_reload(ReloadResult::success);
        let mut text = String::new();
        encode(&mut text, &registry)?;
        for line in [
            "weft_identity_certify_total{result=\"issued\"} 1",
            "weft_identity_certify_total{result=\"forbidden\"} 1",
            "weft_identity_certify_duration_seconds_count 2",
            "weft_identity_issuer_expiry_timestamp_seconds 42",
            "weft_identity_issuer_reloads_total{result=\"success\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_eq!(metrics.certify_count(CertifyResult::issued), 1);
        Ok(())
    }
}
