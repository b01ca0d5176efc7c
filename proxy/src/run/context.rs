//! What the proxy knows about one accepted connection.
//!
//! Each layer of the connection path (accept, detection, HTTP or TCP
//! forwarding) reads this context; mTLS (issue 5) fills in `tls` and
//! `peer_identity` at accept time and tap (issue 6) reads it for its events,
//! so neither needs a new plumbing path.

use std::net::SocketAddr;

/// Which side of the pod a connection belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From another workload to this pod's application.
    Inbound,
    /// From this pod's application to elsewhere.
    Outbound,
}

impl Direction {
    /// The `direction` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// TLS on a proxied connection, as the `tls` metric label reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsStatus {
    /// Plaintext between the proxy and its peer.
    None,
    /// The application's own TLS, forwarded untouched.
    Passthrough,
}

impl TlsStatus {
    /// The `tls` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "false",
            Self::Passthrough => "passthrough",
        }
    }
}

/// The application protocol detected (or configured) on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.0 or HTTP/1.1.
    Http1,
    /// HTTP/2 with prior knowledge (gRPC).
    Http2,
    /// The application's TLS: forwarded as opaque bytes.
    Tls,
    /// Anything else, or an opaque port: forwarded byte for byte.
    Opaque,
}

/// One accepted connection, as every layer below the listener sees it.
#[derive(Clone, Debug)]
pub struct ConnContext {
    /// Inbound or outbound.
    pub direction: Direction,
    /// The peer that connected to the proxy.
    pub client: SocketAddr,
    /// The address the client dialled (`SO_ORIGINAL_DST`, or the fixed target).
    pub orig_dst: SocketAddr,
    /// Where the proxy connects on the client's behalf.
    pub target: SocketAddr,
    /// TLS status; the application's own TLS is marked once detected.
    pub tls: TlsStatus,
    /// The peer's mesh identity, once mTLS (issue 5) establishes one.
    pub peer_identity: Option<String>,
}
