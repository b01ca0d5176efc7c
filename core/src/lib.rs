//! The contract between weft's parts, as data and pure functions: the
//! annotation keys, container and volume names, proxy ports and UID
//! (`config`, `decision`, `overrides`); the port-list and quantity grammars
//! (`ports`, `quantity`, `values`); and the injection planner, which reads a
//! pod and its namespace's annotations and returns the decision, the
//! effective overrides, the containers, the JSON patch and its digest
//! (`plan`, `containers`, `digest`, `report`); and the proxy's environment,
//! the `WEFT_PROXY_*` names the injector writes and the proxy reads
//! (`proxy_env`); and destination's answer as it goes over the wire
//! (`destination`). The planner is the default feature `planner`; without it
//! only the names, constants, quantities, port lists (without container
//! port names) and answer types remain.
//!
//! Like kube-core, this crate does no I/O: no async runtime, no Kubernetes
//! client, no TLS, no filesystem or network. The webhook server
//! (`weft-injector`), `weft inject` (`weft-cli`) and destination
//! (`weft-control`) read the same contract from here, so they never
//! disagree; fetching namespaces, answering the API server and serving
//! HTTPS are theirs.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

// Always here: the names and constants both sides read. The proxy takes
// only these (`default-features = false`), so its static build does not
// compile the Kubernetes API types the planner reads pods with.
pub mod config;
pub mod destination;
pub mod ports;
pub mod proxy_env;
pub mod quantity;

#[cfg(feature = "planner")]
pub mod containers;
#[cfg(feature = "planner")]
pub mod decision;
#[cfg(feature = "planner")]
pub mod digest;
#[cfg(feature = "planner")]
pub mod overrides;
#[cfg(feature = "planner")]
pub mod plan;
#[cfg(feature = "planner")]
pub mod report;
#[cfg(feature = "planner")]
pub mod values;

pub use config::InjectorConfig;
#[cfg(feature = "planner")]
pub use decision::{Decision, SkipReason};
#[cfg(feature = "planner")]
pub use plan::{Plan, PlanError, plan};
