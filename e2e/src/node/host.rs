//! What a node changes on the host, recorded before it starts and put back
//! when it stops: the sysctls the kubelet and the CNI bridge set, the
//! folders at fixed paths the kubelet and CNI create, the pod bridge, the
//! node's iptables chains, the mounts under the cluster folder, the pods'
//! processes and their cgroups. `cluster-down` and a test's drop both end
//! in [`teardown`], and a test proves the host is as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::config::{BRIDGE, GATEWAY, POD_PREFIX};
use super::iptables;
use crate::error::{Error, Result};

/// The sysctls the node may change: the kubelet's kernel tunables, and
/// forwarding and bridge netfilter, which pod networking needs.
pub const SYSCTLS: &[&str] = &[
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/ipv4/conf/all/route_localnet",
];

/// Folders at fixed paths that the kubelet, CRI and CNI create whatever
/// their configured roots are; those that did not exist before the node
/// are removed after it.
pub const FIXED_PATHS: &[&str] = &[
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/var/lib/cni",
    "/run/containerd",
    "/usr/libexec/kubernetes",
    "/etc/cni",
    "/opt/cni",
];

/// The cgroup the kubelet puts pods under, in every hierarchy.
pub const KUBEPODS: &str = "kubepods";

/// What the host looked like before the node started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostRecord {
    /// Each sysctl's value before (path under /proc/sys → value).
    pub sysctls: BTreeMap<String, String>,
    /// The fixed paths that did not exist.
    pub absent_paths: Vec<PathBuf>,
}

impl HostRecord {
    /// Reads the host as it is now.
    pub fn take() -> Self {
        let sysctls = SYSCTLS
            .iter()
            .filter_map(|s| read_sysctl(s).map(|v| (s.to_string(), v)))
            .collect();
        let absent_paths = FIXED_PATHS
            .iter()
            .map(PathBuf::from)
            .filter(|p| !p.exists())
            .collect();
        HostRecord {
            sysctls,
            absent_paths,
        }
    }

    /// The file the record is kept in, in the cluster folder.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("host-before-node.json")
    }

    /// Saves the record in `dir`, unless one is there already (a restarted
    /// node must put back what was there before the first start).
    pub fn save_once(&self, dir: &Path) -> Result<Self> {
        if let Some(earlier) = Self::load(dir)? {
            return Ok(earlier);
        }
        let path = Self::path(dir);
        let text = serde_json::to_string_pretty(self).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, text).map_err(Error::io(format!("writing {}", path.display())))?;
        Ok(self.clone())
    }

    /// The record saved in `dir`, if any.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = Self::path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|source| Error::State { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", path.display()))(e)),
        }
    }
}

/// A sysctl's current value.
pub fn read_sysctl(name: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/proc/sys").join(name))
        .ok()
        .map(|v| v.trim().to_string())
}

fn write_sysctl(name: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(Path::new("/proc/sys").join(name), value)
}

/// Creates the pod bridge with the gateway address, before the API server
/// binds to it. The CNI bridge plugin adopts it.
pub fn create_bridge() -> Result<()> {
    if !link_exists(BRIDGE) {
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
    }
    let cidr = format!("{GATEWAY}/{POD_PREFIX}");
    let addrs = ip_output(&["-br", "addr", "show", "dev", BRIDGE])?;
    if !addrs.contains(&cidr) {
        ip(&["addr", "add", &cidr, "dev", BRIDGE])?;
    }
    ip(&["link", "set", BRIDGE, "up"])?;
    // Pod traffic is routed through the host: to the API server on the
    // gateway, and to ClusterIPs after kube-proxy's DNAT.
    write_sysctl("net/ipv4/ip_forward", "1").map_err(Error::io("setting net.ipv4.ip_forward"))?;
    Ok(())
}

/// Whether a network link exists.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The links plugged into the pod bridge (the pods' veths).
pub fn bridge_ports() -> Vec<String> {
    std::fs::read_dir(Path::new("/sys/class/net").join(BRIDGE).join("brif"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn ip(args: &[&str]) -> Result<()> {
    ip_output(args).map(|_| ())
}

fn ip_output(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(Error::io(format!("running ip {}", args.join(" "))))?;
    if !out.status.success() {
        return Err(Error::Host {
            what: format!("ip {}", args.join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The node's chains left in the host's iptables and ip6tables, as
/// `(tool, table, chain)`.
pub fn leftover_chains() -> Vec<(String, String, String)> {
    ["iptables", "ip6tables"]
        .iter()
        .flat_map(|tool| {
            let save = save(tool).unwrap_or_default();
            iptables::node_chains(&save)
                .into_iter()
                .map(|(t, c)| (tool.to_string(), t, c))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn save(tool: &str) -> Option<String> {
    let out = Command::new(format!("{tool}-save"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Removes the node's chains from iptables and ip6tables.
fn sweep_iptables() -> Vec<String> {
    let mut problems = Vec::new();
    for tool in ["iptables", "ip6tables"] {
        let Some(save) = save(tool) else { continue };
        let payload = iptables::sweep_payload(&save);
        if payload.is_empty() {
            continue;
        }
        if let Err(e) = restore(tool, &payload) {
            problems.push(format!("{tool}: {e}"));
        }
    }
    problems
}

fn restore(tool: &str, payload: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut child = Command::new(format!("{tool}-restore"))
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(payload.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Mount points at or under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut mounts: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mounts.dedup();
    mounts
}

/// mountinfo escapes spaces, tabs, newlines and backslashes as octal.
fn unescape_mount_path(raw: &str) -> PathBuf {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(b) => out.push(b as char),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    PathBuf::from(out)
}

fn unmount_all(dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    // A mount can hide another under it; repeat until none is left.
    for _ in 0..5 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return problems;
        }
        for m in mounts {
            if let Err(e) = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH) {
                problems.push(format!("unmount {}: {e}", m.display()));
            }
        }
    }
    problems.extend(
        mounts_under(dir)
            .into_iter()
            .map(|m| format!("{} still mounted", m.display())),
    );
    problems
}

/// The cgroup hierarchies' mount points (v1 controllers and the v2 mount).
fn cgroup_roots() -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .collect()
}

/// Every `kubepods` cgroup folder, in every hierarchy.
pub fn kubepods_cgroups() -> Vec<PathBuf> {
    cgroup_roots()
        .into_iter()
        .map(|root| root.join(KUBEPODS))
        .filter(|p| p.is_dir())
        .collect()
}

/// Pids of every process in a `kubepods` cgroup: the pods' containers.
pub fn pod_processes() -> Vec<u32> {
    let mut pids = Vec::new();
    for root in kubepods_cgroups() {
        walk_dirs(&root, &mut |dir| {
            if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
        });
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn walk_dirs(dir: &Path, visit: &mut dyn FnMut(&Path)) {
    visit(dir);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk_dirs(&e.path(), visit);
            }
        }
    }
}

/// Removes a cgroup tree, deepest folders first (a cgroup folder is removed
/// with rmdir, and only once it is empty of processes and children).
fn remove_cgroup_tree(root: &Path) -> std::io::Result<()> {
    let mut dirs = Vec::new();
    walk_dirs(root, &mut |d| dirs.push(d.to_path_buf()));
    dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let mut last = Ok(());
    for d in dirs {
        if let Err(e) = std::fs::remove_dir(&d) {
            last = Err(e);
        }
    }
    last
}

/// Pids of the containerd shims serving `socket` (they outlive containerd,
/// so they are found by the address on their command line).
pub fn shims_of(socket: &Path) -> Vec<u32> {
    let want = socket.display().to_string();
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| {
                    let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
                    args.first()
                        .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"))
                        && args.contains(&want.as_bytes())
                })
                .unwrap_or(false)
        })
        .collect()
}

fn kill(pids: &[u32]) {
    for pid in pids {
        if let Some(p) = i32::try_from(*pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
    }
}

/// Puts the host back after the node's components have stopped (or been
/// killed): the pods' processes and shims, the mounts under `dir` (pod
/// network namespaces, volumes, overlay snapshots), the node's iptables
/// chains, the bridge, the kubepods cgroups, the fixed folders that were not
/// there, and the sysctls. Returns what could not be undone; empty is
/// success.
pub fn teardown(dir: &Path, containerd_socket: &Path, record: Option<&HostRecord>) -> Vec<String> {
    let mut problems = Vec::new();

    // The pods' processes first, then their shims: once both are gone, no
    // process holds a pod's network namespace or a snapshot mount.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut pids = pod_processes();
        pids.extend(shims_of(containerd_socket));
        if pids.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            problems.push(format!("processes still running: {pids:?}"));
            break;
        }
        kill(&pids);
        std::thread::sleep(Duration::from_millis(50));
    }

    problems.extend(unmount_all(dir));
    problems.extend(sweep_iptables());

    if link_exists(BRIDGE) {
        // Deleting the bridge also deletes any veth still plugged into it.
        for port in bridge_ports() {
            let _ = ip(&["link", "del", &port]);
        }
        if let Err(e) = ip(&["link", "del", BRIDGE]) {
            problems.push(e.to_string());
        }
    }

    for root in kubepods_cgroups() {
        if let Err(e) = remove_cgroup_tree(&root) {
            problems.push(format!("removing cgroup {}: {e}", root.display()));
        }
    }

    if let Some(record) = record {
        for path in &record.absent_paths {
            if path.exists() {
                // Only folders the node created, and only what is ours in
                // them: mounts inside were undone above.
                for m in mounts_under(path) {
                    let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
                }
                if let Err(e) = std::fs::remove_dir_all(path) {
                    problems.push(format!("removing {}: {e}", path.display()));
                }
            }
        }
        for (name, value) in &record.sysctls {
            if read_sysctl(name).as_deref() != Some(value.as_str())
                && let Err(e) = write_sysctl(name, value)
            {
                problems.push(format!("restoring {name}={value}: {e}"));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(
            unescape_mount_path(r"/a\040b/c\134d"),
            PathBuf::from("/a b/c\\d")
        );
        assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
    }

    #[test]
    fn a_record_is_kept_from_the_first_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = HostRecord {
            sysctls: [("kernel/panic".to_string(), "0".to_string())].into(),
            absent_paths: vec![PathBuf::from("/var/lib/kubelet")],
        };
        assert_eq!(first.save_once(dir.path()).expect("save"), first);
        let second = HostRecord {
            sysctls: [("kernel/panic".to_string(), "10".to_string())].into(),
            absent_paths: Vec::new(),
        };
        assert_eq!(second.save_once(dir.path()).expect("save"), first);
        assert_eq!(HostRecord::load(dir.path()).expect("load"), Some(first));
    }

    #[test]
    fn the_record_names_the_kubelet_tunables() {
        for s in [
            "vm/overcommit_memory",
            "kernel/panic",
            "kernel/panic_on_oops",
            "net/ipv4/ip_forward",
        ] {
            assert!(SYSCTLS.contains(&s), "{s}");
        }
    }
}
