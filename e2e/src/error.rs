//! The harness's one error type: every way a local cluster can fail to build,
//! start, answer or stop, each naming the component or command involved.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why the local cluster or one of its tools failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A program the harness needs is not installed.
    #[error("{program} not found on PATH: {hint}")]
    MissingProgram {
        /// The program's name.
        program: &'static str,
        /// How to get it.
        hint: &'static str,
    },

    /// `e2e/go/build.sh` failed to build the Kubernetes binaries.
    #[error(
        "building the e2e binaries failed ({status}); run `make e2e-bins` to see the Go output"
    )]
    BuildBinaries {
        /// The script's exit status.
        status: ExitStatus,
    },

    /// Generating a certificate or key failed.
    #[error("certificate generation: {0}")]
    Pki(#[from] rcgen::Error),

    /// Serialising a kubeconfig or audit policy failed.
    #[error("writing YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),

    /// The cluster state file is unreadable.
    #[error("cluster state {path}: {source}")]
    State {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// A value could not be converted to or from JSON.
    #[error("{what}: {source}")]
    Json {
        /// What was being converted.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },

    /// A component could not be started.
    #[error("starting {component}: {source}")]
    Spawn {
        /// etcd, kube-apiserver, ...
        component: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A component exited while the cluster was starting or running.
    #[error("{component} exited ({status}); last lines of its log:\n{log_tail}")]
    Exited {
        /// etcd, kube-apiserver, ...
        component: String,
        /// Its exit status.
        status: ExitStatus,
        /// The end of its log.
        log_tail: String,
    },

    /// Something did not become ready in time.
    #[error("{what}: not reached after {after:.1?}\n{detail}")]
    Timeout {
        /// What the harness waited for.
        what: String,
        /// How long it waited.
        after: Duration,
        /// Why it was not there yet: the last check's answer or log tails.
        detail: String,
    },

    /// Changing the host for the node (bridge, iptables, mounts) failed.
    #[error("{what}: {detail}")]
    Host {
        /// The command or change.
        what: String,
        /// What it said.
        detail: String,
    },

    /// Building an image archive failed.
    #[error("building the node's images: {0}")]
    Images(String),

    /// Another node cluster holds the machine's single node.
    #[error(
        "another weft-e2e node runs on this machine (from {0}); stop it with `make cluster-down` (or end the test run that owns it) and start again"
    )]
    NodeBusy(PathBuf),

    /// A cluster is already running in the requested folder.
    #[error("a cluster is already running from {0} (run `make cluster-down` first)")]
    AlreadyRunning(PathBuf),

    /// The cluster recorded in a folder is not (fully) running.
    #[error(
        "the cluster in {0} is not fully running; stop it with `make cluster-down` and start again"
    )]
    NotRunning(PathBuf),

    /// The demo's workload, or the API server's record of it, is not what
    /// the demo expects.
    #[error("demo: {0}")]
    Demo(String),

    /// Writing the demo's output failed.
    #[error("writing the demo output: {0}")]
    Output(#[source] std::io::Error),

    /// Issuing the webhook's certificates failed.
    #[error("webhook certificates: {0}")]
    Certs(#[from] weft_certs::Error),

    /// Making or loading the mesh's trust anchor, issuer or a leaf failed.
    #[error("mesh certificates: {0}")]
    MeshPki(#[source] weft_certs::Error),

    /// Rendering the webhook configuration failed.
    #[error("rendering the webhook configuration: {0}")]
    Render(#[from] weft_webhook_config::Error),

    /// A rendered manifest lacks a document the harness needs.
    #[error("the rendered manifests hold no {0}")]
    MissingDocument(&'static str),

    /// Building one of weft's binaries failed.
    #[error("building {bin}: {reason}")]
    BuildBinary {
        /// The binary.
        bin: &'static str,
        /// What cargo said, or why it could not run.
        reason: String,
    },

    /// Building a client from the kubeconfig failed.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),

    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// `kubectl` exited with an error.
    #[error("kubectl {args} failed ({status}): {stderr}")]
    Kubectl {
        /// The arguments, space separated.
        args: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
}

impl Error {
    /// Wraps an I/O error with what the harness was doing.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
