//! The injector's Prometheus metrics: reviews by outcome and how long they
//! took, certificate reloads, namespace lookups, TLS handshakes that failed
//! and Kubernetes Events by result. Served as OpenMetrics text on the admin
//! port's `/metrics`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::admission::Outcome;
use crate::events::EventResult;
use crate::namespaces::LookupSource;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Review latency buckets, in seconds: a review is planned inline in tens of
/// microseconds, so the buckets start at 50 µs and reach 1 s (the API server
/// gives up on a webhook after its timeout, a few seconds at most).
const DURATION_BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Outcome,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Result of one attempt to load a new serving certificate.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new pair was loaded and is served from the next handshake on.
    Success,
    /// The new pair was unreadable or inconsistent; the old one is kept.
    Failure,
}

impl ReloadResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Success => "success",
            ReloadResult::Failure => "failure",
        }
    }
}

impl EncodeLabelValue for ReloadResult {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: ReloadResult,
}

impl EncodeLabelValue for LookupSource {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    source: LookupSource,
}

impl EncodeLabelValue for EventResult {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    result: EventResult,
}

/// Every metric the injector exports, registered once at start-up.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reviews: Family<OutcomeLabels, Counter>,
    review_duration: Histogram,
    certificate_reloads: Family<ReloadLabels, Counter>,
    trust_anchors_reloads: Family<ReloadLabels, Counter>,
    namespace_lookups: Family<LookupLabels, Counter>,
    tls_handshake_failures: Counter,
    request_timeouts: Counter,
    events: Family<EventLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `weft_injector` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("weft_injector");
        let reviews = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "admission_reviews",
            "AdmissionReviews answered, by outcome",
            reviews.clone(),
        );
        let review_duration = Histogram::new(DURATION_BUCKETS);
        registry.register_with_unit(
            "admission_review_duration",
            "Time from reading a review request to its answer being ready",
            Unit::Seconds,
            review_duration.clone(),
        );
        let certificate_reloads = Family::<ReloadLabels, Counter>::default();
        let trust_anchors_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "trust_anchors_reloads",
            "Trust anchor reloads after --trust-anchors-file changed, by result",
            trust_anchors_reloads.clone(),
        );
        registry.register(
            "certificate_reloads",
            "Serving certificate reloads after its files changed, by result",
            certificate_reloads.clone(),
        );
        let namespace_lookups = Family::<LookupLabels, Counter>::default();
        registry.register(
            "namespace_lookups",
            "Namespace annotation lookups, by where the answer came from",
            namespace_lookups.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes on the webhook port that failed or timed out",
            tls_handshake_failures.clone(),
        );
        let request_timeouts = Counter::default();
        registry.register(
            "request_timeouts",
            "Requests abandoned because the client did not send them within the request timeout",
            request_timeouts.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events",
            "Kubernetes Events about injections, by result (dropped: the queue was full)",
            events.clone(),
        );

        // Show every outcome and result from zero, so a rate() over them
        // works before the first event and dashboards list them all.
        for outcome in Outcome::ALL {
            let _ = reviews.get_or_create(&OutcomeLabels { outcome });
        }
        for result in [ReloadResult::Success, ReloadResult::Failure] {
            let _ = certificate_reloads.get_or_create(&ReloadLabels { result });
            let _ = trust_anchors_reloads.get_or_create(&ReloadLabels { result });
        }
        for source in [
            LookupSource::Cache,
            LookupSource::Api,
            LookupSource::Unknown,
        ] {
            let _ = namespace_lookups.get_or_create(&LookupLabels { source });
        }
        for result in EventResult::ALL {
            let _ = events.get_or_create(&EventLabels { result });
        }

        Metrics {
            registry,
            reviews,
            review_duration,
            certificate_reloads,
            trust_anchors_reloads,
            namespace_lookups,
            tls_handshake_failures,
            request_timeouts,
            events,
        }
    }

    /// Counts one answered review and how long it took.
    pub fn review(&self, outcome: Outcome, seconds: f64) {
        self.reviews.get_or_create(&OutcomeLabels { outcome }).inc();
        self.review_duration.observe(seconds);
    }

    /// How many reviews ended with `outcome` so far.
    pub fn reviews(&self, outcome: Outcome) -> u64 {
        self.reviews.get_or_create(&OutcomeLabels { outcome }).get()
    }

    /// Counts one certificate reload attempt.
    pub fn certificate_reload(&self, result: ReloadResult) {
        self.certificate_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    /// How many reload attempts ended with `result` so far.
    pub fn certificate_reloads(&self, result: ReloadResult) -> u64 {
        self.certificate_reloads
            .get_or_create(&ReloadLabels { result })
            .get()
    }

    /// Counts one trust anchors reload attempt.
    pub fn trust_anchors_reload(&self, result: ReloadResult) {
        self.trust_anchors_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    /// How many trust anchors reloads ended with `result` so far.
    pub fn trust_anchors_reloads(&self, result: ReloadResult) -> u64 {
        self.trust_anchors_reloads
            .get_or_create(&ReloadLabels { result })
            .get()
    }

    /// Counts one namespace lookup.
    pub fn namespace_lookup(&self, source: LookupSource) {
        self.namespace_lookups
            .get_or_create(&LookupLabels { source })
            .inc();
    }

    /// Counts one failed TLS handshake.
    pub fn tls_handshake_failure(&self) {
        self.tls_handshake_failures.inc();
    }

    /// Counts one request abandoned at the request timeout.
    pub fn request_timeout(&self) {
        self.request_timeouts.inc();
    }

    /// Counts one Event published, failed or dropped.
    pub fn event(&self, result: EventResult) {
        self.events.get_or_create(&EventLabels { result }).inc();
    }

    /// How many Events ended with `result` so far.
    pub fn events(&self, result: EventResult) -> u64 {
        self.events.get_or_create(&EventLabels { result }).get()
    }

    /// The whole registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing into a String cannot fail; the Result is the fmt::Write contract.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "cannot encode metrics");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn every_outcome_is_exported_from_zero() {
        let text = Metrics::new().encode();
        for outcome in Outcome::ALL {
            let series = format!(
                "weft_injector_admission_reviews_total{{outcome=\"{}\"}}",
                outcome.as_str()
            );
            assert_eq!(sample(&text, &series), Some(0.0), "{series} in\n{text}");
        }
        assert_eq!(
            sample(
                &text,
                "weft_injector_certificate_reloads_total{result=\"failure\"}"
            ),
            Some(0.0)
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn reviews_move_counters_and_the_histogram() {
        let metrics = Metrics::new();
        metrics.review(Outcome::Injected, 0.0002);
        metrics.review(Outcome::Injected, 0.003);
        metrics.review(Outcome::TooLarge, 0.0001);
        metrics.certificate_reload(ReloadResult::Success);
        metrics.namespace_lookup(LookupSource::Api);
        metrics.tls_handshake_failure();
        metrics.event(EventResult::Dropped);
        assert_eq!(metrics.reviews(Outcome::Injected), 2);
        assert_eq!(metrics.certificate_reloads(ReloadResult::Success), 1);

        let text = metrics.encode();
        let get = |series: &str| sample(&text, series);
        assert_eq!(
            get("weft_injector_admission_reviews_total{outcome=\"injected\"}"),
            Some(2.0)
        );
        assert_eq!(
            get("weft_injector_admission_reviews_total{outcome=\"too_large\"}"),
            Some(1.0)
        );
        assert_eq!(
            get("weft_injector_admission_review_duration_seconds_count"),
            Some(3.0)
        );
        assert_eq!(
            get("weft_injector_admission_review_duration_seconds_bucket{le=\"0.00025\"}"),
            Some(2.0)
        );
        assert_eq!(
            get("weft_injector_admission_review_duration_seconds_bucket{le=\"0.005\"}"),
            Some(3.0)
        );
        assert_eq!(
            get("weft_injector_certificate_reloads_total{result=\"success\"}"),
            Some(1.0)
        );
        assert_eq!(
            get("weft_injector_namespace_lookups_total{source=\"api\"}"),
            Some(1.0)
        );
        assert_eq!(get("weft_injector_tls_handshake_failures_total"), Some(1.0));
        assert_eq!(
            get("weft_injector_events_total{result=\"dropped\"}"),
            Some(1.0)
        );
        assert_eq!(
            get("weft_injector_events_total{result=\"published\"}"),
            Some(0.0)
        );
        assert!(text.contains("# UNIT weft_injector_admission_review_duration_seconds seconds"));
    }
}
