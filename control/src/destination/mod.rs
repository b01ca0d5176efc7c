//! Destination: tells a proxy who is behind an address. For `IP:PORT` it
//! answers whether a meshed proxy is there, the SPIFFE identity that proxy
//! must present, the workload labels for metrics (`dst_namespace`,
//! `dst_deployment`, ..., `dst_pod`, `dst_serviceaccount`), and whether the
//! port is opaque; for a Service's ClusterIP, the Service and that answer
//! for each of its ready endpoints. Proxies can also subscribe and get each
//! change.
//!
//! Layers, from pure to I/O: [`workload`] and [`endpoint`] read one pod,
//! [`service`] and [`slice`](mod@slice) one Service and one EndpointSlice,
//! [`index`] (with [`service_index`]) maps IPs to pods and Services,
//! [`cache`] shares the index with subscribers, [`informer`] feeds it from
//! kube-rs watches, and [`api`] serves it as HTTP/JSON. Every answer comes
//! from the cache; no request reaches the API server. TLS, the listener and
//! the admin port belong to the `weft-control` binary, which mounts
//! [`router`].

use std::time::Duration;

pub mod answer;
pub mod api;
pub mod cache;
pub mod endpoint;
pub mod error;
pub mod index;
pub mod informer;
pub mod metrics;
pub mod service;
pub mod service_index;
pub mod slice;
pub mod stream;
mod trim;
pub mod workload;

pub use answer::{Answer, ServiceRef};
pub use api::{DestinationState, router, serve};
pub use cache::Cache;
pub use endpoint::{Endpoint, PodInfo, PodKey};
pub use error::DestinationError;
pub use index::{Index, Target};
pub use metrics::Metrics;
pub use service::{MAX_SERVICE_ENDPOINTS, ServiceInfo, ServiceKey, ServiceView};
pub use slice::{SliceInfo, SliceKey};

/// The default quiet interval after which a watch gets a `{}` heartbeat.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);
/// The default cap on watches open at once.
pub const DEFAULT_MAX_WATCHES: usize = 50_000;
/// The default cap on watches open at once from one client IP.
pub const DEFAULT_MAX_WATCHES_PER_CLIENT: usize = 2_000;

/// How destination answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The SPIFFE trust domain of identities (`cluster.local`).
    pub trust_domain: String,
    /// The inbound port of every proxy (4143).
    pub proxy_port: u16,
    /// Quiet interval after which a watch gets a `{}` line.
    pub heartbeat: Duration,
    /// Watches open at once, in all.
    pub max_watches: usize,
    /// Watches open at once from one client IP.
    pub max_watches_per_client: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            trust_domain: "cluster.local".to_string(),
            proxy_port: weft_core::config::INBOUND_PORT,
            heartbeat: DEFAULT_HEARTBEAT,
            max_watches: DEFAULT_MAX_WATCHES,
            max_watches_per_client: DEFAULT_MAX_WATCHES_PER_CLIENT,
        }
    }
}

/// Starts watching the cluster through `client` (on the current tokio
/// runtime) and returns the state to serve with [`router`]. Answers are 503
/// until the first lists have arrived ([`DestinationState::is_ready`]).
pub fn start(client: kube::Client, config: Config, metrics: Metrics) -> DestinationState {
    let cache = Cache::new(config.trust_domain.clone(), metrics.clone());
    informer::spawn(client, cache.clone());
    DestinationState::new(cache, config, metrics)
}
