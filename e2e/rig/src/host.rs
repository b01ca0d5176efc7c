//! What the rig needs from the machine (root, iproute2, iptables, setpriv)
//! and how it runs those tools: each call is checked, and a failure carries
//! the command line and its stderr.

use std::env;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use crate::error::RigError;

/// Programs the rig or its users run; checked once when a rig is built.
const TOOLS: [&str; 4] = ["ip", "iptables", "iptables-save", "setpriv"];

/// True when `tool` is an executable file in a `PATH` directory.
pub fn in_path(tool: &str) -> bool {
    let Some(path) = env::var_os("PATH") else {
        return false;
    };
    env::split_paths(&path).any(|dir| is_executable(&dir.join(tool)))
}

fn is_executable(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    file.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Fails with the install hint when a tool is missing, or when not root.
pub fn check() -> Result<(), RigError> {
    if let Some(tool) = TOOLS.into_iter().find(|t| !in_path(t)) {
        return Err(RigError::MissingTool { tool });
    }
    if !rustix::process::geteuid().is_root() {
        return Err(RigError::NotRoot);
    }
    Ok(())
}

/// The command line as a person would type it, for error messages.
pub fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(
        cmd.get_args()
            .map(|a: &OsStr| a.to_string_lossy().into_owned()),
    );
    words.join(" ")
}

/// Runs `cmd` to completion; its output when it exits 0, else an error.
pub fn output(cmd: &mut Command) -> Result<Output, RigError> {
    let out = cmd.output().map_err(|source| RigError::Spawn {
        command: describe(cmd),
        source,
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(RigError::Command {
            command: describe(cmd),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
        })
    }
}

/// Runs `ip` with `args`; its stdout when it succeeds.
pub fn ip(args: &[&str]) -> Result<String, RigError> {
    let out = output(Command::new("ip").args(args))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_in_path_and_not_others() {
        // `sh` is required by POSIX; the other name cannot exist.
        assert!(in_path("sh"));
        assert!(!in_path("weft-no-such-tool-7f3a"));
    }

    #[test]
    fn failures_carry_the_command_and_stderr() {
        let err = output(Command::new("sh").args(["-c", "echo boom >&2; exit 3"]));
        match err {
            Err(RigError::Command {
                command, stderr, ..
            }) => {
                assert_eq!(command, "sh -c echo boom >&2; exit 3");
                assert_eq!(stderr, "boom");
            }
            other => panic!("expected a command error, got {other:?}"),
        }
    }
}
