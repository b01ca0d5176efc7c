//! weft's sidecar proxy: `init` installs the iptables redirect in the pod's
//! network namespace, `run` is the transparent inbound/outbound proxy, and
//! `await` waits for it to be ready. Between two meshed pods `run` speaks
//! mutual TLS: [`identity`] keeps the proxy certified, [`tls`] verifies
//! peers and carries the bytes, [`destination`] says who is meshed and
//! which endpoints a Service has, and [`balance`] spreads requests over
//! them.
#![forbid(unsafe_code)]
pub mod await_ready;
pub mod balance;
pub mod destination;
pub mod identity;
pub mod init;
pub mod orig_dst;
pub mod run;
pub mod tls;
