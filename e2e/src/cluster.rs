//! A local Kubernetes control plane on loopback, started the way envtest
//! does it but with the controllers a workload needs: etcd, kube-apiserver
//! (RBAC + Node authorization, service-account issuer, audit log) and
//! kube-controller-manager (deployments, replica sets, garbage collection,
//! namespaces, service accounts). Dropping a [`Cluster`] stops everything;
//! when the drop happens during a panic, the components' log tails are
//! printed and the cluster folder is kept for a look.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::bins::Binaries;
use crate::error::{Error, Result};
use crate::flags;
use crate::kubectl::Kubectl;
use crate::pki::{self, PkiFiles};
use crate::ports;
use crate::process::{Component, Lifetime, log_tail};
use crate::{audit, kubeconfig, node};

/// How long a component gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often readiness is polled while the cluster starts.
const POLL: Duration = Duration::from_millis(100);

/// How to start a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The folder for certificates, logs and etcd data; a fresh temporary
    /// folder when `None`.
    pub dir: Option<PathBuf>,
    /// Whether the components die with the starting thread or outlive it.
    pub lifetime: Lifetime,
    /// How long start-up may take in all (a cold start on a busy 2-core
    /// machine takes tens of seconds).
    pub start_timeout: Duration,
    /// Extra `kube-apiserver` flags, appended after the harness's own.
    pub extra_apiserver_args: Vec<String>,
    /// A node to run pods on, or none (pods stay `Pending`, which is all an
    /// admission webhook's tests need, and many clusters can run at once).
    pub node: Option<NodeOptions>,
}

/// How to start the cluster's node.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// OCI image archives to import into the node's containerd before the
    /// kubelet starts (the pause image at least; see [`crate::images`]).
    pub images: Vec<PathBuf>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            dir: None,
            lifetime: Lifetime::Test,
            start_timeout: Duration::from_secs(180),
            extra_apiserver_args: Vec::new(),
            node: None,
        }
    }
}

/// Where a cluster keeps its files.
#[derive(Debug)]
enum ClusterDir {
    Temp(TempDir),
    Fixed(PathBuf),
}

impl ClusterDir {
    fn path(&self) -> &Path {
        match self {
            ClusterDir::Temp(t) => t.path(),
            ClusterDir::Fixed(p) => p,
        }
    }
}

/// A running local control plane.
pub struct Cluster {
    dir: ClusterDir,
    bins: Binaries,
    pki: PkiFiles,
    components: Vec<Component>,
    ports: Vec<u16>,
    server: String,
    kubeconfig: PathBuf,
    client: kube::Client,
    detached: bool,
    node: bool,
}

impl Cluster {
    /// Builds the binaries if needed and starts a cluster in a temporary
    /// folder, bound to this thread's lifetime.
    pub async fn start() -> Result<Self> {
        Self::start_with(ClusterOptions::default()).await
    }

    /// Starts a cluster with `options`; returns once the API server is ready
    /// and the controller manager has created the `default` service account
    /// (without which no pod can be created).
    pub async fn start_with(options: ClusterOptions) -> Result<Self> {
        let bins = tokio::task::spawn_blocking(Binaries::ensure)
            .await
            .map_err(|e| Error::Io {
                context: "building the e2e binaries".to_string(),
                source: std::io::Error::other(e),
            })??;
        let dir = match &options.dir {
            Some(path) => {
                std::fs::create_dir_all(path)
                    .map_err(Error::io(format!("creating {}", path.display())))?;
                let path = std::fs::canonicalize(path)
                    .map_err(Error::io(format!("resolving {}", path.display())))?;
                ClusterDir::Fixed(path)
            }
            None => ClusterDir::Temp(
                tempfile::Builder::new()
                    .prefix("weft-e2e-")
                    .tempdir()
                    .map_err(Error::io("creating a temporary cluster folder"))?,
            ),
        };
        let root = dir.path().to_path_buf();
        let pki = pki::generate(&root.join("pki"))?;
        if options.node.is_some() {
            // Before anything listens: the node is the machine's, and the
            // API server binds to the bridge's gateway.
            node::check_host()?;
            node::Owner::claim(&root, std::process::id())?;
            node::host::HostRecord::take().save_once(&root)?;
            node::host::create_bridge()?;
        }
        let address = match options.node {
            Some(_) => node::config::GATEWAY,
            None => "127.0.0.1",
        };
        let ports = ports::free_ports(3)?;
        let (etcd_port, etcd_peer_port, apiserver_port) = (ports[0], ports[1], ports[2]);
        let server = format!("https://{address}:{apiserver_port}");
        let kubeconfig = root.join("kubeconfig");
        kubeconfig::write(
            &kubeconfig,
            &server,
            &pki.ca_cert,
            "weft-e2e-admin",
            &pki.admin_cert,
            &pki.admin_key,
        )?;
        // Building a client only reads the files; it connects on first use.
        let client = client_from(&kubeconfig).await?;

        let mut cluster = Cluster {
            dir,
            bins,
            pki,
            components: Vec::new(),
            ports,
            server,
            kubeconfig,
            client: client.clone(),
            detached: false,
            node: options.node.is_some(),
        };
        let deadline = Instant::now() + options.start_timeout;

        let etcd_args = flags::etcd(&root, etcd_port, etcd_peer_port);
        let etcd = cluster.bins.etcd.clone();
        cluster.spawn("etcd", &etcd, &etcd_args, options.lifetime)?;
        cluster
            .wait_until("etcd accepting connections", deadline, || {
                let up = ports::listening(etcd_port);
                async move { up }
            })
            .await?;

        let policy = root.join("audit-policy.yaml");
        std::fs::write(&policy, audit::POLICY)
            .map_err(Error::io(format!("writing {}", policy.display())))?;
        let mut apiserver_args = flags::apiserver(
            &root,
            &cluster.pki,
            etcd_port,
            apiserver_port,
            &policy,
            &cluster.audit_log(),
            match cluster.node {
                true => flags::Listen::Node(&cluster.pki.node),
                false => flags::Listen::Loopback,
            },
        );
        apiserver_args.extend(options.extra_apiserver_args.iter().cloned());
        let apiserver = cluster.bins.kube_apiserver.clone();
        cluster.spawn(
            "kube-apiserver",
            &apiserver,
            &apiserver_args,
            options.lifetime,
        )?;
        cluster
            .wait_until("kube-apiserver /readyz", deadline, || {
                let client = client.clone();
                async move { readyz(&client).await }
            })
            .await?;

        let kcm_kubeconfig = root.join("controller-manager.kubeconfig");
        kubeconfig::write(
            &kcm_kubeconfig,
            &cluster.server,
            &cluster.pki.ca_cert,
            "system:kube-controller-manager",
            &cluster.pki.controller_manager_cert,
            &cluster.pki.controller_manager_key,
        )?;
        let kcm_args = flags::controller_manager(&kcm_kubeconfig, &cluster.pki);
        let kcm = cluster.bins.kube_controller_manager.clone();
        cluster.spawn("kube-controller-manager", &kcm, &kcm_args, options.lifetime)?;
        let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(client, "default");
        cluster
            .wait_until(
                "kube-controller-manager (the default service account)",
                deadline,
                || {
                    let accounts = accounts.clone();
                    async move { matches!(accounts.get_opt("default").await, Ok(Some(_))) }
                },
            )
            .await?;
        if let Some(node) = &options.node {
            cluster
                .start_node(options.lifetime, deadline, &node.images)
                .await?;
        }
        Ok(cluster)
    }

    /// Whether this cluster has a node.
    pub fn has_node(&self) -> bool {
        self.node
    }

    /// The cluster's certificates.
    pub fn pki(&self) -> &PkiFiles {
        &self.pki
    }

    /// Stops every component and, for a node cluster, puts the host back;
    /// returns what could not be undone (empty is a clean stop).
    pub fn stop_checked(mut self) -> Vec<String> {
        self.stop_components()
    }

    /// The folder with the certificates, kubeconfig, logs and etcd data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The API server's URL (`https://127.0.0.1:PORT`).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The cluster CA certificate (PEM file).
    pub fn ca_cert(&self) -> &Path {
        &self.pki.ca_cert
    }

    /// The binaries this cluster runs.
    pub fn binaries(&self) -> &Binaries {
        &self.bins
    }

    /// An admin client.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The built kubectl, pointed at this cluster as admin.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(&self.bins.kubectl, &self.kubeconfig)
    }

    /// The API server's audit log (JSON lines, see [`audit::POLICY`]).
    pub fn audit_log(&self) -> PathBuf {
        self.dir().join("audit.log")
    }

    /// Process ids of the running components, in start order.
    pub fn pids(&self) -> Vec<u32> {
        self.components.iter().map(Component::pid).collect()
    }

    /// The loopback ports the cluster listens on (etcd client and peer, API
    /// server).
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Each component's name and log file.
    pub fn logs(&self) -> Vec<(&'static str, PathBuf)> {
        self.components
            .iter()
            .map(|c| (c.name(), c.log().to_path_buf()))
            .collect()
    }

    /// The last `lines` lines of every component's log, labelled.
    pub fn log_tails(&self, lines: usize) -> String {
        self.components
            .iter()
            .map(|c| {
                format!(
                    "----- {} ({}) -----\n{}\n",
                    c.name(),
                    c.log().display(),
                    log_tail(c.log(), lines)
                )
            })
            .collect()
    }

    /// An error if any component has exited.
    pub fn check_running(&mut self) -> Result<()> {
        self.components
            .iter_mut()
            .try_for_each(Component::check_running)
    }

    /// Stops every component now (the same as dropping the cluster).
    pub fn stop(mut self) {
        for problem in self.stop_components() {
            eprintln!("weft-e2e: {problem}");
        }
    }

    /// Leaves the components running after this process exits and returns
    /// what `down` needs to stop them. Only for [`Lifetime::Detached`].
    pub(crate) fn detach(mut self) -> crate::state::ClusterState {
        self.detached = true;
        crate::state::ClusterState {
            dir: self.dir().to_path_buf(),
            server: self.server.clone(),
            kubeconfig: self.kubeconfig.clone(),
            components: self
                .components
                .iter()
                .map(|c| crate::state::ComponentState {
                    name: c.name().to_string(),
                    pid: c.pid(),
                    log: c.log().to_path_buf(),
                })
                .collect(),
            ports: self.ports.clone(),
            injector: None,
            node: self.node,
        }
    }

    /// A handle on the detached cluster `state` describes (started by
    /// `weft-e2e up` or `demo`), for the same API calls, kubectl and
    /// injector set-up as a cluster started here. It holds no processes:
    /// dropping it leaves the cluster running, and `down` stops it.
    pub async fn attach(state: &crate::state::ClusterState) -> Result<Self> {
        let client = client_from(&state.kubeconfig).await?;
        if !readyz(&client).await {
            return Err(Error::NotRunning(state.dir.clone()));
        }
        Ok(Cluster {
            dir: ClusterDir::Fixed(state.dir.clone()),
            bins: Binaries::in_dir(&Binaries::default_dir()),
            pki: PkiFiles::in_dir(&state.dir.join("pki")),
            components: Vec::new(),
            ports: state.ports.clone(),
            server: state.server.clone(),
            kubeconfig: state.kubeconfig.clone(),
            client,
            detached: true,
            node: state.node,
        })
    }

    pub(crate) fn spawn(
        &mut self,
        name: &'static str,
        program: &Path,
        args: &[String],
        lifetime: Lifetime,
    ) -> Result<()> {
        let log = self.dir().join(format!("{name}.log"));
        let component = Component::spawn(name, program, args, &log, lifetime)?;
        self.components.push(component);
        Ok(())
    }

    /// Polls `ready` until it holds, failing early when a component exits
    /// and with the logs' tails when `deadline` passes.
    pub(crate) async fn wait_until<F, Fut>(
        &mut self,
        what: &str,
        deadline: Instant,
        mut ready: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        loop {
            self.check_running()?;
            if ready().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    after: started.elapsed(),
                    detail: format!("last lines of the logs:\n{}", self.log_tails(20)),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn stop_components(&mut self) -> Vec<String> {
        // Reverse start order: the node before the controllers before the
        // API server before its storage, so none of them logs a storm of
        // connection errors.
        for component in self.components.iter_mut().rev() {
            component.stop(STOP_GRACE);
        }
        let was_running = !self.components.is_empty();
        self.components.clear();
        if !(self.node && was_running) {
            return Vec::new();
        }
        let dir = self.dir().to_path_buf();
        let record = node::host::HostRecord::load(&dir).ok().flatten();
        node::put_back(&dir, record.as_ref())
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir())
            .field("server", &self.server)
            .field("pids", &self.pids())
            .finish_non_exhaustive()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "\n===== weft-e2e: the test failed; component logs (last 40 lines) =====\n{}",
                self.log_tails(40)
            );
            if let ClusterDir::Temp(t) = &mut self.dir {
                // Keep everything for a post-mortem; the processes still go.
                t.disable_cleanup(true);
                eprintln!("weft-e2e: cluster folder kept at {}", t.path().display());
            }
        }
        for problem in self.stop_components() {
            eprintln!("weft-e2e: {problem}");
        }
    }
}

/// A client for the cluster described by `kubeconfig`.
pub async fn client_from(kubeconfig: &Path) -> Result<kube::Client> {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

/// Whether the API server answers `/readyz` with `ok`.
async fn readyz(client: &kube::Client) -> bool {
    let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    matches!(client.request_text(request).await, Ok(body) if body.trim() == "ok")
}
