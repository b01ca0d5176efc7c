//! weft's injector: the mutating admission webhook server. It answers the
//! API server's AdmissionReviews (`admission`) with the plan that
//! `weft-core`'s pure planner makes for the pod: the `weft-init` step, the
//! `weft-proxy` sidecar, the identity token volume and the review
//! annotations.
//!
//! The policy lives in `weft-core`, which `weft inject` in the CLI shares, so
//! the two never disagree; its modules are re-exported here under their old
//! paths (`weft_injector::plan`, `weft_injector::config`, ...). This crate
//! adds the I/O: the namespace watch cache (`namespaces`), Events about
//! injections (`events`), the trust anchors file (`anchors`), and the HTTPS
//! server (`server`, `tls`, `metrics`).

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub use weft_core::{
    config, containers, decision, digest, overrides, plan, ports, quantity, report, values,
};

pub mod admission;
pub mod anchors;
pub mod events;
pub mod metrics;
pub mod namespaces;
pub mod server;
pub mod tls;

// `plan` above names both the module and the function.
pub use weft_core::{Decision, InjectorConfig, Plan, PlanError, SkipReason};
