//! A cluster left running for a person (`make cluster-up`): what `up`
//! records in the cluster folder, and how `down` finds and stops it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, ClusterOptions};
use crate::error::{Error, Result};
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

    fn save(&self) -> Result<()> {
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
}

/// Starts a cluster in `dir` that outlives this process, and records it.
pub async fn up(dir: &Path) -> Result<ClusterState> {
    if let Some(state) = ClusterState::load(dir)? {
        if !state.running().is_empty() {
            return Err(Error::AlreadyRunning(dir.to_path_buf()));
        }
        // A cluster that died (a reboot): start afresh.
        remove_dir(dir)?;
    }
    let cluster = Cluster::start_with(ClusterOptions {
        dir: Some(dir.to_path_buf()),
        lifetime: Lifetime::Detached,
        ..ClusterOptions::default()
    })
    .await?;
    let state = cluster.detach();
    state.save()?;
    Ok(state)
}

/// Stops the cluster recorded in `dir` and removes the folder. Returns
/// whether there was one.
pub fn down(dir: &Path) -> Result<bool> {
    let Some(state) = ClusterState::load(dir)? else {
        return Ok(false);
    };
    for component in state.components.iter().rev() {
        // A pid that now belongs to something else (after a reboot) is
        // never signalled.
        if is_component(component.pid, &component.name) {
            process::stop_foreign(component.pid, Duration::from_secs(10));
        }
    }
    if let Some(port) = state.ports.iter().find(|p| ports::listening(**p)) {
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
        };
        state.save().expect("save");
        let loaded = ClusterState::load(dir.path()).expect("load").expect("some");
        assert_eq!(loaded.server, state.server);
        assert_eq!(loaded.components[0].pid, u32::MAX);
        // No such process: nothing to stop.
        assert!(loaded.running().is_empty());
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
