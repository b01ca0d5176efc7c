//! weft's injector: decides whether a pod joins the mesh and builds the JSON
//! patch that adds the `weft-init` step, the `weft-proxy` sidecar, the
//! identity token volume and the review annotations.
//!
//! The policy (`decision`, `overrides`, `plan`) is pure: it reads a pod and its
//! namespace's annotations and never touches the network, so the webhook
//! server (`server`) and `weft inject` in the CLI share it and never disagree.
//! Talking to the API server (the namespace watch cache, Events about
//! injections) and serving HTTPS live in `namespaces`, `events`, `tls` and
//! `server`.

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

pub mod admission;
pub mod anchors;
pub mod events;
pub mod metrics;
pub mod namespaces;
pub mod server;
pub mod tls;

pub use config::InjectorConfig;
pub use decision::{Decision, SkipReason};
pub use plan::{Plan, PlanError, plan};
