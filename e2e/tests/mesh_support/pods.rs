//! The rig's side of the mesh suite: the pod that stands for weft-control's
//! Services, and meshed pods running the real `weft-proxy init` and
//! `weft-proxy run` (as UID 2102) with the arguments and environment the
//! injector writes ([`super::injected`]).
//!
//! weft-control runs on the host's loopback, next to the API server it
//! needs; the rig's pods have no route to the host. A "control" pod stands
//! in for its two Services: its ports 8080 and 8086 are forwarded, in user
//! space, to identity's and destination's loopback ports
//! ([`weft_testrig::HostForward`]), and each meshed pod resolves
//! `weft-identity.weft.svc.cluster.local` and
//! `weft-destination.weft.svc.cluster.local` to that pod's address
//! ([`weft_testrig::Pod::set_hosts`]), as cluster DNS would resolve the
//! Services. Nothing of the host is routed to the rig or back.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use weft_e2e::Control;
use weft_testrig::{HostForward, Pod, PodProcess};

use super::app::{App, connect_from};
use super::injected::{PodFacts, injected};
use super::metrics::metric;
use super::{APP_PORT, DESTINATION_NAME, IDENTITY_NAME, TestResult};

/// The proxy's user, as the injector's `runAsUser`.
pub const PROXY_UID: u32 = 2102;
/// The proxy's admin port.
pub const ADMIN_PORT: u16 = 4191;
/// identity's Service port.
pub const IDENTITY_PORT: u16 = 8080;
/// destination's Service port.
pub const DESTINATION_PORT: u16 = 8086;

/// The pod standing for weft-control's Services.
pub struct ControlDoor<'rig> {
    /// The pod; its address is the Services' address.
    pub pod: Pod<'rig>,
    forwards: Vec<HostForward>,
}

impl<'rig> ControlDoor<'rig> {
    /// Forwards `pod`'s ports 8080 and 8086 to `control`.
    pub fn open(pod: Pod<'rig>, control: &Control) -> TestResult<Self> {
        let forwards = vec![
            pod.forward_to_host(IDENTITY_PORT, control.identity_addr())?,
            pod.forward_to_host(DESTINATION_PORT, control.destination_addr())?,
        ];
        Ok(ControlDoor { pod, forwards })
    }

    /// The Services' address.
    pub fn ip(&self) -> Ipv4Addr {
        self.pod.ip()
    }

    /// Stops forwarding and cuts open connections: the Services have no
    /// endpoint any more, and connecting to them is refused.
    pub fn close(&mut self) {
        self.forwards.clear();
    }

    /// How many connections the proxies opened to the control plane.
    pub fn connections(&self) -> u64 {
        self.forwards.iter().map(HostForward::accepted).sum()
    }
}

/// Who a meshed pod is.
pub struct Identity<'a> {
    /// Its ServiceAccount, as the downward API gives it to the proxy.
    pub service_account: &'a str,
    /// Its Kubernetes pod name.
    pub pod_name: &'a str,
    /// The token in its token file (the kubelet's projected token).
    pub token: &'a str,
}

/// A meshed pod: the iptables redirect, the proxy, and an application on
/// [`APP_PORT`]. The proxy is killed when this is dropped; a failing test
/// prints the end of its log.
pub struct Meshed<'rig> {
    /// The rig pod.
    pub pod: Pod<'rig>,
    /// The application.
    pub app: App,
    proxy: PodProcess,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl<'rig> Meshed<'rig> {
    /// Runs `weft-proxy init` in `pod`, starts its application, writes its
    /// token and starts `weft-proxy run` as UID 2102; does not wait for
    /// `/ready`.
    pub fn start(
        pod: Pod<'rig>,
        proxy_bin: &Path,
        door: &ControlDoor<'_>,
        anchors_pem: &str,
        who: &Identity<'_>,
    ) -> TestResult<Self> {
        pod.set_hosts(&[
            (IpAddr::V4(door.ip()), IDENTITY_NAME),
            (IpAddr::V4(door.ip()), DESTINATION_NAME),
        ])?;
        // The token volume is readable by the proxy's user; the key the
        // proxy makes never touches this folder.
        let dir = tempfile::Builder::new()
            .prefix(&format!("weft-e2e-{}-", pod.name()))
            .tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, who.token)?;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644))?;
        let facts = PodFacts {
            name: who.pod_name,
            service_account: who.service_account,
            ip: pod.ip(),
        };
        let injected = injected(&facts, anchors_pem, &token_file)?;

        let init = pod
            .command(&proxy_bin.to_string_lossy())
            .args(&injected.init_args)
            .output()?;
        if !init.status.success() {
            return Err(format!(
                "weft-proxy init in {} failed ({}): {}",
                pod.name(),
                init.status,
                String::from_utf8_lossy(&init.stderr)
            )
            .into());
        }
        let app = App::start(&pod, APP_PORT)?;
        let log = dir.path().join("weft-proxy.log");
        let out = std::fs::File::create(&log)?;

        let mut cmd = pod.command_as(PROXY_UID, &proxy_bin.to_string_lossy());
        cmd.arg("run")
            .env_clear()
            .envs(injected.env)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let proxy = pod.spawn(cmd)?;
        Ok(Meshed {
            pod,
            app,
            proxy,
            log,
            _dir: dir,
        })
    }

    /// The pod's address and application port.
    pub fn app_addr(&self) -> SocketAddr {
        SocketAddr::from((self.pod.ip(), APP_PORT))
    }

    /// `GET path` on the proxy's admin port, from inside the pod.
    pub async fn admin(&self, path: &str) -> TestResult<(u16, String)> {
        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, ADMIN_PORT));
        let mut client = super::app::Client::connect(&self.pod, to).await?;
        let (status, body) = client.send("GET", path, "").await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// The proxy's `/metrics` text.
    pub async fn metrics(&self) -> TestResult<String> {
        Ok(self.admin("/metrics").await?.1)
    }

    /// A value of the proxy's `/metrics` (summed over matching series).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> TestResult<f64> {
        Ok(metric(&self.metrics().await?, name, labels))
    }

    /// Waits until `/ready` answers 200 (the first certificate installed).
    pub async fn wait_ready(&mut self, limit: Duration) -> TestResult {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.proxy.try_status()? {
                return Err(format!(
                    "the proxy of {} exited ({status}):\n{}",
                    self.pod.name(),
                    self.log_tail(30)
                )
                .into());
            }
            if let Ok((200, _)) = self.admin("/ready").await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "the proxy of {} was not ready within {limit:?}:\n{}",
                    self.pod.name(),
                    self.log_tail(30)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `/metrics` until `check` accepts it, for up to 30 s (responses
    /// are counted a moment after the client has them; certification
    /// retries back off).
    pub async fn wait_metrics(
        &self,
        what: &str,
        check: impl Fn(&str) -> bool,
    ) -> TestResult<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            // A proxy that has just started may not listen yet.
            let last = match self.metrics().await {
                Ok(text) if check(&text) => return Ok(text),
                Ok(text) => text,
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() > deadline {
                return Err(
                    format!("{}: never {what}; last scrape:\n{last}", self.pod.name()).into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last `lines` lines of the proxy's log.
    pub fn log_tail(&self, lines: usize) -> String {
        weft_e2e::process::log_tail(&self.log, lines)
    }
}

impl Drop for Meshed<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\n===== weft-proxy of {} (last 30 lines) =====\n{}",
                self.pod.name(),
                self.log_tail(30)
            );
        }
    }
}

/// Whether a TCP connection from `pod` to `to` is refused (or times out).
pub async fn unreachable(pod: &Pod<'_>, to: SocketAddr) -> bool {
    connect_from(pod, to).await.is_err()
}
