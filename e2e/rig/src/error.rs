//! The rig's one error type: every failure names the command or file
//! involved, and missing tools or privileges say how to get them.

use std::{fmt, io};

/// A failure to build, use or tear down the rig.
#[derive(thiserror::Error)]
pub enum RigError {
    /// A program the rig runs is not installed.
    #[error(
        "`{tool}` not found in PATH: the test rig needs iproute2, iptables and util-linux \
         (Debian/Ubuntu: `apt-get install -y iproute2 iptables util-linux`)"
    )]
    MissingTool {
        /// The program looked for.
        tool: &'static str,
    },

    /// The rig creates network namespaces, which only root can do.
    #[error(
        "the test rig needs root (it creates network namespaces and iptables rules); \
         run the tests as root (CI does), or set WEFT_SKIP_ROOT_TESTS=1 to skip them"
    )]
    NotRoot,

    /// A pod name the rig cannot use in namespace and interface names.
    #[error("pod name `{0}` must be 1 to 20 characters of a-z, 0-9 and `-`")]
    BadPodName(String),

    /// Two pods with one name in the same rig.
    #[error("the rig already has a pod named `{0}`")]
    DuplicatePod(String),

    /// The rig's /24 has no address left.
    #[error("the rig has no address left (at most 253 pods)")]
    Full,

    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },

    /// A command could not be started.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: io::Error,
    },

    /// A socket or file operation of the rig failed.
    #[error("{what}: {source}")]
    Io {
        /// What the rig was doing, with the address or path.
        what: String,
        /// Why.
        source: io::Error,
    },

    /// tcpdump is not installed (only captures need it).
    #[error(
        "`tcpdump` not found in PATH: the capture needs it (Debian/Ubuntu: `apt-get install -y tcpdump`)"
    )]
    NoTcpdump,

    /// A capture's tcpdump misbehaved.
    #[error("tcpdump {0}")]
    Capture(&'static str),

    /// A thread could not enter a pod's network namespace.
    #[error("could not enter network namespace `{netns}`: {source}")]
    Enter {
        /// The namespace.
        netns: String,
        /// Why.
        source: io::Error,
    },
}

// Tests return `Result<(), RigError>` and the test harness prints the error
// with `Debug`; the message (with its install or root hint) is what a
// developer needs to read there, not the variant's fields.
impl fmt::Debug for RigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
