//! The paths under test, each started fresh on loopback: direct, one weft
//! proxy, two weft proxies (outbound then inbound, as between two meshed
//! pods), HAProxy and Envoy as one-hop reverse proxies.

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::load::Proto;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Another `weft-proxy` build (or the same one with other settings) run as
/// one hop beside the others, for before/after comparisons in one run.
#[derive(Clone, Debug)]
pub struct Variant {
    pub label: String,
    pub bin: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Variant {
    /// Parses `LABEL=BIN` or `LABEL=BIN@K=V,K=V` (extra environment); an
    /// empty BIN means the benchmark's own `weft-proxy`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let (label, rest) = text
            .split_once('=')
            .ok_or("--variant LABEL=BIN[@K=V,...]")?;
        let (bin, env) = rest.split_once('@').unwrap_or((rest, ""));
        let env = env
            .split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| format!("variant env {kv:?} is not K=V"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            label: label.to_owned(),
            bin: PathBuf::from(bin),
            env,
        })
    }
}

/// A path from the load generator to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    Direct,
    Weft1,
    Weft2,
    Haproxy,
    Envoy,
    /// One hop through the variant with this index.
    Variant(usize),
}

impl Path {
    pub fn name(self, variants: &[Variant]) -> String {
        match self {
            Self::Direct => "direct".to_owned(),
            Self::Weft1 => "weft x1".to_owned(),
            Self::Weft2 => "weft x2".to_owned(),
            Self::Haproxy => "haproxy".to_owned(),
            Self::Envoy => "envoy".to_owned(),
            Self::Variant(i) => variants
                .get(i)
                .map_or_else(|| format!("variant {i}"), |v| v.label.clone()),
        }
    }

    /// Proxy processes on the path (the CPU and memory figures divide by it).
    pub fn hops(self) -> usize {
        match self {
            Self::Direct => 0,
            Self::Weft2 => 2,
            Self::Weft1 | Self::Haproxy | Self::Envoy | Self::Variant(_) => 1,
        }
    }
}

/// A started path: where to send load, and its proxy processes.
pub struct Running {
    pub addr: SocketAddr,
    children: Vec<Child>,
    _dir: Option<TempDir>,
}

impl Running {
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A scratch directory for peer configs, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("weft-bench-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
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

/// A copy of the `weft-proxy` this benchmark was built with, removed on drop.
pub struct Snapshot {
    dir: TempDir,
}

impl Snapshot {
    /// Copies the binary.
    pub fn take() -> Result<Self, Error> {
        let dir = TempDir::new("weft")?;
        std::fs::copy(env!("CARGO_BIN_EXE_weft-proxy"), dir.0.join("weft-proxy"))?;
        Ok(Self { dir })
    }

    /// Where the copy is.
    pub fn path(&self) -> PathBuf {
        self.dir.0.join("weft-proxy")
    }
}

/// Starts `path` in front of `server`; the weft paths run `weft`.
pub fn start(
    path: Path,
    server: SocketAddr,
    proto: Proto,
    weft_bin: &FsPath,
    variants: &[Variant],
) -> Result<Running, Error> {
    match path {
        Path::Direct => Ok(Running {
            addr: server,
            children: Vec::new(),
            _dir: None,
        }),
        Path::Weft1 => {
            let (addr, child) = weft(server, weft_bin, &[])?;
            Ok(Running {
                addr,
                children: vec![child],
                _dir: None,
            })
        }
        Path::Weft2 => {
            let (inbound, second) = weft(server, weft_bin, &[])?;
            let (outbound, first) = weft(inbound, weft_bin, &[])?;
            Ok(Running {
                addr: outbound,
                children: vec![first, second],
                _dir: None,
            })
        }
        Path::Haproxy => haproxy(server, proto),
        Path::Envoy => envoy(server, proto),
        Path::Variant(i) => {
            let variant = variants.get(i).ok_or("no such variant")?;
            let bin = if variant.bin.as_os_str().is_empty() {
                weft_bin
            } else {
                &variant.bin
            };
            let (addr, child) = weft(server, bin, &variant.env)?;
            Ok(Running {
                addr,
                children: vec![child],
                _dir: None,
            })
        }
    }
}

/// `weft-proxy run` (the binary `bin`, with `extra` environment) forwarding
/// both directions to `target`; returns its outbound listener (the inbound
/// one has the same data path).
fn weft(
    target: SocketAddr,
    bin: &FsPath,
    extra: &[(String, String)],
) -> Result<(SocketAddr, Child), Error> {
    let outbound = free_port()?;
    let child = Command::new(bin)
        .arg("run")
        .env_clear()
        .env("WEFT_PROXY_LOG", "error")
        .env("WEFT_PROXY_INBOUND_LISTEN_ADDR", free_port()?.to_string())
        .env("WEFT_PROXY_OUTBOUND_LISTEN_ADDR", outbound.to_string())
        .env("WEFT_PROXY_ADMIN_LISTEN_ADDR", free_port()?.to_string())
        .env("WEFT_PROXY_INBOUND_FIXED_TARGET", target.to_string())
        .env("WEFT_PROXY_OUTBOUND_FIXED_TARGET", target.to_string())
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    Ok((outbound, child))
}

fn haproxy(server: SocketAddr, proto: Proto) -> Result<Running, Error> {
    let dir = TempDir::new("haproxy")?;
    let addr = free_port()?;
    let h2 = if proto == Proto::H2 { " proto h2" } else { "" };
    let config = format!(
        "global\n  nbthread 2\n  maxconn 4096\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend bench\n  bind {addr}{h2}\n  default_backend upstream\n\
         backend upstream\n  server app {server}{h2}\n"
    );
    let path = dir.0.join("haproxy.cfg");
    std::fs::write(&path, config)?;
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    Ok(Running {
        addr,
        children: vec![child],
        _dir: Some(dir),
    })
}

fn envoy(server: SocketAddr, proto: Proto) -> Result<Running, Error> {
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
         \x20       - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {sport}}}}}}}\n",
        port = addr.port(),
        sport = server.port(),
    );
    let path = dir.0.join("envoy.yaml");
    std::fs::write(&path, config)?;
    let child = Command::new("envoy")
        .arg("-c")
        .arg(&path)
        .args([
            "--concurrency",
            "2",
            "--log-level",
            "error",
            "--disable-hot-restart",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    Ok(Running {
        addr,
        children: vec![child],
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
