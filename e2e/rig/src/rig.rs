//! The rig: a bridge in a namespace of its own, and pods attached to it.
//! Everything it creates carries the prefix `weft-t-<pid>-<n>` and is
//! removed when the rig is dropped, panics included.

use std::marker::PhantomData;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::process::{Pid, Signal, kill_process};

use crate::error::RigError;
use crate::host::{self, ip};
use crate::hosts::NETNS_ETC;
use crate::pod::{Pod, bridge_port_name};

/// Every rig namespace name starts with this, then `<pid>-<n>`.
pub const PREFIX: &str = "weft-t-";

/// The pods' network. It exists only inside the rig's namespaces: the
/// bridge has no address and nothing routes it to the host.
pub const SUBNET: &str = "10.244.0.0/24";
const SUBNET_BASE: [u8; 3] = [10, 244, 0];
const BRIDGE: &str = "br0";

static NEXT_RIG: AtomicU32 = AtomicU32::new(0);

/// A set of pods on one bridge; torn down on drop.
#[derive(Debug)]
pub struct Rig {
    prefix: String,
    bridge_netns: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// (pod name, netns), in creation order, recorded before creation so a
    /// half-built pod is still torn down.
    pods: Vec<(String, String)>,
    /// Last host octet handed out; .1 is left for a future gateway.
    last_host: u8,
}

impl Rig {
    /// Builds an empty rig: checks tools and privileges, clears namespaces
    /// left by rigs of processes that died, and creates the bridge.
    pub fn new() -> Result<Self, RigError> {
        host::check()?;
        sweep_stale();
        let prefix = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT_RIG.fetch_add(1, Ordering::Relaxed)
        );
        let rig = Rig {
            // A dot cannot appear in a pod name, so no pod can collide with it.
            bridge_netns: format!("{prefix}.bridge"),
            prefix,
            state: Mutex::new(State {
                last_host: 1,
                ..State::default()
            }),
        };
        // From here on an error drops `rig`, which removes what was made.
        ip(&["netns", "add", &rig.bridge_netns])?;
        ip(&[
            "-n",
            &rig.bridge_netns,
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
        ])?;
        ip(&["-n", &rig.bridge_netns, "link", "set", BRIDGE, "up"])?;
        Ok(rig)
    }

    /// Like [`Rig::new`], but `Ok(None)` when not root and the environment
    /// says `WEFT_SKIP_ROOT_TESTS=1`, for developers without root; CI runs
    /// as root and never sets it.
    pub fn new_or_skip() -> Result<Option<Self>, RigError> {
        match Rig::new() {
            Err(RigError::NotRoot) if std::env::var_os("WEFT_SKIP_ROOT_TESTS").is_some() => {
                eprintln!("skipped: needs root (WEFT_SKIP_ROOT_TESTS is set)");
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    /// The prefix of every namespace this rig made (`weft-t-<pid>-<n>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace holding the bridge.
    pub fn bridge_netns(&self) -> &str {
        &self.bridge_netns
    }

    /// Adds a pod: a namespace `<prefix>-<name>` with loopback up and
    /// `eth0` on the bridge, addressed from [`SUBNET`].
    pub fn pod(&self, name: &str) -> Result<Pod<'_>, RigError> {
        let valid = !name.is_empty()
            && name.len() <= 20
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(RigError::BadPodName(name.to_owned()));
        }
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.pods.iter().any(|(n, _)| n == name) {
            return Err(RigError::DuplicatePod(name.to_owned()));
        }
        let host = state.last_host.checked_add(1).filter(|h| *h < 255);
        let host = host.ok_or(RigError::Full)?;
        state.last_host = host;
        let netns = format!("{}-{name}", self.prefix);
        state.pods.push((name.to_owned(), netns.clone()));
        drop(state);

        let [a, b, c] = SUBNET_BASE;
        let addr = Ipv4Addr::new(a, b, c, host);
        let peer = bridge_port_name(host);
        let cidr = format!("{addr}/24");
        ip(&["netns", "add", &netns])?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &netns,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &self.bridge_netns,
        ])?;
        ip(&[
            "-n",
            &self.bridge_netns,
            "link",
            "set",
            &peer,
            "master",
            BRIDGE,
            "up",
        ])?;
        ip(&["-n", &netns, "addr", "add", &cidr, "dev", "eth0"])?;
        ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        Ok(Pod {
            name: name.to_owned(),
            netns,
            ip: addr,
            _rig: PhantomData,
        })
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Pods first: deleting a pod's namespace deletes its veth pair, so
        // the bridge namespace is empty when it goes.
        for (_, netns) in state.pods.drain(..) {
            remove_netns(&netns);
        }
        remove_netns(&self.bridge_netns);
    }
}

/// Kills every process in `netns` and deletes it, with its `/etc/netns`
/// folder ([`Pod::set_hosts`]); reports but does not fail, since it runs
/// from `Drop`.
fn remove_netns(netns: &str) {
    let etc = Path::new(NETNS_ETC).join(netns);
    if etc.exists() {
        if let Err(e) = std::fs::remove_dir_all(&etc) {
            eprintln!("weft-testrig: could not remove {}: {e}", etc.display());
        }
        // The parent too, when the rig made it and nothing else is in it
        // (a non-empty folder is never removed).
        let _ = std::fs::remove_dir(NETNS_ETC);
    }
    if !Path::new("/run/netns").join(netns).exists() {
        return;
    }
    // A namespace lives on while a process is in it, so processes go first.
    if let Ok(pids) = ip(&["netns", "pids", netns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
    }
    if let Err(e) = ip(&["netns", "del", netns]) {
        eprintln!("weft-testrig: could not delete network namespace {netns}: {e}");
    }
}

/// Deletes namespaces (and hosts folders) of rigs whose process is gone
/// (killed before its rig's `Drop` could run).
fn sweep_stale() {
    let listed = ip(&["netns", "list"]).unwrap_or_default();
    let mut names: Vec<String> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    // A hosts folder can outlive its namespace when a test dies mid-teardown.
    if let Ok(entries) = std::fs::read_dir(NETNS_ETC) {
        let orphans: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(PREFIX) && !names.contains(n))
            .collect();
        names.extend(orphans);
    }
    for netns in &names {
        let owner = netns
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = owner
            && pid != std::process::id()
            && !Path::new("/proc").join(pid.to_string()).exists()
        {
            remove_netns(netns);
        }
    }
}
