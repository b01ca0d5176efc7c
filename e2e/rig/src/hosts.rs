//! Host names inside a pod: a `hosts` file that programs started in the pod
//! see as `/etc/hosts`, as a cluster's DNS would answer them.
//!
//! `ip netns exec NAME` bind-mounts each file of `/etc/netns/NAME/` over its
//! namesake in `/etc/`, in the mount namespace of the program it starts
//! (iproute2's convention for namespace-unaware programs). So the host's
//! own `/etc/hosts` is never changed; the folder is the rig's, named after
//! the pod's namespace, and removed with it.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::error::RigError;
use crate::pod::Pod;

/// Where `ip netns exec` looks for a namespace's own `/etc` files.
pub(crate) const NETNS_ETC: &str = "/etc/netns";

/// The lines every pod keeps, as a container runtime writes them.
const LOOPBACK: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

impl Pod<'_> {
    /// Makes `names` resolve, for programs started in this pod from now on
    /// ([`Pod::command`], [`Pod::command_as`]), to the addresses given, by
    /// writing the pod's `hosts` file (replacing an earlier one). Sockets
    /// made with [`Pod::in_netns`] do not resolve through it.
    pub fn set_hosts(&self, names: &[(IpAddr, &str)]) -> Result<PathBuf, RigError> {
        let dir = PathBuf::from(NETNS_ETC).join(self.netns());
        let file = dir.join("hosts");
        let mut text = LOOPBACK.to_owned();
        for (ip, name) in names {
            // Writing to a String cannot fail.
            let _ = writeln!(text, "{ip}\t{name}");
        }
        let io_err = |what: &str, path: &PathBuf| {
            let what = format!("{what} {}", path.display());
            move |source| RigError::Io { what, source }
        };
        // Written aside and renamed: a program starting meanwhile sees the
        // old file or the new one, never half of one.
        let aside = dir.join(".hosts.new");
        let mut attempts = 0;
        loop {
            attempts += 1;
            let written = std::fs::create_dir_all(&dir)
                .map_err(io_err("creating", &dir))
                .and_then(|()| std::fs::write(&aside, &text).map_err(io_err("writing", &aside)));
            match written {
                // Another rig's teardown removed the empty parent between
                // our mkdir calls: make it again.
                Err(RigError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempts < 3 => {}
                other => {
                    other?;
                    break;
                }
            }
        }
        std::fs::rename(&aside, &file).map_err(io_err("replacing", &file))?;
        Ok(file)
    }
}
