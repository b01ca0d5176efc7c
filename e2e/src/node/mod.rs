//! The local cluster's node: containerd (Debian's, with its own root, state
//! and socket under the cluster folder), the standard CNI plugins on a
//! bridge whose gateway the API server listens on, kube-scheduler, a
//! kubelet with its own `system:node` credentials and a serving certificate
//! the API server verifies, kube-proxy in iptables mode, and CoreDNS in a
//! pod. One node runs on a machine at a time ([`Owner`]); [`host`] records
//! what it changes on the host and puts it back.

pub mod addons;
pub mod config;
pub mod host;
pub mod iptables;
mod owner;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use tokio::time::Instant;

pub use owner::Owner;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::flags;
use crate::kubeconfig;
use crate::process::Lifetime;

/// Paths of the node's files under the cluster folder.
#[derive(Debug, Clone)]
pub struct NodeFiles {
    /// The cluster folder.
    pub dir: PathBuf,
}

impl NodeFiles {
    /// The node's files in cluster folder `dir`.
    pub fn new(dir: &Path) -> Self {
        NodeFiles {
            dir: dir.to_path_buf(),
        }
    }

    /// containerd's socket.
    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd/containerd.sock")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The programs the node needs from the machine, with the Debian package
/// that has each.
pub const HOST_PROGRAMS: &[(&str, &str)] = &[
    ("containerd", "containerd"),
    ("containerd-shim-runc-v2", "containerd"),
    ("ctr", "containerd"),
    ("runc", "runc"),
    ("iptables", "iptables"),
    ("ip6tables", "iptables"),
    ("conntrack", "conntrack"),
    ("ip", "iproute2"),
];

/// An error naming the first program or CNI plugin the node lacks.
pub fn check_host() -> Result<()> {
    for (program, package) in HOST_PROGRAMS {
        if !crate::bins::on_path(program) {
            return Err(Error::Host {
                what: format!("{program} not found on PATH"),
                detail: format!(
                    "the node needs Debian's {package} package; run `make deps` (or apt-get install {package})"
                ),
            });
        }
    }
    for plugin in ["bridge", "host-local", "portmap", "loopback"] {
        if !Path::new(config::CNI_BIN_DIR).join(plugin).is_file() {
            return Err(Error::Host {
                what: format!("CNI plugin {plugin} not found in {}", config::CNI_BIN_DIR),
                detail:
                    "the node needs Debian's containernetworking-plugins package; run `make deps`"
                        .to_string(),
            });
        }
    }
    Ok(())
}

impl Cluster {
    /// Starts the node's components on a control plane that is up, imports
    /// `images` (OCI archives) into its containerd, and returns once the
    /// node is Ready, kube-proxy is healthy and cluster DNS answers.
    pub(crate) async fn start_node(
        &mut self,
        lifetime: Lifetime,
        deadline: Instant,
        images: &[PathBuf],
    ) -> Result<()> {
        let files = NodeFiles::new(self.dir());
        let bins = self.binaries().clone();
        let pki = self.pki().clone();
        let server = self.server().to_string();

        for (name, user, cert, key) in [
            (
                "kubelet",
                format!("system:node:{}", config::NODE_NAME),
                &pki.node.kubelet_client_cert,
                &pki.node.kubelet_client_key,
            ),
            (
                "kube-proxy",
                "system:kube-proxy".to_string(),
                &pki.node.kube_proxy_cert,
                &pki.node.kube_proxy_key,
            ),
            (
                "kube-scheduler",
                "system:kube-scheduler".to_string(),
                &pki.node.scheduler_cert,
                &pki.node.scheduler_key,
            ),
        ] {
            kubeconfig::write(
                &files.file(&format!("{name}.kubeconfig")),
                &server,
                &pki.ca_cert,
                &user,
                cert,
                key,
            )?;
        }

        let scheduler_args = flags::scheduler(&files.file("kube-scheduler.kubeconfig"));
        self.spawn(
            "kube-scheduler",
            &bins.kube_scheduler,
            &scheduler_args,
            lifetime,
        )?;

        // containerd, with the node's images.
        for sub in [
            "containerd/root",
            "containerd/state",
            "containerd/runc",
            "cni/net.d",
            "cni/ipam",
        ] {
            let path = files.dir.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(Error::io(format!("creating {}", path.display())))?;
        }
        let containerd_conf = files.file("containerd/config.toml");
        write_file(
            &containerd_conf,
            &config::containerd(&files.dir, &crate::images::pause_image()),
        )?;
        write_file(
            &files.dir.join("cni/net.d/10-weft-node.conflist"),
            &pretty(&config::cni_conflist(&files.dir))?,
        )?;
        let containerd_args = vec![
            "--config".to_string(),
            containerd_conf.display().to_string(),
            "--log-level".to_string(),
            "warn".to_string(),
        ];
        self.spawn(
            "containerd",
            Path::new("containerd"),
            &containerd_args,
            lifetime,
        )?;
        let socket = files.containerd_socket();
        self.wait_until("containerd answering on its socket", deadline, || {
            let socket = socket.clone();
            async move { ctr(&socket, &["version"]).await.is_ok() }
        })
        .await?;
        for archive in images {
            ctr(
                &socket,
                &["images", "import", &archive.display().to_string()],
            )
            .await
            .map_err(|detail| Error::Host {
                what: format!("importing {} into the node's containerd", archive.display()),
                detail,
            })?;
        }

        // The kubelet.
        let resolv = files.file("resolv.conf");
        write_file(&resolv, config::RESOLV_CONF)?;
        let kubelet_conf = files.file("kubelet-config.json");
        write_file(
            &kubelet_conf,
            &pretty(&config::kubelet(&config::KubeletPaths {
                client_ca: &pki.ca_cert,
                serving_cert: &pki.node.kubelet_serving_cert,
                serving_key: &pki.node.kubelet_serving_key,
                runtime_socket: &socket,
                resolv_conf: &resolv,
            }))?,
        )?;
        let kubelet_args = vec![
            format!("--config={}", kubelet_conf.display()),
            format!(
                "--kubeconfig={}",
                files.file("kubelet.kubeconfig").display()
            ),
            format!("--hostname-override={}", config::NODE_NAME),
            format!("--node-ip={}", config::GATEWAY),
            format!("--root-dir={}", files.file("kubelet").display()),
            format!("--cert-dir={}", files.file("kubelet/pki").display()),
            format!(
                "--volume-plugin-dir={}",
                files.file("kubelet-plugins").display()
            ),
            "--v=1".to_string(),
        ];
        self.spawn("kubelet", &bins.kubelet, &kubelet_args, lifetime)?;
        let nodes: kube::Api<Node> = kube::Api::all(self.client());
        self.wait_until("the node Ready", deadline, || {
            let nodes = nodes.clone();
            async move {
                nodes
                    .get_opt(config::NODE_NAME)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|n| node_ready(&n))
            }
        })
        .await?;

        // kube-proxy.
        let proxy_conf = files.file("kube-proxy-config.json");
        write_file(
            &proxy_conf,
            &pretty(&config::kube_proxy(&files.file("kube-proxy.kubeconfig")))?,
        )?;
        let proxy_args = vec![
            format!("--config={}", proxy_conf.display()),
            "--v=1".to_string(),
        ];
        self.spawn("kube-proxy", &bins.kube_proxy, &proxy_args, lifetime)?;
        self.wait_until("kube-proxy /healthz", deadline, || async {
            crate::ports::listening(config::PROXY_HEALTHZ_PORT)
        })
        .await?;

        // Cluster DNS.
        self.kubectl()
            .run_stdin(&["apply", "-f", "-"], &addons::manifests())
            .await?;
        let deployments: kube::Api<Deployment> =
            kube::Api::namespaced(self.client(), "kube-system");
        self.wait_until("CoreDNS Available", deadline, || {
            let deployments = deployments.clone();
            async move {
                deployments
                    .get_opt("coredns")
                    .await
                    .ok()
                    .flatten()
                    .and_then(|d| d.status)
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0)
                    >= 1
            }
        })
        .await?;
        Ok(())
    }
}

/// Puts the host back after the node of cluster folder `dir` ([`host::teardown`]
/// with its containerd socket and `record`) and releases the machine's node
/// if `dir` held it. Returns what could not be undone.
pub fn put_back(dir: &Path, record: Option<&host::HostRecord>) -> Vec<String> {
    let problems = host::teardown(dir, &NodeFiles::new(dir).containerd_socket(), record);
    Owner::release(dir);
    problems
}

/// Whether a Node reports `Ready=True`.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Runs `ctr` against the node's containerd, in the `k8s.io` namespace CRI
/// uses; an error is what it printed.
pub async fn ctr(socket: &Path, args: &[&str]) -> std::result::Result<String, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("ctr")
            .arg("--address")
            .arg(socket)
            .args(["--namespace", "k8s.io"])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("ctr {} timed out", args.join(" ")))?
    .map_err(|e| format!("running ctr: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn pretty(value: &serde_json::Value) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        what: "a node config".to_string(),
        source,
    })
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(Error::io(format!("creating {}", parent.display())))?;
    }
    std::fs::write(path, text).map_err(Error::io(format!("writing {}", path.display())))
}
