//! A long-running process inside a pod (a server, the proxy), killed when
//! its handle is dropped so a failing test leaves nothing running.

use std::process::{Child, ExitStatus};
use std::thread;
use std::time::Duration;

use crate::error::RigError;

/// A process the rig started in a pod; killed and reaped on drop.
#[derive(Debug)]
pub struct PodProcess {
    child: Child,
    label: String,
}

impl PodProcess {
    pub(crate) fn new(child: Child, label: String) -> Self {
        Self { child, label }
    }

    /// The process id (the program itself: `ip netns exec` and `setpriv`
    /// exec into it rather than fork).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line it was started with.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The exit status if it has exited, without waiting.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>, RigError> {
        self.child.try_wait().map_err(|source| RigError::Spawn {
            command: self.label.clone(),
            source,
        })
    }

    /// Waits up to `limit` for it to exit on its own.
    pub fn wait_timeout(&mut self, limit: Duration) -> Result<Option<ExitStatus>, RigError> {
        // Polling: std has no timed wait, and a few milliseconds of latency
        // do not matter to a test.
        let step = Duration::from_millis(10);
        let mut waited = Duration::ZERO;
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(Some(status));
            }
            if waited >= limit {
                return Ok(None);
            }
            thread::sleep(step);
            waited += step;
        }
    }

    /// Kills it (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> Result<ExitStatus, RigError> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        // An error here only means it exited in between; wait() tells.
        let _ = self.child.kill();
        self.child.wait().map_err(|source| RigError::Spawn {
            command: self.label.clone(),
            source,
        })
    }
}

impl Drop for PodProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
