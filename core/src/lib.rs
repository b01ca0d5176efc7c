//! The contract between weft's parts, as data and pure functions: the
//! annotation keys, container and volume names, proxy ports and UID
//! (`config`, `decision`, `overrides`); the port-list and quantity grammars
//! (`ports`, `quantity`, `values`); and the injection planner, which reads a
//! pod and its namespace's annotations and returns the decision, the
//! effective overrides, the containers, the JSON patch and its digest
//! (`plan`, `containers`, `digest`, `report`).
//!
//! Like kube-core, this crate does no I/O: no async runtime, no Kubernetes
//! client, no TLS, no filesystem or network. The webhook server
//! (`weft-injector`), `weft inject` (`weft-cli`) and destination
//! (`weft-control`) read the same contract from here, so they never
//! disagree; fetching namespaces, answering the API server and serving
//! HTTPS are theirs.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod config;
pub mod containers;
pub mod decision;
pub mod digest;
pub mod overrides;
pub mod plan;
pub mod ports;
pub mod quantity;
pub mod report;
pub mod values;

pub use config::InjectorConfig;
pub use decision::{Decision, SkipReason};
pub use plan::{Plan, PlanError, plan};
