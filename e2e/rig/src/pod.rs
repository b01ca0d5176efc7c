//! A "pod": a network namespace with loopback up and an `eth0` on the rig's
//! bridge. Commands, long-running processes and in-process sockets can all
//! be placed in it.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::thread;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use crate::error::RigError;
use crate::host;
use crate::process::PodProcess;

/// Where iproute2 keeps named network namespaces.
const NETNS_DIR: &str = "/run/netns";

/// The bridge-side veth of the pod with host octet `host`: unique in the
/// bridge namespace and within the 15-byte interface name limit.
pub(crate) fn bridge_port_name(host: u8) -> String {
    format!("v{host}")
}

/// One pod of a [`crate::Rig`]; it lives as long as the rig does.
#[derive(Debug, Clone)]
pub struct Pod<'rig> {
    pub(crate) name: String,
    pub(crate) netns: String,
    pub(crate) ip: Ipv4Addr,
    // Ties the handle to the rig: a pod cannot be used after teardown.
    pub(crate) _rig: std::marker::PhantomData<&'rig ()>,
}

impl Pod<'_> {
    /// The name given to [`crate::Rig::pod`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The network namespace's name, as `ip netns` knows it.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The pod's address on the rig's bridge (its "pod IP").
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The bridge-side end of the pod's `eth0`, in the bridge's namespace
    /// ([`crate::Rig::bridge_netns`]): a capture there sees exactly what the
    /// pod sends and receives on the "network".
    pub fn bridge_port(&self) -> String {
        bridge_port_name(self.ip.octets()[3])
    }

    /// `program` ready to run as root inside the pod (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, program]);
        cmd
    }

    /// `program` ready to run inside the pod as `uid` (and group `uid`, no
    /// supplementary groups), as a container with `runAsUser` would.
    pub fn command_as(&self, uid: u32, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, "setpriv"])
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .args(["--clear-groups", "--", program]);
        cmd
    }

    /// Runs `args` as root in the pod and returns its stdout; fails on a
    /// non-zero exit with its stderr.
    pub fn run(&self, args: &[&str]) -> Result<String, RigError> {
        let (program, rest) = args.split_first().ok_or_else(|| RigError::Command {
            command: String::new(),
            status: "not run".to_owned(),
            stderr: "empty command".to_owned(),
        })?;
        let out = host::output(self.command(program).args(rest).stdin(Stdio::null()))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `cmd` (from [`Pod::command`] or [`Pod::command_as`]) and keeps
    /// it running until the handle is dropped or the rig is torn down.
    pub fn spawn(&self, mut cmd: Command) -> Result<PodProcess, RigError> {
        let label = host::describe(&cmd);
        let child = cmd.spawn().map_err(|source| RigError::Spawn {
            command: label.clone(),
            source,
        })?;
        Ok(PodProcess::new(child, label))
    }

    /// Runs `f` on a thread that has entered the pod's network namespace.
    ///
    /// Sockets created by `f` belong to the pod for their whole life, even
    /// once returned to the caller's thread: this is how a test puts a Rust
    /// listener or client in a pod without a helper binary. They are created
    /// as the test's own user (root).
    pub fn in_netns<R, F>(&self, f: F) -> Result<R, RigError>
    where
        R: Send,
        F: FnOnce() -> R + Send,
    {
        let path = format!("{NETNS_DIR}/{}", self.netns);
        let enter_err = |source: std::io::Error| RigError::Enter {
            netns: self.netns.clone(),
            source,
        };
        let ns = File::open(&path).map_err(enter_err)?;
        let joined = thread::scope(|s| {
            s.spawn(|| {
                // setns(2) moves only this thread, which ends with `f`.
                move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
                    .map_err(|e| enter_err(e.into()))?;
                Ok(f())
            })
            .join()
        });
        match joined {
            Ok(result) => result,
            // Let the test see the closure's own panic message.
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
