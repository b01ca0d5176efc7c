//! Running iptables: read the `nat` table once, write the payload in one
//! `iptables-restore --noflush` call, and turn the tools' failures into
//! errors an operator can act on.
//!
//! One restore call is one kernel transaction: either all of weft's rules
//! are in place or none changed, so a failed init never leaves a half-built
//! redirect behind.

use std::fmt;
use std::io::{self, Write as _};
use std::process::{Command, Stdio};

use super::error::InitError;

/// Which iptables backend programs the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// `iptables-nft`: the nf_tables kernel API (current distributions).
    #[default]
    Nft,
    /// `iptables-legacy`: the x_tables kernel API (older nodes).
    Legacy,
}

impl Mode {
    /// The program that prints the current rules.
    pub fn save_tool(self) -> &'static str {
        match self {
            Mode::Nft => "iptables-nft-save",
            Mode::Legacy => "iptables-legacy-save",
        }
    }

    /// The program that loads a payload.
    pub fn restore_tool(self) -> &'static str {
        match self {
            Mode::Nft => "iptables-nft-restore",
            Mode::Legacy => "iptables-legacy-restore",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Nft => "nft",
            Mode::Legacy => "legacy",
        })
    }
}

/// The `nat` table as `iptables-save -t nat` prints it.
pub fn read_nat(mode: Mode) -> Result<String, InitError> {
    run_tool(mode, mode.save_tool(), &["-t", "nat"], None)
}

/// Loads `payload` without flushing anything it does not name.
pub fn restore(mode: Mode, payload: &str) -> Result<(), InitError> {
    let args: &[&str] = match mode {
        // The nft backend is transactional in the kernel and takes no lock.
        Mode::Nft => &["--noflush"],
        // The legacy backend serialises writers through the xtables lock;
        // waiting a little beats failing when another writer holds it.
        Mode::Legacy => &["--noflush", "--wait=10"],
    };
    run_tool(mode, mode.restore_tool(), args, Some(payload)).map(|_| ())
}

fn run_tool(
    mode: Mode,
    tool: &'static str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, InitError> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => InitError::ToolMissing { tool, mode },
            _ => InitError::Spawn { tool, source },
        })?;

    // Feed stdin from a second thread: a payload larger than the pipe
    // buffer would otherwise deadlock against a child that fills stderr.
    let output = std::thread::scope(|s| {
        let feeder = child.stdin.take().map(|mut pipe| {
            let text = stdin.unwrap_or_default();
            s.spawn(move || pipe.write_all(text.as_bytes()))
        });
        let output = child.wait_with_output();
        // A write error here means the tool exited before reading it all;
        // its exit status and stderr tell the real story, so it is dropped.
        if let Some(f) = feeder {
            let _ = f.join();
        }
        output
    })
    .map_err(|source| InitError::Spawn { tool, source })?;

    let stderr = String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_owned();
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    if is_permission_error(&stderr) {
        return Err(InitError::PermissionDenied { tool, stderr });
    }
    Err(InitError::Failed {
        tool,
        status: output.status.to_string(),
        stderr,
        context: stdin.map(numbered).unwrap_or_default(),
    })
}

/// The iptables tools report EPERM/EACCES only as text ("Permission denied
/// (you must be root)", "Operation not permitted"); their exit codes mix it
/// up with other failures.
fn is_permission_error(stderr: &str) -> bool {
    [
        "Permission denied",
        "Operation not permitted",
        "you must be root",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

fn numbered(payload: &str) -> String {
    let mut out = String::from("\npayload:\n");
    for (i, line) in payload.lines().enumerate() {
        out.push_str(&format!("{:>4}  {line}\n", i + 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_are_recognised_from_both_backends() {
        assert!(is_permission_error(
            "iptables-nft-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)"
        ));
        assert!(is_permission_error(
            "iptables-save v1.8.9 (legacy): Cannot initialize: Permission denied (you must be root)"
        ));
        assert!(!is_permission_error(
            "iptables-nft-restore v1.8.9 (nf_tables): Chain 'BOGUS' does not exist"
        ));
    }

    #[test]
    fn payload_lines_are_numbered_from_one() {
        assert_eq!(
            numbered("*nat\nCOMMIT\n"),
            "\npayload:\n   1  *nat\n   2  COMMIT\n"
        );
    }
}
