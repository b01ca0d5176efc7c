//! The destination client's own metrics, registered beside the mesh TLS
//! families (which count what each outbound connection was told, in
//! `destination_lookups_total`):
//!
//! - `destination_watches`: `/v1/watch` streams open now (one per address
//!   watched while destination is reachable).
//! - `destination_updates_total`: times destination changed the answer for
//!   an address already answered, on an open watch or on the first line
//!   after a reopen (first answers, repeats, heartbeats and unreadable
//!   lines excluded).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The watch gauge and update counter; cheap to clone (clones share).
#[derive(Clone, Debug, Default)]
pub struct WatchMetrics {
    watches: Gauge,
    updates: Counter,
}

impl WatchMetrics {
    /// Registers both families in `registry` (no prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "destination_watches",
            "Watches on destination open now",
            self.watches.clone(),
        );
        registry.register(
            "destination_updates",
            "Changes destination sent to answers already known",
            self.updates.clone(),
        );
    }

    /// Watches open now.
    pub fn watches(&self) -> i64 {
        self.watches.get()
    }

    /// Updates received so far.
    pub fn updates(&self) -> u64 {
        self.updates.get()
    }

    pub(super) fn watch_opened(&self) -> OpenWatch {
        self.watches.inc();
        OpenWatch {
            watches: self.watches.clone(),
        }
    }

    pub(super) fn updated(&self) {
        self.updates.inc();
    }
}

/// One open watch in the gauge, until dropped (also when its task is
/// aborted, so the gauge cannot drift).
#[derive(Debug)]
pub(super) struct OpenWatch {
    watches: Gauge,
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.watches.dec();
    }
}
