//! weft's end-to-end harness: a real Kubernetes control plane on loopback,
//! built from source and started per test, without Docker.
//!
//! [`Cluster`] builds etcd, kube-apiserver, kube-controller-manager and
//! kubectl from the Go modules under `e2e/go/` (once; cached in `e2e/.bin/`),
//! generates the cluster's PKI, starts the three components on free loopback
//! ports, waits until a pod could be created, and stops everything when
//! dropped, even during a panic. There is no node: pods stay `Pending`, which
//! is all an admission webhook's tests need. The network-namespace rig for
//! running pods lives in `e2e/rig/` (crate `weft-testrig`).
//!
//! Beside the cluster run weft's own processes: [`Injector`] (the webhook)
//! and [`Control`] (identity and destination, with a [`MeshPki`]'s issuer);
//! [`cargo_bin`] finds or builds the other binaries (`weft-proxy`).
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod audit;
pub mod bins;
pub mod cargo_bin;
pub mod cluster;
pub mod control;
pub mod demo;
pub mod error;
pub mod flags;
pub mod http;
pub mod images;
pub mod injector;
pub mod install;
pub mod kubeconfig;
pub mod kubectl;
pub mod mesh_pki;
pub mod metrics;
pub mod node;
pub mod pki;
pub mod ports;
pub mod process;
pub mod prom;
pub mod state;
pub mod wait;
pub mod webhook;

pub use bins::Binaries;
pub use cluster::{Cluster, ClusterOptions, NodeOptions};
pub use control::{Control, ControlOptions};
pub use error::{Error, Result};
pub use injector::{Injector, Profile};
pub use kubectl::{Kubectl, KubectlOutput};
pub use mesh_pki::MeshPki;
pub use process::Lifetime;
