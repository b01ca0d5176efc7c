//! Starting the proxies of a path, fresh for every run, at a [`Place`]: on
//! the host's loopback (weft with a fixed target), or in a rig pod (weft as
//! the injector runs it, behind the iptables redirect). HAProxy and Envoy
//! are one-hop reverse proxies in both.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use weft_testrig::{Pod, PodProcess};

use super::load::Proto;
use super::paths::{Path, Variant};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The proxy's UID, as the injector sets it (its own traffic is not
/// redirected).
const PROXY_UID: u32 = 2102;

/// Where processes run: the host, or a pod of the rig.
#[derive(Clone, Copy)]
pub enum Place<'a, 'rig> {
    Host,
    Pod(&'a Pod<'rig>),
}

impl Place<'_, '_> {
    fn command(self, program: &FsPath) -> Result<Command, Error> {
        Ok(match self {
            Self::Host => Command::new(program),
            Self::Pod(pod) => pod.command(program.to_str().ok_or("non-UTF-8 path")?),
        })
    }

    /// `program` as the proxy user in a pod (on the host: as is).
    fn command_as_proxy(self, program: &FsPath) -> Result<Command, Error> {
        Ok(match self {
            Self::Host => Command::new(program),
            Self::Pod(pod) => pod.command_as(PROXY_UID, program.to_str().ok_or("non-UTF-8 path")?),
        })
    }

    fn spawn(self, mut cmd: Command) -> Result<Proc, Error> {
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        Ok(match self {
            Self::Host => Proc::Host(cmd.spawn()?),
            Self::Pod(pod) => Proc::Pod(pod.spawn(cmd)?),
        })
    }
}

/// A proxy process, killed on drop.
pub enum Proc {
    Host(Child),
    Pod(PodProcess),
}

impl Proc {
    pub fn pid(&self) -> u32 {
        match self {
            Self::Host(child) => child.id(),
            Self::Pod(process) => process.pid(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A pod process kills itself on drop.
        if let Self::Host(child) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A started path: where to send load, and its proxy processes.
pub struct Running {
    pub addr: SocketAddr,
    pub procs: Vec<Proc>,
    pub _dir: Option<TempDir>,
}

impl Running {
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(Proc::pid).collect()
    }
}

/// A scratch directory (peer configs, the weft snapshot), removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("weft-bench-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    pub fn path(&self) -> &FsPath {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Whether `tool` can be run.
pub fn available(tool: &str) -> bool {
    Command::new(tool)
        .arg(if tool == "haproxy" { "-v" } else { "--version" })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Extra environment of a `weft-proxy` run.
pub type Env = [(String, String)];

/// The `weft-proxy` (and its extra environment) of a weft path.
pub fn weft_bin<'a>(
    path: Path,
    weft: &'a FsPath,
    variants: &'a [Variant],
) -> Result<(&'a FsPath, &'a Env), Error> {
    match path {
        Path::Variant(i) => {
            let variant = variants.get(i).ok_or("no such variant")?;
            let bin = if variant.bin.as_os_str().is_empty() {
                weft
            } else {
                &variant.bin
            };
            Ok((bin, &variant.env))
        }
        _ => Ok((weft, &[])),
    }
}

/// Starts `path` on the host's loopback in front of `server`.
pub fn start_loopback(
    path: Path,
    server: SocketAddr,
    proto: Proto,
    weft: &FsPath,
    variants: &[Variant],
) -> Result<Running, Error> {
    let place = Place::Host;
    let one = |(addr, proc): (SocketAddr, Proc)| Running {
        addr,
        procs: vec![proc],
        _dir: None,
    };
    match path {
        Path::Direct => Ok(Running {
            addr: server,
            procs: Vec::new(),
            _dir: None,
        }),
        Path::Weft1 | Path::Variant(_) => {
            let (bin, env) = weft_bin(path, weft, variants)?;
            Ok(one(weft_fixed(place, bin, env, server)?))
        }
        Path::Weft2 => {
            let (inbound, second) = weft_fixed(place, weft, &[], server)?;
            let (outbound, first) = weft_fixed(place, weft, &[], inbound)?;
            Ok(Running {
                addr: outbound,
                procs: vec![first, second],
                _dir: None,
            })
        }
        Path::Haproxy => haproxy(place, server, proto),
        Path::Envoy => envoy(place, server, proto),
    }
}

fn weft_command(
    place: Place<'_, '_>,
    bin: &FsPath,
    extra: &[(String, String)],
) -> Result<Command, Error> {
    let mut cmd = place.command_as_proxy(bin)?;
    cmd.arg("run")
        .env_clear()
        .env("WEFT_PROXY_LOG", "error")
        .envs(extra.iter().map(|(k, v)| (k, v)));
    Ok(cmd)
}

/// `weft-proxy run` forwarding both directions to `target` (no iptables);
/// returns its outbound listener (the inbound one has the same data path).
fn weft_fixed(
    place: Place<'_, '_>,
    bin: &FsPath,
    extra: &[(String, String)],
    target: SocketAddr,
) -> Result<(SocketAddr, Proc), Error> {
    let outbound = free_port()?;
    let mut cmd = weft_command(place, bin, extra)?;
    cmd.env("WEFT_PROXY_INBOUND_LISTEN_ADDR", free_port()?.to_string())
        .env("WEFT_PROXY_OUTBOUND_LISTEN_ADDR", outbound.to_string())
        .env("WEFT_PROXY_ADMIN_LISTEN_ADDR", free_port()?.to_string())
        .env("WEFT_PROXY_INBOUND_FIXED_TARGET", target.to_string())
        .env("WEFT_PROXY_OUTBOUND_FIXED_TARGET", target.to_string());
    Ok((outbound, place.spawn(cmd)?))
}

/// `weft-proxy run` in a pod whose `weft-proxy init` redirect sends it the
/// traffic, on the ports and with the environment the injector writes.
pub fn weft_redirected(
    place: Place<'_, '_>,
    bin: &FsPath,
    extra: &[(String, String)],
    pod_ip: Ipv4Addr,
) -> Result<Proc, Error> {
    let mut cmd = weft_command(place, bin, extra)?;
    cmd.env("WEFT_PROXY_INBOUND_LISTEN_ADDR", "0.0.0.0:4143")
        .env("WEFT_PROXY_OUTBOUND_LISTEN_ADDR", "127.0.0.1:4140")
        .env("WEFT_PROXY_ADMIN_LISTEN_ADDR", "0.0.0.0:4191")
        .env("WEFT_PROXY_POD_IP", pod_ip.to_string());
    place.spawn(cmd)
}

/// HAProxy (`nbthread 2`) on 127.0.0.1 of `place`, in front of `server`.
pub fn haproxy(place: Place<'_, '_>, server: SocketAddr, proto: Proto) -> Result<Running, Error> {
    let dir = TempDir::new("haproxy")?;
    let addr = free_port()?;
    let h2 = if proto == Proto::H2 { " proto h2" } else { "" };
    let config = format!(
        "global\n  nbthread 2\n  maxconn 4096\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend bench\n  bind {addr}{h2}\n  default_backend upstream\n\
         backend upstream\n  server app {server}{h2}\n"
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, config)?;
    let mut cmd = place.command(FsPath::new("haproxy"))?;
    cmd.arg("-db").arg("-f").arg(&path);
    Ok(Running {
        addr,
        procs: vec![place.spawn(cmd)?],
        _dir: Some(dir),
    })
}

/// Envoy (`--concurrency 2`) on 127.0.0.1 of `place`, in front of `server`.
pub fn envoy(place: Place<'_, '_>, server: SocketAddr, proto: Proto) -> Result<Running, Error> {
    let dir = TempDir::new("envoy")?;
    let addr = free_port()?;
    let upstream_h2 = if proto == Proto::H2 {
        "    typed_extension_protocol_options:\n\
         \x20     envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n\
         \x20       \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n\
         \x20       explicit_http_config:\n\
         \x20         http2_protocol_options: {}\n"
    } else {
        ""
    };
    let config = format!(
        "static_resources:\n\
         \x20 listeners:\n\
         \x20 - name: bench\n\
         \x20   address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n\
         \x20   filter_chains:\n\
         \x20   - filters:\n\
         \x20     - name: envoy.filters.network.http_connection_manager\n\
         \x20       typed_config:\n\
         \x20         \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n\
         \x20         stat_prefix: bench\n\
         \x20         codec_type: AUTO\n\
         \x20         route_config:\n\
         \x20           virtual_hosts:\n\
         \x20           - name: all\n\
         \x20             domains: [\"*\"]\n\
         \x20             routes:\n\
         \x20             - match: {{prefix: \"/\"}}\n\
         \x20               route: {{cluster: upstream, timeout: 0s}}\n\
         \x20         http_filters:\n\
         \x20         - name: envoy.filters.http.router\n\
         \x20           typed_config:\n\
         \x20             \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n\
         \x20 clusters:\n\
         \x20 - name: upstream\n\
         \x20   type: STATIC\n\
         \x20   connect_timeout: 1s\n\
         {upstream_h2}\
         \x20   load_assignment:\n\
         \x20     cluster_name: upstream\n\
         \x20     endpoints:\n\
         \x20     - lb_endpoints:\n\
         \x20       - endpoint: {{address: {{socket_address: {{address: {sip}, port_value: {sport}}}}}}}\n",
        port = addr.port(),
        sip = server.ip(),
        sport = server.port(),
    );
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, config)?;
    let mut cmd = place.command(FsPath::new("envoy"))?;
    cmd.arg("-c").arg(&path).args([
        "--concurrency",
        "2",
        "--log-level",
        "error",
        "--disable-hot-restart",
    ]);
    Ok(Running {
        addr,
        procs: vec![place.spawn(cmd)?],
        _dir: Some(dir),
    })
}

/// Waits until a request through the path succeeds.
pub async fn wait_up(addr: SocketAddr, proto: Proto) -> Result<(), Error> {
    for _ in 0..200 {
        if super::load::saturate(addr, proto, 1, Duration::from_millis(1))
            .await
            .is_ok_and(|r| r.errors == 0 && r.samples.len() > 0)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{addr} never answered").into())
}
