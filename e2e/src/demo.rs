//! `make demo` (`weft-e2e demo`): weft's injector in the user's workflow on
//! a real API server. It starts the local cluster (or reuses the running
//! one), runs the real `weft-injector` beside it as a local process (the
//! cluster has no node to run weft's Deployment), registers the webhook,
//! deploys a sample app, annotates its namespace, runs `kubectl rollout
//! restart`, and prints for one new pod what was injected and why, from the
//! API server's own audit log. The cluster and the injector keep running
//! afterwards; `weft-e2e down` (`make cluster-down`) stops both.

mod progress;
mod report;
mod snapshot;
mod workflow;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use self::progress::Progress;
pub use self::report::{AppliedPatch, ContainerLine, Decision, PodReport};
use crate::bins::{self, Binaries};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::injector::{Injector, Profile};
use crate::state::{self, ClusterState};
use crate::webhook::{self, FailurePolicy};

/// The number of steps [`run`] announces.
const STEPS: usize = 8;

/// What the demo deploys and reports on.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The cluster folder: a cluster running there is reused, else one is
    /// started there.
    pub dir: PathBuf,
    /// The manifest to deploy (`examples/emojivoto.yml`).
    pub manifest: PathBuf,
    /// The manifest's namespace, which the demo annotates and restarts.
    pub namespace: String,
    /// The Deployment whose new pod is reported.
    pub deployment: String,
    /// The cargo profile `weft-injector` is built in.
    pub profile: Profile,
}

impl DemoOptions {
    /// The emojivoto sample in the cluster folder `dir`, reporting on
    /// `deployment/web`.
    pub fn new(dir: &Path) -> Self {
        DemoOptions {
            dir: dir.to_path_buf(),
            manifest: bins::workspace_root()
                .join("examples")
                .join("emojivoto.yml"),
            namespace: "emojivoto".to_string(),
            deployment: "web".to_string(),
            profile: Profile::Debug,
        }
    }
}

/// A Deployment's pod created after the restart.
#[derive(Debug, Clone)]
pub struct NewPod {
    /// The Deployment.
    pub deployment: String,
    /// Its new ReplicaSet.
    pub replica_set: String,
    /// The pod's name.
    pub pod: String,
    /// Whether it carries `weft-proxy`.
    pub injected: bool,
    /// Its phase (`Pending`: the cluster has no node).
    pub phase: String,
}

/// What a demo run did and found.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The cluster, with the injector the demo left running.
    pub state: ClusterState,
    /// Whether a running cluster was reused.
    pub reused_cluster: bool,
    /// The webhook's name (`inject.weft.dev`).
    pub webhook: String,
    /// The pods created by the restart, one line per pod.
    pub new_pods: Vec<NewPod>,
    /// The report on the chosen pod.
    pub report: PodReport,
    /// The chosen pod as its ReplicaSet asked for it: the audit log's
    /// `requestObject` of its creation, before any admission plugin (the
    /// webhook saw it after the API server's own, which add the
    /// service-account token volume).
    pub requested_pod: Value,
    /// The chosen pod as the API server stored it.
    pub stored_pod: Value,
}

/// Runs the demo, writing its progress and report to `out`. Fails when a
/// step fails or the reported pod was not injected (after printing why).
pub async fn run(options: &DemoOptions, out: &mut (dyn Write + Send)) -> Result<DemoOutcome> {
    let mut p = Progress::new(out, STEPS);
    p.line(
        "weft demo: the injector on a real Kubernetes API server, in the workflow a user follows",
    )?;
    let bin_dir = binaries(&mut p).await?;
    let (mut state, cluster, reused_cluster) = cluster(&mut p, &options.dir).await?;
    let configuration = injector(&mut p, &cluster, &mut state, options.profile).await?;
    let webhook = register(&mut p, &cluster, &configuration).await?;

    let ns = options.namespace.as_str();
    let before = workflow::deploy(&mut p, &cluster, &options.manifest, ns).await?;
    workflow::annotate(&mut p, &cluster, ns, &options.deployment).await?;
    let (new_pods, snap) = workflow::restart(&mut p, &cluster, ns, &before).await?;
    let recorded = workflow::record(
        &mut p,
        &cluster,
        ns,
        &options.deployment,
        &webhook,
        &new_pods,
        &snap,
    )
    .await?;
    let report = recorded.report;

    p.line("")?;
    p.line(report.render_patch())?;
    p.line(report.render(&webhook))?;
    p.line("The warnings are those the webhook returns for this pod template, from a server-side dry run: the ReplicaSet controller that created the pod does not show them, and the audit log does not keep them.")?;
    p.line("")?;
    closing(&mut p, &state, &bin_dir, &options.dir, ns)?;

    if report.decision != Decision::Injected {
        return Err(Error::Demo(format!(
            "pod {} was not injected: {}",
            report.pod,
            report
                .reason
                .clone()
                .unwrap_or_else(|| "no reason recorded".to_string())
        )));
    }
    Ok(DemoOutcome {
        state,
        reused_cluster,
        webhook,
        new_pods,
        report,
        requested_pod: recorded.requested_pod,
        stored_pod: recorded.stored_pod,
    })
}

/// Step 1: the Kubernetes binaries, built when missing or stale. Returns
/// their folder.
async fn binaries(p: &mut Progress<'_>) -> Result<PathBuf> {
    p.step("Kubernetes binaries: etcd, kube-apiserver, kube-controller-manager, kubectl")?;
    let build = tokio::task::spawn_blocking(Binaries::ensure);
    let built = p
        .ticking(
            "building them from their Go modules (cold: about 5 minutes on 2 cores)",
            build,
        )
        .await?;
    let bins = built.map_err(|e| Error::Io {
        context: "building the e2e binaries".to_string(),
        source: std::io::Error::other(e),
    })??;
    let bin_dir = bins
        .kubectl
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    p.done(format!("in {}", bin_dir.display()))?;
    Ok(bin_dir)
}

/// Step 2: the cluster running in `dir`, else a new one there. Returns its
/// state, a handle on it, and whether it was already running.
async fn cluster(p: &mut Progress<'_>, dir: &Path) -> Result<(ClusterState, Cluster, bool)> {
    p.step(format!("the local cluster in {}", dir.display()))?;
    let (state, reused) = match ClusterState::load(dir)? {
        Some(s) if s.fully_running() => (s, true),
        Some(s) if !s.running().is_empty() => return Err(Error::NotRunning(s.dir)),
        _ => {
            let started = p.ticking(
                "starting etcd, kube-apiserver, kube-controller-manager",
                state::up(dir),
            );
            (started.await??, false)
        }
    };
    let cluster = Cluster::attach(&state).await?;
    let how = if reused {
        "reusing the running cluster"
    } else {
        "started"
    };
    p.done(format!("{how} at {}", state.server))?;
    Ok((state, cluster, reused))
}

/// Step 3: a fresh `weft-injector` beside the cluster, left running and
/// recorded in `state`. Returns the webhook configuration that points at it.
async fn injector(
    p: &mut Progress<'_>,
    cluster: &Cluster,
    state: &mut ClusterState,
    profile: Profile,
) -> Result<Value> {
    p.step("weft-injector, as a local process")?;
    p.note("the cluster has no node to run weft's injector Deployment, so the real weft-injector binary runs here on loopback, with a certificate from weft-certs")?;
    // A previous demo's injector serves an older build and certificate.
    state.stop_injector()?;
    let injector_dir = state.dir.join("injector");
    let starting = Injector::start_detached(cluster, &injector_dir, profile, &[]);
    let injector = p
        .ticking(
            "building (cargo build -p weft-injector) and starting it",
            starting,
        )
        .await??;
    let configuration = webhook::configuration(&injector, FailurePolicy::Ignore)?;
    let url = injector.url();
    let recorded = injector
        .detach()
        .ok_or_else(|| Error::Demo("weft-injector exited as it started".to_string()))?;
    let (pid, log) = (recorded.pid, recorded.log.clone());
    // Recorded at once, so `down` stops it even if a later step fails.
    state.record_injector(recorded)?;
    p.done(format!("pid {pid}, serving {url}, log {}", log.display()))?;
    Ok(configuration)
}

/// Step 4: the webhook configuration applied and live. Returns the
/// webhook's name.
async fn register(
    p: &mut Progress<'_>,
    cluster: &Cluster,
    configuration: &Value,
) -> Result<String> {
    let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let webhook = field(&configuration["webhooks"][0]["name"]);
    p.step(format!(
        "MutatingWebhookConfiguration {} (webhook {webhook}, failurePolicy {})",
        field(&configuration["metadata"]["name"]),
        field(&configuration["webhooks"][0]["failurePolicy"]),
    ))?;
    p.note("rendered by weft-webhook-config, the source of `weft install`, with the URL of the local injector instead of the Service")?;
    webhook::apply(cluster, configuration).await?;
    p.ticking(
        "waiting until the API server calls it (a dry-run marker pod comes back injected)",
        webhook::wait_live(cluster),
    )
    .await??;
    p.done("the API server calls the injector")?;
    Ok(webhook)
}

/// How to use the cluster now, and how to stop it.
fn closing(
    p: &mut Progress<'_>,
    state: &ClusterState,
    bin_dir: &Path,
    dir: &Path,
    ns: &str,
) -> Result<()> {
    p.line("Pods stay Pending: the local cluster has no node yet (a later issue gives it one); an admission webhook only needs the API server.")?;
    p.line(format!(
        "Point kubectl at the cluster (a kubectl of the same release is {}):",
        bin_dir.join("kubectl").display()
    ))?;
    p.line(format!(
        "  export KUBECONFIG={}",
        state.kubeconfig.display()
    ))?;
    p.line(format!("  export PATH={}:$PATH", bin_dir.display()))?;
    p.line(format!("  kubectl get pods -n {ns}"))?;
    if let Some(injector) = &state.injector {
        p.line(format!(
            "weft-injector keeps running in the background (pid {}, log {}).",
            injector.pid,
            injector.log.display()
        ))?;
    }
    let default_dir = bins::crate_dir().join(".cluster");
    let same = std::fs::canonicalize(dir).ok() == std::fs::canonicalize(&default_dir).ok();
    let down = if same {
        "make cluster-down".to_string()
    } else {
        format!("make cluster-down E2E_CLUSTER_DIR={}", dir.display())
    };
    p.line(format!("Stop the cluster and the injector: {down}"))
}
