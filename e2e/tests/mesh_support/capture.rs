//! A packet capture on one interface of a network namespace (tcpdump into a
//! pcap file), to read what crossed the "wire" between two pods.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::TestResult;

/// A running tcpdump; killed on drop if not stopped.
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Captures whole packets on `interface` of `netns` into `file`, and
    /// returns once tcpdump says it is listening (traffic before that line
    /// would be missed).
    pub fn start(netns: &str, interface: &str, file: &Path) -> TestResult<Self> {
        if !weft_testrig::in_path("tcpdump") {
            return Err("the capture needs tcpdump: apt-get install -y tcpdump".into());
        }
        // --immediate-mode and -U: each packet written as it arrives, so a
        // stop loses nothing; -Z root: keep writing into a root-owned folder.
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, "tcpdump", "--immediate-mode", "-U"])
            .args(["-Z", "root", "-s", "0", "-i", interface, "-w"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("tcpdump has no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
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
            .map_err(|_| "tcpdump did not start listening within 10 s")?;
        Ok(capture)
    }

    /// Stops tcpdump (SIGINT, so it flushes and closes the file) and returns
    /// the capture file's bytes.
    pub fn finish(mut self) -> TestResult<Vec<u8>> {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id())?)
            .ok_or("tcpdump has no pid")?;
        rustix::process::kill_process(pid, rustix::process::Signal::INT)?;
        for _ in 0..250 {
            if self.child.try_wait()?.is_some() {
                return Ok(std::fs::read(&self.file)?);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("tcpdump did not stop within 5 s".into())
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

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}
