//! weft's sidecar proxy: `init` installs the iptables redirect in the pod's
//! network namespace, `run` is the transparent inbound/outbound proxy, and
//! `await` waits for it to be ready. mTLS and tap come in later issues.
#![forbid(unsafe_code)]
pub mod await_ready;
pub mod init;
pub mod orig_dst;
pub mod run;
