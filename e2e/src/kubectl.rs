//! `kubectl` as a test uses it: the binary built with the cluster, pointed at
//! the cluster's kubeconfig, with stdout and stderr (where kubectl prints
//! admission warnings) kept apart.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::error::{Error, Result};

/// A `kubectl` bound to one cluster.
#[derive(Debug, Clone)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

/// What a successful `kubectl` run printed.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    /// Standard output (the objects, for `-o yaml`/`-o json`).
    pub stdout: String,
    /// Standard error (warnings such as `Warning: weft: ...`).
    pub stderr: String,
}

impl Kubectl {
    /// A kubectl running `bin` against the cluster in `kubeconfig`.
    pub fn new(bin: &Path, kubeconfig: &Path) -> Self {
        Kubectl {
            bin: bin.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    /// The kubectl binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A command with `--kubeconfig` set, for cases `run` does not cover.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .kill_on_drop(true)
            .stdin(Stdio::null());
        c
    }

    /// Runs `kubectl ARGS`; an error carries stderr when it exits non-zero.
    pub async fn run(&self, args: &[&str]) -> Result<KubectlOutput> {
        self.run_with_stdin(args, None).await
    }

    /// Runs `kubectl ARGS` with `input` on stdin (for `apply -f -`, `create -f -`).
    pub async fn run_stdin(&self, args: &[&str], input: &str) -> Result<KubectlOutput> {
        self.run_with_stdin(args, Some(input)).await
    }

    async fn run_with_stdin(&self, args: &[&str], input: Option<&str>) -> Result<KubectlOutput> {
        let mut command = self.command();
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if input.is_some() {
            command.stdin(Stdio::piped());
        }
        let context = format!("running kubectl {}", args.join(" "));
        let mut child = command.spawn().map_err(Error::io(context.clone()))?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(text.as_bytes())
                .await
                .map_err(Error::io(context.clone()))?;
            // Dropping stdin closes it, so kubectl sees the end of its input.
        }
        let output = child.wait_with_output().await.map_err(Error::io(context))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(Error::Kubectl {
                args: args.join(" "),
                status: output.status,
                stderr,
            });
        }
        Ok(KubectlOutput { stdout, stderr })
    }
}
