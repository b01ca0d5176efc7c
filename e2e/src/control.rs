//! The real `weft-control` binary (identity and destination) as a local
//! process next to a [`Cluster`], the way [`crate::Injector`] runs the
//! injector: on loopback ports of its own, with the issuer files of a
//! [`MeshPki`], and authenticated to the API server as its ServiceAccount
//! with exactly the RBAC that `weft install` renders.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;
use weft_webhook_config::{IdentityCerts, RenderOptions, Tls};

use crate::cargo_bin::Profile;
use crate::cargo_bin::WEFT_CONTROL;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::mesh_pki::MeshPki;
use crate::process::{Component, Lifetime, log_tail};
use crate::{http, ports, wait};

/// How long weft-control gets to become ready (its caches list the cluster).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long its ServiceAccount token lasts: longer than any suite.
const TOKEN_DURATION: &str = "4h";

/// How to run weft-control.
#[derive(Debug, Clone)]
pub struct ControlOptions {
    /// `--identity-certificate-lifetime` (`24h` when `None`; at least `1m`).
    pub certificate_lifetime: Option<String>,
    /// The cargo profile of the binary.
    pub profile: Profile,
    /// More flags, after the harness's own.
    pub extra_args: Vec<String>,
}

impl Default for ControlOptions {
    fn default() -> Self {
        ControlOptions {
            certificate_lifetime: None,
            profile: Profile::Debug,
            extra_args: Vec::new(),
        }
    }
}

/// A running `weft-control`; stopped when dropped.
#[derive(Debug)]
pub struct Control {
    component: Option<Component>,
    dir: TempDir,
    bin: PathBuf,
    args: Vec<String>,
    identity_port: u16,
    destination_port: u16,
    admin_port: u16,
}

impl Control {
    /// Builds `weft-control` if needed, grants its ServiceAccount the
    /// rendered RBAC, starts it with `pki`'s files and waits for `/ready`
    /// (issuer loaded, destination's caches synced).
    pub async fn start(cluster: &Cluster, pki: &MeshPki, options: ControlOptions) -> Result<Self> {
        let profile = options.profile;
        let bin = tokio::task::spawn_blocking(move || WEFT_CONTROL.path(profile))
            .await
            .map_err(|e| Error::BuildBinary {
                bin: WEFT_CONTROL.bin,
                reason: e.to_string(),
            })??;
        let dir = tempfile::Builder::new()
            .prefix("weft-e2e-control-")
            .tempdir()
            .map_err(Error::io("creating the weft-control folder"))?;
        let kubeconfig =
            least_privilege_kubeconfig(cluster, pki.identity_certs()?, dir.path()).await?;
        let ports = ports::free_ports(3)?;
        let at = |port: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut args = vec![
            format!("--identity-listen={}", at(ports[0])),
            format!("--destination-listen={}", at(ports[1])),
            format!("--admin-listen={}", at(ports[2])),
            format!("--issuer-cert-file={}", pki.issuer_cert_file().display()),
            format!("--issuer-key-file={}", pki.issuer_key_file().display()),
            format!("--trust-anchors-file={}", pki.bundle_file().display()),
            format!("--kubeconfig={}", kubeconfig.display()),
            "--log=info".to_owned(),
        ];
        if let Some(lifetime) = &options.certificate_lifetime {
            args.push(format!("--identity-certificate-lifetime={lifetime}"));
        }
        args.extend(options.extra_args);
        let mut control = Control {
            component: None,
            dir,
            bin,
            args,
            identity_port: ports[0],
            destination_port: ports[1],
            admin_port: ports[2],
        };
        control.restart().await?;
        Ok(control)
    }

    /// Identity's HTTPS address (`POST /v1/certify`).
    pub fn identity_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.identity_port))
    }

    /// Destination's HTTPS address (`GET /v1/resolve`, `/v1/watch`).
    pub fn destination_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.destination_port))
    }

    /// The plain-HTTP admin port (`/metrics`, `/ready`, `/live`).
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.component.as_ref().map(Component::pid)
    }

    /// Its log (stdout and stderr).
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("weft-control.log")
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log(), lines)
    }

    /// The admin port's `/metrics` text.
    pub async fn metrics(&self) -> Result<String> {
        let r = http::get(self.admin_port, "/metrics", Duration::from_secs(5)).await?;
        Ok(r.body)
    }

    /// Kills it outright (SIGTERM and at once SIGKILL: no time to drain),
    /// as a crashed or evicted control plane; [`Control::restart`] brings it
    /// back.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.component.take() {
            c.stop(Duration::ZERO);
        }
    }

    /// Starts it (again) on the same ports and files, and waits until
    /// `/ready` answers 200.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        let log = self.log();
        self.component = Some(Component::spawn(
            "weft-control",
            &self.bin,
            &self.args,
            &log,
            Lifetime::Test,
        )?);
        let admin = self.admin_port;
        let ready = wait::eventually("weft-control /ready", READY_TIMEOUT, || async move {
            match http::get(admin, "/ready", Duration::from_secs(2)).await {
                Ok(r) if r.status == 200 => Ok(()),
                Ok(r) => Err(format!("HTTP {}: {}", r.status, r.body.trim())),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        if let Err(e) = ready {
            if let Some(c) = self.component.as_mut() {
                c.check_running()?;
            }
            return Err(e);
        }
        Ok(())
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\n===== weft-e2e: weft-control log (last 40 lines) =====\n{}",
                self.log_tail(40)
            );
        }
        if let Some(mut c) = self.component.take() {
            c.stop(Duration::from_secs(5));
        }
    }
}

/// Applies weft-control's namespace, ServiceAccount and RBAC as `weft
/// install` renders them, and writes (in `dir`) a kubeconfig that
/// authenticates with a token of that ServiceAccount: the process then has
/// exactly the rights the manifests grant. `identity` is the material the
/// render needs (the manifests are the same whatever it holds).
pub async fn least_privilege_kubeconfig(
    cluster: &Cluster,
    identity: IdentityCerts,
    dir: &Path,
) -> Result<PathBuf> {
    let mut options = RenderOptions::new(Tls::CertManager);
    options.identity = Some(identity);
    let namespace = options.namespace.clone();
    let control = weft_webhook_config::CONTROL_NAME;
    let wanted = [
        ("Namespace", namespace.as_str()),
        ("ServiceAccount", control),
        ("ClusterRole", control),
        ("ClusterRoleBinding", control),
    ];
    let mut manifest = String::new();
    let mut found = 0;
    for document in weft_webhook_config::render_documents(&options)? {
        let kind = document["kind"].as_str().unwrap_or_default();
        let name = document["metadata"]["name"].as_str().unwrap_or_default();
        if wanted.contains(&(kind, name)) {
            found += 1;
            manifest.push_str("---\n");
            manifest.push_str(&serde_yaml::to_string(&document)?);
        }
    }
    if found != wanted.len() {
        return Err(Error::MissingDocument(
            "weft-control namespace, ServiceAccount or RBAC",
        ));
    }
    let kubectl = cluster.kubectl();
    kubectl.run_stdin(&["apply", "-f", "-"], &manifest).await?;
    let token = kubectl
        .run(&[
            "create",
            "token",
            control,
            "-n",
            &namespace,
            "--duration",
            TOKEN_DURATION,
        ])
        .await?
        .stdout
        .trim()
        .to_owned();
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {
            "server": cluster.server(),
            "certificate-authority": cluster.ca_cert(),
        }}],
        "users": [{"name": control, "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": control}}],
        "current-context": "e2e",
    });
    let path = dir.join("weft-control.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&config)?)
        .map_err(Error::io(format!("writing {}", path.display())))?;
    Ok(path)
}
