//! A packet capture on one interface of a network namespace (tcpdump into a
//! pcap file), to read what crossed the "wire" between two pods: on a pod's
//! [`crate::Pod::bridge_port`] in [`crate::Rig::bridge_netns`] it sees
//! exactly what the pod sends and receives.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::RigError;
use crate::host;

/// A running tcpdump; killed on drop if not finished.
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Captures whole packets on `interface` of `netns` into `file`, and
    /// returns once tcpdump says it is listening (traffic before that line
    /// would be missed).
    pub fn start(netns: &str, interface: &str, file: &Path) -> Result<Self, RigError> {
        if !host::in_path("tcpdump") {
            return Err(RigError::NoTcpdump);
        }
        // --immediate-mode and -U: each packet read and written as it comes
        // (else the kernel hands packets over in blocks and a stop loses the
        // last one); -Z root: keep writing into a root-owned folder; -s 0:
        // whole packets.
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, "tcpdump", "--immediate-mode", "-U"])
            .args(["-Z", "root", "-s", "0", "-i", interface, "-w"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RigError::Spawn {
                command: format!("ip netns exec {netns} tcpdump -i {interface}"),
                source,
            })?;
        let stderr = child.stderr.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr
                .into_iter()
                .flat_map(|e| std::io::BufReader::new(e).lines())
            {
                let Ok(line) = line else { break };
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        let capture = Capture {
            child,
            file: file.to_path_buf(),
        };
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| RigError::Capture("did not start listening within 10 s"))?;
        Ok(capture)
    }

    /// Stops tcpdump (SIGINT, so it flushes and closes the file) and returns
    /// the capture file's bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, RigError> {
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or(RigError::Capture("has no pid"))?;
        rustix::process::kill_process(pid, rustix::process::Signal::INT).map_err(|e| {
            RigError::Io {
                what: format!("SIGINT to tcpdump ({pid:?})"),
                source: e.into(),
            }
        })?;
        for _ in 0..250 {
            let exited = self.child.try_wait().map_err(|source| RigError::Io {
                what: "waiting for tcpdump".to_owned(),
                source,
            })?;
            if exited.is_some() {
                return std::fs::read(&self.file).map_err(|source| RigError::Io {
                    what: format!("reading {}", self.file.display()),
                    source,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(RigError::Capture("did not stop within 5 s"))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether `needle` occurs in `haystack` (a capture's bytes).
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}
