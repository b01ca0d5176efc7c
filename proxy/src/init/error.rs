//! What can go wrong in `weft-proxy init`, and the exit code of each case.
//!
//! The codes are a contract (docs/architecture.md, "Exit codes"): a kubelet
//! event shows only the code and the tail of the log, so each failure an
//! operator can fix has its own.

use std::io;

use super::apply::Mode;

/// A failure of `weft-proxy init`; the message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The flags contradict each other.
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),

    /// The iptables tool of the chosen backend is not installed.
    #[error(
        "`{tool}` not found in PATH (--mode={mode}): install iptables \
         (Debian/Ubuntu: `apt-get install -y iptables`, Alpine: `apk add iptables`), \
         or pick the other backend with --mode=nft|legacy"
    )]
    ToolMissing {
        /// The program that was looked for.
        tool: &'static str,
        /// The backend the flags chose.
        mode: Mode,
    },

    /// The kernel refused: not root, or no NET_ADMIN in this namespace.
    #[error(
        "`{tool}` was denied permission: weft-proxy init must run as root with the \
         NET_ADMIN and NET_RAW capabilities in the pod's network namespace \
         (the injector grants them to the weft-init container)\n{stderr}"
    )]
    PermissionDenied {
        /// The program that failed.
        tool: &'static str,
        /// What it printed.
        stderr: String,
    },

    /// The tool ran and failed for another reason (rules rejected, missing
    /// kernel module).
    #[error("`{tool}` failed ({status}):\n{stderr}{context}")]
    Failed {
        /// The program that failed.
        tool: &'static str,
        /// Its exit status.
        status: String,
        /// What it printed.
        stderr: String,
        /// The payload with line numbers, so "Error occurred at line: N"
        /// can be read against it; empty when there was no payload.
        context: String,
    },

    /// The tool exists but could not be started.
    #[error("could not run `{tool}`: {source}")]
    Spawn {
        /// The program that failed to start.
        tool: &'static str,
        /// Why.
        source: io::Error,
    },

    /// Writing our own output failed (a closed stdout).
    #[error("could not write output: {0}")]
    Output(#[from] io::Error),
}

impl InitError {
    /// The process exit code documented for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            InitError::Output(_) | InitError::Spawn { .. } => 1,
            InitError::InvalidArgs(_) => 2,
            InitError::ToolMissing { .. } => 3,
            InitError::PermissionDenied { .. } => 4,
            InitError::Failed { .. } => 5,
        }
    }
}
