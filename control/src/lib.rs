//! weft's control plane, run as one `weft-control` process: identity, which
//! signs the proxies' certificates after checking their ServiceAccount
//! tokens with the API server, and destination, which tells a proxy who is
//! behind an address.
//!
//! Certificate issuance itself is pure and lives in `weft-certs`; this crate
//! adds the parts that talk to the API server and the network.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod admin;
pub mod destination;
pub mod identity;
pub mod serve;
pub mod tls;
