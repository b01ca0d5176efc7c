//! `make demo` (`weft-e2e demo`): weft in the user's workflow on a real
//! cluster with a real node, each step printed as the command a user types.
//! It builds the images, starts the local cluster and its node (or reuses
//! the running one), installs weft as a getting-started guide does (`weft
//! check --pre`, `weft install | kubectl apply -f -`, `weft check`), deploys
//! a sample app, annotates its namespace, runs `kubectl rollout restart`,
//! waits until every new pod is READY 2/2, prints for one new pod what was
//! injected and why from the API server's own audit log, shows from the
//! proxies' metrics that web → voting is mutual TLS with the workloads'
//! identities, and ends with the commands to try next. The cluster keeps
//! running afterwards; `weft-e2e down` (`make cluster-down`) stops it.

mod control_plane;
mod mtls;
mod next_steps;
mod progress;
mod report;
mod shell;
mod snapshot;
mod traffic;
mod workflow;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use self::mtls::{Call, CallReport, Tally, Workload};
use self::next_steps::NextSteps;
use self::progress::Progress;
pub use self::report::{AppliedPatch, ContainerLine, Decision, PodReport};
use crate::bins::{self, Binaries};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::images;
use crate::injector::Profile;
use crate::state::{self, ClusterState};

/// The number of steps [`run`] announces.
const STEPS: usize = 11;

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
    /// The cargo profile the `weft` CLI is built in.
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
    /// Its phase.
    pub phase: String,
}

/// What a demo run did and found.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The cluster the demo left running.
    pub state: ClusterState,
    /// Whether a running cluster was reused.
    pub reused_cluster: bool,
    /// The webhook's name (`inject.weft.dev`).
    pub webhook: String,
    /// The pods created by the restart, one line per pod.
    pub new_pods: Vec<NewPod>,
    /// `kubectl get pods -n NS` once every new pod was Ready.
    pub pods_table: String,
    /// The report on the chosen pod.
    pub report: PodReport,
    /// The chosen pod as its ReplicaSet asked for it: the audit log's
    /// `requestObject` of its creation, before any admission plugin (the
    /// webhook saw it after the API server's own, which add the
    /// service-account token volume).
    pub requested_pod: Value,
    /// The chosen pod as the API server stored it.
    pub stored_pod: Value,
    /// web → voting as both proxies counted it (`None` when the sample has
    /// no such call).
    pub mtls: Option<CallReport>,
}

/// Runs the demo, writing its progress and report to `out`. Fails when a
/// step fails, the reported pod was not injected, or web → voting was not
/// seen over mutual TLS (after printing why and what to try next).
pub async fn run(options: &DemoOptions, out: &mut (dyn Write + Send)) -> Result<DemoOutcome> {
    let mut p = Progress::new(out, STEPS);
    p.line("weft demo: weft on a local Kubernetes cluster with a real node, in the workflow a user follows")?;
    let bin_dir = binaries(&mut p).await?;
    build_images(&mut p).await?;
    let (state, cluster, reused_cluster) = cluster(&mut p, &options.dir).await?;
    let (weft, identity) =
        control_plane::check_pre(&mut p, &cluster, options.profile, &state.dir).await?;
    control_plane::install(&mut p, &cluster, &identity).await?;
    let webhook = control_plane::check(&mut p, &cluster, &weft, &identity).await?;

    let ns = options.namespace.as_str();
    let before = workflow::deploy(&mut p, &cluster, &options.manifest, ns).await?;
    workflow::annotate(&mut p, &cluster, ns, &options.deployment).await?;
    let (new_pods, snap, pods_table) = workflow::restart(&mut p, &cluster, ns, &before).await?;
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
    // Failing to see the call still ends with the way into the cluster.
    let traffic = traffic::mtls(&mut p, &snap, &new_pods, ns).await;
    p.line("")?;
    let weft_dir = weft.parent().unwrap_or(Path::new(".")).to_path_buf();
    let next = NextSteps {
        kubeconfig: &state.kubeconfig,
        path: vec![weft_dir, bin_dir],
        namespace: ns,
        deployment: &options.deployment,
        manifest: &options.manifest,
        proxy: traffic::client_proxy(&snap, &new_pods),
        down: cluster_down(&options.dir),
    };
    for line in next.render() {
        p.line(line)?;
    }
    let traffic = traffic?;

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
        pods_table,
        report,
        requested_pod: recorded.requested_pod,
        stored_pod: recorded.stored_pod,
        mtls: traffic,
    })
}

/// Step 1: the Kubernetes binaries, built when missing or stale. Returns
/// their folder.
async fn binaries(p: &mut Progress<'_>) -> Result<PathBuf> {
    p.step("Kubernetes binaries: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl, CoreDNS")?;
    let build = tokio::task::spawn_blocking(Binaries::ensure);
    let built = p
        .ticking(
            "building them from their Go modules (cold: about 10 minutes on 2 cores)",
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

/// Step 2: weft's images (proxy, injector, control, pause) and the node's
/// (CoreDNS, busybox), as OCI archives; a no-op when nothing changed.
async fn build_images(p: &mut Progress<'_>) -> Result<()> {
    p.step("weft's images, as OCI archives (no Docker engine)")?;
    let built = p
        .ticking(
            "cargo build --release --target x86_64-unknown-linux-musl, then weft-image (cold: about 10 minutes)",
            images::build(),
        )
        .await??;
    for image in &built {
        p.note(format!(
            "{:<42} {:>6.1} MB compressed{}",
            image.name,
            image.compressed_size as f64 / 1e6,
            if image.reused { " (unchanged)" } else { "" }
        ))?;
    }
    p.done(format!("in {}", images::images_dir().display()))
}

/// Step 3: the cluster running in `dir`, else a new one there with its
/// node. Returns its state, a handle on it, and whether it was already
/// running.
async fn cluster(p: &mut Progress<'_>, dir: &Path) -> Result<(ClusterState, Cluster, bool)> {
    p.step(format!(
        "the local cluster and its node, in {}",
        dir.display()
    ))?;
    let (state, reused) = match ClusterState::load(dir)? {
        Some(s) if s.fully_running() && s.node => (s, true),
        Some(s) if !s.running().is_empty() => return Err(Error::NotRunning(s.dir)),
        _ => {
            let started = p.ticking(
                "starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, kubelet, kube-proxy and CoreDNS; importing the images",
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
    p.note(format!(
        "the kubectl commands below run with KUBECONFIG={}",
        shell::word(&state.kubeconfig.display().to_string())
    ))?;
    p.done(format!(
        "{how} at {}; node {} Ready",
        state.server,
        crate::node::config::NODE_NAME
    ))?;
    Ok((state, cluster, reused))
}

/// The command that stops the cluster in `dir`.
fn cluster_down(dir: &Path) -> String {
    let default_dir = bins::crate_dir().join(".cluster");
    let same = std::fs::canonicalize(dir).ok() == std::fs::canonicalize(&default_dir).ok();
    if same {
        "make cluster-down".to_string()
    } else {
        format!(
            "make cluster-down E2E_CLUSTER_DIR={}",
            shell::word(&dir.display().to_string())
        )
    }
}
