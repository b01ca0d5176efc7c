//! One node per machine: the kubelet's ports, the pod bridge, kube-proxy's
//! chains and the `kubepods` cgroups are the machine's, not a cluster's. The
//! node that holds them is recorded in [`OWNER_FILE`] with the pid of the
//! process that owns it, so a second node is refused with a clear message
//! and a node whose owner died (a killed test run) is cleaned up by the
//! next one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::host;
use crate::error::{Error, Result};
use crate::process;

/// Where the machine's node owner is recorded.
pub const OWNER_FILE: &str = "/run/weft-e2e/node.json";

/// The cluster that holds the machine's node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Owner {
    /// Its cluster folder.
    pub dir: PathBuf,
    /// The process whose life the node is bound to: a test process, or the
    /// detached kubelet of `make cluster-up`.
    pub pid: u32,
}

impl Owner {
    /// The recorded owner, if any.
    pub fn load() -> Option<Self> {
        let text = std::fs::read_to_string(OWNER_FILE).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Claims the node for `dir`, owned by `pid`. A live owner elsewhere is
    /// an error; a dead one's leftovers are torn down first.
    pub fn claim(dir: &Path, pid: u32) -> Result<Self> {
        // The claim itself is serialised by an exclusive lock, so two test
        // processes starting at once cannot both see the node free.
        let lock_path = Path::new(OWNER_FILE).with_extension("lock");
        if let Some(parent) = lock_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(Error::io(format!("creating {}", parent.display())))?;
        }
        let lock = std::fs::File::create(&lock_path)
            .map_err(Error::io(format!("opening {}", lock_path.display())))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io(format!("locking {}", lock_path.display()))(e.into()))?;

        if let Some(previous) = Self::load() {
            if previous.dir != dir && process::alive(previous.pid) {
                return Err(Error::NodeBusy(previous.dir));
            }
            if previous.dir != dir {
                // A node whose owner died: put the host back before reuse.
                let record = host::HostRecord::load(&previous.dir).ok().flatten();
                let problems = super::put_back(&previous.dir, record.as_ref());
                if !problems.is_empty() {
                    eprintln!(
                        "weft-e2e: cleaning up the node left by {}: {}",
                        previous.dir.display(),
                        problems.join("; ")
                    );
                }
            }
        }
        let owner = Owner {
            dir: dir.to_path_buf(),
            pid,
        };
        owner.save()?;
        Ok(owner)
    }

    /// Records a new owning process (a detached cluster hands the node from
    /// the starting process to its kubelet).
    pub fn save(&self) -> Result<()> {
        let text = serde_json::to_string(self).map_err(|source| Error::State {
            path: PathBuf::from(OWNER_FILE),
            source,
        })?;
        std::fs::write(OWNER_FILE, text).map_err(Error::io(format!("writing {OWNER_FILE}")))
    }

    /// Releases the node if `dir` still owns it.
    pub fn release(dir: &Path) {
        if Self::load().is_some_and(|o| o.dir == dir) {
            let _ = std::fs::remove_file(OWNER_FILE);
        }
    }
}
