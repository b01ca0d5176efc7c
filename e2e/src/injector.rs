//! The real `weft-injector` binary as a local process next to a [`Cluster`]:
//! built with cargo, serving HTTPS on a loopback port with a certificate
//! from `weft-certs`, watching namespaces through the cluster's kubeconfig.
//! The API server reaches it by URL (see [`crate::webhook`]).
//!
//! A test's injector lives in a temporary folder and dies with the test; the
//! demo's ([`Injector::start_detached`]) keeps its files in the cluster folder
//! and outlives `weft-e2e demo`, recorded in the cluster state so `down`
//! stops it with the cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::process::{Component, Lifetime, log_tail};
use crate::state::InjectorState;
use crate::{http, ports, wait};

/// How long the injector gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Validity of the test CA and serving certificates.
const VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// A running `weft-injector`.
#[derive(Debug)]
pub struct Injector {
    component: Option<Component>,
    dir: InjectorDir,
    lifetime: Lifetime,
    /// Set by [`Injector::detach`]: the process is no longer ours to stop.
    detached: bool,
    bin: PathBuf,
    kubeconfig: PathBuf,
    https_port: u16,
    admin_port: u16,
    ca: CaPem,
    extra_args: Vec<String>,
}

/// Where an injector keeps its certificates and log.
#[derive(Debug)]
enum InjectorDir {
    Temp(TempDir),
    Fixed(PathBuf),
}

impl InjectorDir {
    fn path(&self) -> &Path {
        match self {
            InjectorDir::Temp(t) => t.path(),
            InjectorDir::Fixed(p) => p,
        }
    }
}

/// The webhook CA, kept as PEM so new serving certificates can be issued.
#[derive(Clone)]
struct CaPem {
    cert: String,
    key: String,
}

impl std::fmt::Debug for CaPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaPem").finish_non_exhaustive()
    }
}

impl Injector {
    /// Builds `weft-injector` if needed, issues a CA and a serving
    /// certificate for 127.0.0.1, and starts it against `cluster` with
    /// `extra_args` after the harness's flags. Returns once `/readyz` (the
    /// namespace cache synced, the certificate loaded) answers 200.
    pub async fn start(cluster: &Cluster, extra_args: &[&str]) -> Result<Self> {
        Self::start_with(cluster, Profile::Debug, extra_args).await
    }

    /// [`Injector::start`] with the binary built in `profile` (a benchmark
    /// measures the optimised one).
    pub async fn start_with(
        cluster: &Cluster,
        profile: Profile,
        extra_args: &[&str],
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("weft-e2e-injector-")
            .tempdir()
            .map_err(Error::io("creating the injector folder"))?;
        Self::launch(
            cluster,
            profile,
            InjectorDir::Temp(dir),
            Lifetime::Test,
            extra_args,
        )
        .await
    }

    /// Starts an injector that outlives this process (`weft-e2e demo`),
    /// with its certificates and log in `dir` (created if needed). Call
    /// [`Injector::detach`] once it is recorded, or dropping it stops it.
    pub async fn start_detached(
        cluster: &Cluster,
        dir: &Path,
        profile: Profile,
        extra_args: &[&str],
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        Self::launch(
            cluster,
            profile,
            InjectorDir::Fixed(dir.to_path_buf()),
            Lifetime::Detached,
            extra_args,
        )
        .await
    }

    async fn launch(
        cluster: &Cluster,
        profile: Profile,
        dir: InjectorDir,
        lifetime: Lifetime,
        extra_args: &[&str],
    ) -> Result<Self> {
        let bin = tokio::task::spawn_blocking(move || binary(profile))
            .await
            .map_err(|e| Error::BuildBinary {
                bin: "weft-injector",
                reason: e.to_string(),
            })??;
        let ca = weft_certs::Ca::generate("weft-e2e-webhook-ca", VALIDITY)?;
        let ca = CaPem {
            cert: ca.cert_pem().to_string(),
            key: ca.key_pem().to_string(),
        };
        let ports = ports::free_ports(2)?;
        let mut injector = Injector {
            component: None,
            dir,
            lifetime,
            detached: false,
            bin,
            kubeconfig: cluster.kubeconfig().to_path_buf(),
            https_port: ports[0],
            admin_port: ports[1],
            ca,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        injector.rotate_certificate()?;
        injector.restart().await?;
        Ok(injector)
    }

    /// The URL the webhook configuration points at.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/mutate", self.https_port)
    }

    /// The CA (PEM) that signed the serving certificate: the `caBundle`.
    pub fn ca_pem(&self) -> &str {
        &self.ca.cert
    }

    /// The HTTPS port.
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// The plain-HTTP admin port (`/metrics`, `/readyz`).
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// The serving certificate file the injector watches.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    /// The serving key file the injector watches.
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }

    /// The injector's log.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("weft-injector.log")
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log(), lines)
    }

    /// Issues a new serving certificate from the same CA and replaces the
    /// files on disk the way a kubelet updates a mounted Secret: each file
    /// is written aside and renamed into place, so the injector never reads
    /// half a file (it may briefly see a new certificate with the old key,
    /// which it must survive).
    pub fn rotate_certificate(&self) -> Result<()> {
        let ca = weft_certs::Ca::from_pem(&self.ca.cert, &self.ca.key)?;
        let serving = ca.issue_serving(
            &["127.0.0.1".to_string(), "localhost".to_string()],
            VALIDITY,
        )?;
        replace(&self.cert_file(), &serving.cert_pem)?;
        replace(&self.key_file(), &serving.key_pem)
    }

    /// Stops the injector (SIGTERM, then SIGKILL): the webhook is down.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.component.take() {
            c.stop(Duration::from_secs(5));
        }
    }

    /// Starts the injector again (after [`Injector::stop`]) on the same
    /// ports and certificates, and waits until it is ready.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        let mut args = vec![
            format!("--listen=127.0.0.1:{}", self.https_port),
            format!("--admin-listen=127.0.0.1:{}", self.admin_port),
            format!("--tls-cert-file={}", self.cert_file().display()),
            format!("--tls-key-file={}", self.key_file().display()),
            format!("--kubeconfig={}", self.kubeconfig.display()),
            "--log=info".to_string(),
        ];
        args.extend(self.extra_args.iter().cloned());
        let log = self.log();
        self.component = Some(Component::spawn(
            "weft-injector",
            &self.bin,
            &args,
            &log,
            self.lifetime,
        )?);
        let admin = self.admin_port;
        let started = wait::eventually("weft-injector /readyz", READY_TIMEOUT, || async move {
            match http::get(admin, "/readyz", Duration::from_secs(2)).await {
                Ok(r) if r.status == 200 => Ok(()),
                Ok(r) => Err(format!("HTTP {}: {}", r.status, r.body.trim())),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        if let Err(e) = started {
            if let Some(c) = self.component.as_mut() {
                c.check_running()?;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.component.as_ref().map(Component::pid)
    }

    /// Leaves the injector running after this process exits and returns
    /// what `down` needs to stop it. `None` (and the injector is stopped)
    /// when it is not running or was not started with
    /// [`Injector::start_detached`], whose process would die with this one.
    pub fn detach(mut self) -> Option<InjectorState> {
        if self.lifetime != Lifetime::Detached {
            return None;
        }
        let component = self.component.as_ref()?;
        self.detached = true;
        Some(InjectorState {
            pid: component.pid(),
            log: component.log().to_path_buf(),
            url: self.url(),
            ports: vec![self.https_port, self.admin_port],
        })
    }

    /// The injector's `/metrics` text.
    pub async fn metrics(&self) -> Result<String> {
        let r = http::get(self.admin_port, "/metrics", Duration::from_secs(5)).await?;
        Ok(r.body)
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "\n===== weft-e2e: weft-injector log (last 40 lines) =====\n{}",
                self.log_tail(40)
            );
        }
        self.stop();
    }
}

pub use crate::cargo_bin::Profile;

/// The `weft-injector` binary: `$WEFT_INJECTOR_BIN`, else built once per
/// process with `cargo build -p weft-injector`.
pub fn binary(profile: Profile) -> Result<PathBuf> {
    crate::cargo_bin::WEFT_INJECTOR.path(profile)
}

fn replace(path: &Path, contents: &str) -> Result<()> {
    let aside = path.with_extension("new");
    std::fs::write(&aside, contents).map_err(Error::io(format!("writing {}", aside.display())))?;
    std::fs::rename(&aside, path).map_err(Error::io(format!("replacing {}", path.display())))
}
