//! `--netns`: every path between "pods" of the test rig (e2e/rig), as
//! between two pods on one node: network namespaces with a veth on one
//! bridge, the load generator in a client pod, the server in a server pod,
//! and weft as the injector runs it (UID 2102, behind the iptables redirect
//! of `weft-proxy init`), so REDIRECT, conntrack and `SO_ORIGINAL_DST` are
//! in the figures. Needs root.
//!
//! Each path has a client pod of its own, because the redirect belongs to
//! a pod: direct (no redirect), weft x1 (the client pod's outbound proxy),
//! weft x2 (outbound, then the server pod's inbound proxy), HAProxy and
//! Envoy (reverse proxies on the client pod's loopback). Two server pods:
//! one plain, one with its own redirect and inbound proxy (weft x2).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path as FsPath;

use weft_testrig::{Pod, Rig};

use super::load::Proto;
use super::paths::{Path, Variant};
use super::peers::{self, Place, Running};
use super::server;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The server's port in both server pods.
const SERVER_PORT: u16 = 8080;

/// The pods of every path and the two servers.
pub struct Topology<'rig> {
    clients: HashMap<Path, Pod<'rig>>,
    meshed: Pod<'rig>,
    plain_server: SocketAddr,
    meshed_server: SocketAddr,
}

impl<'rig> Topology<'rig> {
    /// Makes the pods of `paths`, installs the redirect where weft runs
    /// (with `weft`'s `init`), and starts a server in each server pod.
    pub fn build(rig: &'rig Rig, paths: &[Path], weft: &FsPath) -> Result<Self, Error> {
        let plain = rig.pod("s-plain")?;
        let meshed = rig.pod("s-meshed")?;
        init(&meshed, weft)?;
        let any = SocketAddr::from(([0, 0, 0, 0], SERVER_PORT));
        // The server's thread inherits the namespace of the thread that
        // starts it, and with it every socket it makes.
        plain.in_netns(|| server::start(any))??;
        meshed.in_netns(|| server::start(any))??;
        let mut clients = HashMap::new();
        for path in paths {
            let name = match path {
                Path::Direct => "c-direct".to_owned(),
                Path::Weft1 => "c-weft1".to_owned(),
                Path::Weft2 => "c-weft2".to_owned(),
                Path::Haproxy => "c-haproxy".to_owned(),
                Path::Envoy => "c-envoy".to_owned(),
                Path::Variant(i) => format!("c-variant{i}"),
            };
            let pod = rig.pod(&name)?;
            if matches!(path, Path::Weft1 | Path::Weft2 | Path::Variant(_)) {
                init(&pod, weft)?;
            }
            clients.insert(*path, pod);
        }
        Ok(Self {
            clients,
            plain_server: SocketAddr::from((plain.ip(), SERVER_PORT)),
            meshed_server: SocketAddr::from((meshed.ip(), SERVER_PORT)),
            meshed,
        })
    }

    fn client(&self, path: Path) -> Result<&Pod<'rig>, Error> {
        self.clients
            .get(&path)
            .ok_or_else(|| format!("no pod for {path:?}").into())
    }

    /// Starts the proxies of `path`; the load goes to the server's address
    /// (the redirect takes it to weft) or to the reverse proxy.
    pub fn start(
        &self,
        path: Path,
        proto: Proto,
        weft: &FsPath,
        variants: &[Variant],
    ) -> Result<Running, Error> {
        let client = self.client(path)?;
        let place = Place::Pod(client);
        let to = |addr: SocketAddr, procs| Running {
            addr,
            procs,
            _dir: None,
        };
        match path {
            Path::Direct => Ok(to(self.plain_server, Vec::new())),
            Path::Weft1 | Path::Variant(_) => {
                let (bin, env) = peers::weft_bin(path, weft, variants)?;
                let outbound = peers::weft_redirected(place, bin, env, client.ip())?;
                Ok(to(self.plain_server, vec![outbound]))
            }
            Path::Weft2 => {
                let outbound = peers::weft_redirected(place, weft, &[], client.ip())?;
                let inbound =
                    peers::weft_redirected(Place::Pod(&self.meshed), weft, &[], self.meshed.ip())?;
                Ok(to(self.meshed_server, vec![outbound, inbound]))
            }
            Path::Haproxy => peers::haproxy(place, self.plain_server, proto),
            Path::Envoy => peers::envoy(place, self.plain_server, proto),
        }
    }

    /// Runs `f` on a thread in the client pod of `path`: a runtime built
    /// there makes every load generator socket in the pod.
    pub fn in_client<R, F>(&self, path: Path, f: F) -> Result<R, Error>
    where
        R: Send,
        F: FnOnce() -> R + Send,
    {
        Ok(self.client(path)?.in_netns(f)?)
    }
}

/// `weft-proxy init` with the injector's defaults in `pod`.
fn init(pod: &Pod<'_>, weft: &FsPath) -> Result<(), Error> {
    let out = pod
        .command(weft.to_str().ok_or("non-UTF-8 path")?)
        .arg("init")
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "weft-proxy init in {}: {}",
            pod.name(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into())
    }
}
