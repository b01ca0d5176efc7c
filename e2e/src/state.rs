//! A cluster left running for a person (`make cluster-up`, `make demo`):
//! what `up` records in the cluster folder (and `demo` adds: the injector it
//! left running), and how `down` finds and stops it all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, ClusterOptions};
use crate::error::{Error, Result};
use crate::node::{self, Owner, host};
use crate::ports;
use crate::process::{self, Lifetime};

/// The state file's name inside the cluster folder.
const STATE_FILE: &str = "cluster.json";

/// What a detached cluster is made of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterState {
    /// The cluster folder.
    pub dir: PathBuf,
    /// The API server's URL.
    pub server: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The components, in start order.
    pub components: Vec<ComponentState>,
    /// The loopback ports it listens on.
    pub ports: Vec<u16>,
    /// The `weft-injector` that `weft-e2e demo` left running, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injector: Option<InjectorState>,
    /// Whether the cluster has a node, whose host changes `down` undoes.
    #[serde(default)]
    pub node: bool,
}

/// A local `weft-injector` left running next to a detached cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InjectorState {
    /// Its process (and process group) id.
    pub pid: u32,
    /// Its log file.
    pub log: PathBuf,
    /// The URL the webhook configuration points at.
    pub url: String,
    /// Its HTTPS and admin ports.
    pub ports: Vec<u16>,
}

/// The injector's binary name, which its pid must still run to be stopped.
const INJECTOR_NAME: &str = "weft-injector";

impl InjectorState {
    /// Whether the recorded process is still the injector.
    pub fn running(&self) -> bool {
        is_component(self.pid, INJECTOR_NAME)
    }

    /// Stops the injector if it still runs.
    pub fn stop(&self) {
        if self.running() {
            process::stop_foreign(self.pid, Duration::from_secs(10));
        }
    }
}

/// One component of a detached cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentState {
    /// `etcd`, `kube-apiserver`, ...
    pub name: String,
    /// Its process (and process group) id.
    pub pid: u32,
    /// Its log file.
    pub log: PathBuf,
}

impl ClusterState {
    /// Reads the state of the cluster in `dir`, if one was started there.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()))(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| Error::State { path, source })
    }

    /// Writes the state into the cluster folder.
    pub(crate) fn save(&self) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, text).map_err(Error::io(format!("writing {}", path.display())))
    }

    /// The components that are still running as what they were started as.
    pub fn running(&self) -> Vec<&ComponentState> {
        self.components
            .iter()
            .filter(|c| is_component(c.pid, &c.name))
            .collect()
    }

    /// Whether every component of the cluster is running.
    pub fn fully_running(&self) -> bool {
        self.running().len() == self.components.len()
    }

    /// Records `injector` as running next to this cluster (stopping the one
    /// recorded before, if it still runs) and saves the state.
    pub fn record_injector(&mut self, injector: InjectorState) -> Result<()> {
        if let Some(previous) = self.injector.replace(injector) {
            previous.stop();
        }
        self.save()
    }

    /// Stops the recorded injector, if any, and saves the state without it.
    pub fn stop_injector(&mut self) -> Result<()> {
        match self.injector.take() {
            Some(injector) => {
                injector.stop();
                self.save()
            }
            None => Ok(()),
        }
    }
}

/// Starts a cluster in `dir`, with its node, that outlives this process,
/// and records it.
pub async fn up(dir: &Path) -> Result<ClusterState> {
    if let Some(state) = ClusterState::load(dir)? {
        if !state.running().is_empty() {
            return Err(Error::AlreadyRunning(dir.to_path_buf()));
        }
        // A cluster that died (a reboot): start afresh, without leaving a
        // demo's injector behind.
        if let Some(injector) = &state.injector {
            injector.stop();
        }
        if state.node {
            let dir = &state.dir;
            let record = host::HostRecord::load(dir)?;
            node::put_back(dir, record.as_ref());
        }
        remove_dir(dir)?;
    }
    let images = crate::images::ensure().await?;
    let cluster = Cluster::start_with(ClusterOptions {
        dir: Some(dir.to_path_buf()),
        lifetime: Lifetime::Detached,
        node: Some(crate::cluster::NodeOptions { images }),
        ..ClusterOptions::default()
    })
    .await?;
    let state = cluster.detach();
    state.save()?;
    // The node now lives as long as its kubelet, not as this process.
    if let Some(kubelet) = state.components.iter().find(|c| c.name == "kubelet") {
        Owner {
            dir: state.dir.clone(),
            pid: kubelet.pid,
        }
        .save()?;
    }
    Ok(state)
}

/// Stops the cluster recorded in `dir` and removes the folder. Returns
/// whether there was one.
pub fn down(dir: &Path) -> Result<bool> {
    let Some(state) = ClusterState::load(dir)? else {
        return Ok(false);
    };
    // The injector first: it watches the API server, which is about to go.
    if let Some(injector) = &state.injector {
        injector.stop();
    }
    for component in state.components.iter().rev() {
        // A pid that now belongs to something else (after a reboot) is
        // never signalled.
        if is_component(component.pid, &component.name) {
            process::stop_foreign(component.pid, Duration::from_secs(10));
        }
    }
    if state.node {
        // The recorded folder is absolute, as the shims' socket argument is.
        let dir = &state.dir;
        let record = host::HostRecord::load(dir)?;
        let problems = node::put_back(dir, record.as_ref());
        if !problems.is_empty() {
            return Err(Error::Host {
                what: format!("putting the host back after the node in {}", dir.display()),
                detail: problems.join("; "),
            });
        }
    }
    let injector_ports = state.injector.iter().flat_map(|i| i.ports.iter());
    if let Some(port) = state
        .ports
        .iter()
        .chain(injector_ports)
        .find(|p| ports::listening(**p))
    {
        return Err(Error::Io {
            context: format!("stopping the cluster in {}", dir.display()),
            source: std::io::Error::other(format!("port {port} is still in use")),
        });
    }
    remove_dir(dir)?;
    Ok(true)
}

/// Whether `pid` is running the component binary `name`.
fn is_component(pid: u32, name: &str) -> bool {
    if !process::alive(pid) {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|cmdline| {
            cmdline
                .split(|b| *b == 0)
                .next()
                .map(|argv0| argv0.ends_with(name.as_bytes()))
        })
        .unwrap_or(false)
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", dir.display()))(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;

    use super::*;

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = ClusterState {
            dir: dir.path().to_path_buf(),
            server: "https://127.0.0.1:1".to_string(),
            kubeconfig: dir.path().join("kubeconfig"),
            components: vec![ComponentState {
                name: "etcd".to_string(),
                pid: u32::MAX,
                log: dir.path().join("etcd.log"),
            }],
            ports: vec![1],
            node: false,
            injector: Some(InjectorState {
                pid: u32::MAX,
                log: dir.path().join("weft-injector.log"),
                url: "https://127.0.0.1:2/mutate".to_string(),
                ports: vec![2, 3],
            }),
        };
        state.save().expect("save");
        let loaded = ClusterState::load(dir.path()).expect("load").expect("some");
        assert_eq!(loaded.server, state.server);
        assert_eq!(loaded.components[0].pid, u32::MAX);
        // No such process: nothing to stop.
        assert!(loaded.running().is_empty());
        let injector = loaded.injector.expect("the injector is recorded");
        assert_eq!(injector.ports, vec![2, 3]);
        assert!(!injector.running());
    }

    #[test]
    fn a_state_without_an_injector_still_loads() {
        // Written by `up` before `demo` existed.
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            r#"{{"dir":{0:?},"server":"https://127.0.0.1:1","kubeconfig":{0:?},"components":[],"ports":[]}}"#,
            dir.path().display()
        );
        std::fs::write(dir.path().join(STATE_FILE), text).expect("write");
        let loaded = ClusterState::load(dir.path()).expect("load").expect("some");
        assert!(loaded.injector.is_none());
    }

    #[test]
    fn recording_an_injector_stops_the_previous_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A process named like the injector, as `demo` leaves one running.
        let fake = dir.path().join(INJECTOR_NAME);
        std::fs::copy("/bin/sleep", &fake).expect("copy sleep");
        let mut child = std::process::Command::new(&fake)
            .arg("300")
            .process_group(0)
            .spawn()
            .expect("spawn");
        let previous = InjectorState {
            pid: child.id(),
            log: dir.path().join("old.log"),
            url: String::new(),
            ports: Vec::new(),
        };
        // Right after spawn the child may not have exec'd yet (its name is
        // still the test binary's): wait for the exec, within a bound.
        let deadline = std::time::SystemTime::now() + Duration::from_secs(10);
        while !previous.running() && std::time::SystemTime::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(previous.running(), "the fake injector never started");
        let mut state = ClusterState {
            dir: dir.path().to_path_buf(),
            server: String::new(),
            kubeconfig: dir.path().join("kubeconfig"),
            components: Vec::new(),
            ports: Vec::new(),
            injector: Some(previous),
            node: false,
        };
        let next = InjectorState {
            pid: u32::MAX,
            log: dir.path().join("new.log"),
            url: String::new(),
            ports: Vec::new(),
        };
        // `stop` waits for a parent to reap; this test is the parent.
        let reaper = std::thread::spawn(move || child.wait());
        state.record_injector(next).expect("record");
        let status = reaper.join().expect("join").expect("wait");
        assert!(!status.success(), "the previous injector was signalled");
        let saved = ClusterState::load(dir.path()).expect("load").expect("some");
        assert_eq!(saved.injector.map(|i| i.pid), Some(u32::MAX));
    }

    #[test]
    fn no_state_means_no_cluster() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(ClusterState::load(dir.path()).expect("load").is_none());
        assert!(!down(dir.path()).expect("down"));
    }

    #[test]
    fn a_foreign_process_is_not_a_component() {
        // This test binary is alive but is not etcd.
        assert!(!is_component(std::process::id(), "etcd"));
    }
}
