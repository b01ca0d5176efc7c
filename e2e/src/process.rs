//! One component of the local cluster as an OS process: started in its own
//! process group with its output in a log file, checked for early exit, and
//! stopped (SIGTERM to the group, then SIGKILL) so nothing outlives the test.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::time::Instant;

use crate::bins::on_path;
use crate::error::{Error, Result};

/// How a component is bound to the process that started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Killed by the kernel when the starting thread dies, even by SIGKILL
    /// (a test run that is killed leaves nothing behind). Needs `setpriv`
    /// from util-linux; without it the component is only stopped on drop.
    Test,
    /// Outlives the starting process (`weft-e2e up`); stopped by `down`.
    Detached,
}

/// A running component.
#[derive(Debug)]
pub(crate) struct Component {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Component {
    /// Starts `program` with `args`, its stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        log: &Path,
        lifetime: Lifetime,
    ) -> Result<Self> {
        let out = File::create(log).map_err(Error::io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(Error::io(format!("opening {}", log.display())))?;
        let mut command = if lifetime == Lifetime::Test && on_path("setpriv") {
            // setpriv execs the program, so the pid and the group stay the
            // component's own, with PR_SET_PDEATHSIG set.
            let mut c = Command::new("setpriv");
            c.args(["--pdeathsig", "KILL", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own group: a terminal's Ctrl-C does not reach it, and
            // stopping the group also stops anything it forked.
            .process_group(0);
        let child = command.spawn().map_err(|source| Error::Spawn {
            component: name.to_string(),
            source,
        })?;
        Ok(Component {
            name,
            child,
            log: log.to_path_buf(),
        })
    }

    /// The component's name (`etcd`, `kube-apiserver`, ...).
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Its process id (also its process group id).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log file.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// An error if the component has exited.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Exited {
                component: self.name.to_string(),
                status,
                log_tail: log_tail(&self.log, 40),
            }),
            Err(source) => Err(Error::Io {
                context: format!("waiting for {}", self.name),
                source,
            }),
        }
    }

    /// Stops the component's process group: SIGTERM, then SIGKILL after
    /// `grace`, and reaps it.
    pub(crate) fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            // Exited already; still clear anything it left in its group.
            signal_group(self.pid(), Signal::KILL);
            return;
        }
        signal_group(self.pid(), Signal::TERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                signal_group(self.pid(), Signal::KILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_group(self.pid(), Signal::KILL);
        // SIGKILL cannot be ignored, so this returns promptly.
        let _ = self.child.wait();
    }
}

/// Sends `signal` to the process group `pgid`; a group that is already gone
/// is not an error.
pub(crate) fn signal_group(pgid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Whether a process with this id is running. A zombie is not: it holds no
/// ports or files, and whether its new parent reaps it promptly is not ours
/// to control.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may
    // itself contain spaces or parentheses.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Stops a process group this process did not start (a detached cluster):
/// SIGTERM, then SIGKILL after `grace`, then waits for it to be gone.
pub(crate) fn stop_foreign(pgid: u32, grace: Duration) {
    signal_group(pgid, Signal::TERM);
    let deadline = Instant::now() + grace;
    while alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_group(pgid, Signal::KILL);
    // Its new parent (init) reaps it; wait for that rather than return while
    // it still holds its ports.
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `lines` lines of a log file (at most 64 KiB are read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    const MAX: u64 = 64 * 1024;
    let Ok(mut file) = File::open(path) else {
        return format!("({} missing)", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file.seek(SeekFrom::Start(len.saturating_sub(MAX))).is_err() {
        return format!("({} unreadable)", path.display());
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return format!("({} unreadable)", path.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).expect("write");
        assert_eq!(log_tail(&path, 2), "line 99\nline 100");
        assert_eq!(log_tail(&path, 1000).lines().count(), 100);
    }

    #[test]
    fn tail_of_a_missing_file_says_so() {
        assert!(log_tail(Path::new("/nonexistent/log"), 5).contains("missing"));
    }

    #[test]
    fn stop_ends_the_whole_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("grandchild");
        // A shell that forks a grandchild and ignores SIGTERM: stop must still
        // end both, via SIGKILL to the group.
        let mut c = Component::spawn(
            "sh",
            Path::new("/bin/sh"),
            &[
                "-c".to_string(),
                format!(
                    "trap '' TERM; sleep 300 & echo $! > {}.tmp; mv {0}.tmp {0}; wait",
                    pid_file.display()
                ),
            ],
            &dir.path().join("log"),
            Lifetime::Test,
        )
        .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(10);
        let grandchild = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "shell never forked");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(alive(grandchild));
        c.stop(Duration::from_millis(200));
        let deadline = Instant::now() + Duration::from_secs(5);
        // The grandchild is reparented and reaped by init once killed.
        while alive(grandchild) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(grandchild), "grandchild {grandchild} survived stop");
        assert!(c.check_running().is_err(), "shell still running");
    }
}
