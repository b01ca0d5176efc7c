//! weft's network-namespace test rig: "pods" made of network namespaces,
//! each with an `eth0` on a bridge that lives in a namespace of its own, with
//! addresses (10.244.0.0/24) that exist only inside the rig.
//!
//! Used by the proxy's tests (iptables redirect, data path) and later by the
//! e2e suites. It needs root and iproute2, iptables and util-linux
//! (`setpriv`); it never touches the host's own namespace, routes or
//! iptables. Everything it makes is named `weft-t-<pid>-<n>-...` and removed
//! when the [`Rig`] is dropped, on panic too; namespaces left by a killed
//! test process are swept by the next rig.
//!
//! Two doors, both opt-in and per pod: [`Pod::forward_to_host`] splices one
//! port of a pod to one host address in user space (no route, no address
//! on the host), and [`Pod::set_hosts`] gives programs started in a pod host
//! names (an `/etc/netns/<ns>/hosts` that `ip netns exec` mounts over
//! `/etc/hosts` for them alone).
//!
//! ```no_run
//! # fn main() -> Result<(), weft_testrig::RigError> {
//! let rig = weft_testrig::Rig::new()?;
//! let client = rig.pod("client")?;
//! let server = rig.pod("server")?;
//! let ping = client.run(&["ping", "-c1", &server.ip().to_string()])?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod capture;
mod error;
mod forward;
mod host;
mod hosts;
mod pod;
mod process;
mod rig;

pub use capture::Capture;
pub use error::RigError;
pub use forward::HostForward;
pub use host::in_path;
pub use pod::Pod;
pub use process::PodProcess;
pub use rig::{PREFIX, Rig, SUBNET};
