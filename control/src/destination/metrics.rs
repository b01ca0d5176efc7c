//! Destination's Prometheus metrics: lookups by result, open watches, the
//! updates they were sent, refused watches, and the size of the index
//! (pod IPs, pods, Services).
//! Registered into the control plane's registry (served on its admin port).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// How a lookup (a resolve, or the first answer of a watch) ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum LookupResult {
    /// A meshed proxy is behind the address.
    Meshed,
    /// No proxy, or no pod at all.
    Unmeshed,
    /// A Service's ClusterIP (answered with its endpoints).
    Service,
    /// The request was malformed (400).
    BadRequest,
    /// The caches were not synced yet, or the watch was refused (503/429).
    Unavailable,
}

impl LookupResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LookupResult::Meshed => "meshed",
            LookupResult::Unmeshed => "unmeshed",
            LookupResult::Service => "service",
            LookupResult::BadRequest => "bad_request",
            LookupResult::Unavailable => "unavailable",
        }
    }
}

impl EncodeLabelValue for LookupResult {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    result: LookupResult,
}

/// Why a watch was refused.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Refusal {
    /// The global cap.
    GlobalLimit,
    /// The per-client cap.
    ClientLimit,
}

impl EncodeLabelValue for Refusal {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        let text = match self {
            Refusal::GlobalLimit => "global_limit",
            Refusal::ClientLimit => "client_limit",
        };
        std::fmt::Write::write_str(encoder, text)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: Refusal,
}

/// Handles to destination's metrics; clones share the same series.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    lookups: Family<LookupLabels, Counter>,
    watches: Gauge,
    watch_updates: Counter,
    watch_refusals: Family<RefusalLabels, Counter>,
    index_endpoints: Gauge,
    index_pods: Gauge,
    index_services: Gauge,
}

impl Metrics {
    /// Fresh metrics, not registered anywhere yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers every series in `registry` under its full name
    /// (`weft_destination_...`), so the registry should carry no prefix.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "weft_destination_lookups",
            "Lookups (resolves and watch starts) by result",
            self.lookups.clone(),
        );
        registry.register(
            "weft_destination_watches",
            "Watches open now",
            self.watches.clone(),
        );
        registry.register(
            "weft_destination_watch_updates",
            "Answers sent to open watches after their first",
            self.watch_updates.clone(),
        );
        registry.register(
            "weft_destination_watch_refusals",
            "Watches refused by a cap, by which cap",
            self.watch_refusals.clone(),
        );
        registry.register(
            "weft_destination_index_endpoints",
            "Pod IPs the index can answer for",
            self.index_endpoints.clone(),
        );
        registry.register(
            "weft_destination_index_pods",
            "Pods in the index, with or without an IP",
            self.index_pods.clone(),
        );
        registry.register(
            "weft_destination_index_services",
            "Services with a ClusterIP the index can answer for",
            self.index_services.clone(),
        );
    }

    /// Counts one lookup.
    pub fn lookup(&self, result: LookupResult) {
        self.lookups.get_or_create(&LookupLabels { result }).inc();
    }

    /// How many lookups ended with `result` so far.
    pub fn lookups(&self, result: LookupResult) -> u64 {
        self.lookups.get_or_create(&LookupLabels { result }).get()
    }

    /// A watch opened (`+1`) or closed (`-1`).
    pub(crate) fn watch_opened(&self) {
        self.watches.inc();
    }

    pub(crate) fn watch_closed(&self) {
        self.watches.dec();
    }

    /// Watches open now.
    pub fn watches(&self) -> i64 {
        self.watches.get()
    }

    pub(crate) fn watch_update(&self) {
        self.watch_updates.inc();
    }

    pub(crate) fn watch_refused(&self, reason: Refusal) {
        self.watch_refusals
            .get_or_create(&RefusalLabels { reason })
            .inc();
    }

    pub(crate) fn index_size(&self, pods: usize, endpoints: usize, services: usize) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.index_pods.set(gauge(pods));
        self.index_endpoints.set(gauge(endpoints));
        self.index_services.set(gauge(services));
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn exports_the_documented_names() {
        let metrics = Metrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.lookup(LookupResult::Meshed);
        metrics.lookup(LookupResult::BadRequest);
        metrics.lookup(LookupResult::Service);
        metrics.watch_opened();
        metrics.watch_refused(Refusal::GlobalLimit);
        metrics.index_size(3, 5, 2);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        for line in [
            "weft_destination_lookups_total{result=\"meshed\"} 1",
            "weft_destination_lookups_total{result=\"bad_request\"} 1",
            "weft_destination_lookups_total{result=\"service\"} 1",
            "weft_destination_watches 1",
            "weft_destination_watch_refusals_total{reason=\"global_limit\"} 1",
            "weft_destination_index_endpoints 5",
            "weft_destination_index_pods 3",
            "weft_destination_index_services 2",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert_eq!(metrics.lookups(LookupResult::Meshed), 1);
        assert_eq!(metrics.watches(), 1);
    }
}
