//! weft's own binaries for the e2e suites (`weft-control`, `weft-proxy`, ...):
//! a path from an environment variable, else built once per process with
//! `cargo build -p <package> --bin <bin>`, the path taken from cargo's own
//! report so any target folder works.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};

/// One of weft's binaries, and how to find or build it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkspaceBinary {
    /// The cargo package (`weft-control`).
    pub package: &'static str,
    /// The binary target (`weft-control`).
    pub bin: &'static str,
    /// A variable that, when set, names a ready binary instead
    /// (`WEFT_CONTROL_BIN`).
    pub env: &'static str,
}

/// The cargo profile a binary is built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `cargo build` (what the tests run: quick to build).
    Debug,
    /// `cargo build --release` (what a benchmark measures).
    Release,
}

/// `weft-injector` (the webhook); `$WEFT_INJECTOR_BIN` overrides.
pub const WEFT_INJECTOR: WorkspaceBinary = WorkspaceBinary {
    package: "weft-injector",
    bin: "weft-injector",
    env: "WEFT_INJECTOR_BIN",
};

/// `weft-control` (identity and destination); `$WEFT_CONTROL_BIN` overrides.
pub const WEFT_CONTROL: WorkspaceBinary = WorkspaceBinary {
    package: "weft-control",
    bin: "weft-control",
    env: "WEFT_CONTROL_BIN",
};

/// `weft-proxy` (the sidecar); `$WEFT_PROXY_BIN` overrides.
pub const WEFT_PROXY: WorkspaceBinary = WorkspaceBinary {
    package: "weft-proxy",
    bin: "weft-proxy",
    env: "WEFT_PROXY_BIN",
};

/// `weft` (the CLI); `$WEFT_CLI_BIN` overrides.
pub const WEFT_CLI: WorkspaceBinary = WorkspaceBinary {
    package: "weft-cli",
    bin: "weft",
    env: "WEFT_CLI_BIN",
};

type Built = std::result::Result<PathBuf, String>;

impl WorkspaceBinary {
    /// The binary's path: the override, else a build (once per process and
    /// profile; later calls reuse the first answer, failures included).
    pub fn path(self, profile: Profile) -> Result<PathBuf> {
        if let Some(path) = std::env::var_os(self.env) {
            return Ok(PathBuf::from(path));
        }
        static BUILT: OnceLock<Mutex<HashMap<(WorkspaceBinary, bool), Built>>> = OnceLock::new();
        let release = profile == Profile::Release;
        // The lock is held across the build: two tests asking for the same
        // binary wait for one cargo run rather than start two.
        let mut built = BUILT
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        built
            .entry((self, release))
            .or_insert_with(|| self.build(profile).map_err(|e| e.to_string()))
            .clone()
            .map_err(|reason| Error::BuildBinary {
                bin: self.bin,
                reason,
            })
    }

    fn build(self, profile: Profile) -> Result<PathBuf> {
        let failed = |reason: String| Error::BuildBinary {
            bin: self.bin,
            reason,
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = std::process::Command::new(cargo);
        command.current_dir(crate::bins::workspace_root()).args([
            "build",
            "-p",
            self.package,
            "--bin",
            self.bin,
            "--message-format=json-render-diagnostics",
        ]);
        if profile == Profile::Release {
            command.arg("--release");
        }
        // Run from `cargo test` or `cargo run`, this process carries the
        // variables cargo sets for a crate (CARGO_PKG_NAME, OUT_DIR, ...).
        // Build scripts such as ring's rerun when those change, so passing
        // them on would rebuild half the dependency tree on every switch
        // between a plain `cargo build` and a test or `make demo`.
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(is_crate_variable) {
                command.env_remove(&key);
            }
        }
        let output = command
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| failed(format!("running cargo: {e}")))?;
        if !output.status.success() {
            return Err(failed(format!("cargo exited with {}", output.status)));
        }
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == self.bin)
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .ok_or_else(|| failed("cargo reported no executable".to_owned()))
    }
}

/// Whether `name` is one of the variables cargo sets for a crate it builds,
/// runs or tests, as opposed to one that configures cargo itself.
fn is_crate_variable(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    EXACT.contains(&name) || name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_BIN_EXE_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_is_used_as_is() {
        let fake = WorkspaceBinary {
            package: "weft-no-such-package",
            bin: "weft-no-such-bin",
            env: "PATH",
        };
        // PATH is always set, so no build is attempted.
        let path = fake.path(Profile::Debug).expect("override");
        assert_eq!(path, PathBuf::from(std::env::var_os("PATH").expect("PATH")));
    }

    #[test]
    fn crate_variables_are_told_from_cargo_settings() {
        for name in [
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION",
            "CARGO_MANIFEST_DIR",
            "OUT_DIR",
            "CARGO_BIN_EXE_weft-e2e",
        ] {
            assert!(is_crate_variable(name), "{name}");
        }
        for name in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO",
            "PATH",
            "RUSTFLAGS",
        ] {
            assert!(!is_crate_variable(name), "{name}");
        }
    }
}
