//! What the proxy knows about one accepted connection.
//!
//! Each layer of the connection path (accept, detection, HTTP or TCP
//! forwarding) reads this context; mesh TLS ([`crate::tls::mesh`]) fills in
//! `tls`, `peer_identity` and `peer_labels` before the application protocol
//! is served; tap will read it for its events.

use std::net::SocketAddr;

use crate::tls::labels::PeerLabels;

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
    /// Mesh TLS between two weft proxies.
    Mesh,
}

impl TlsStatus {
    /// The `tls` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "false",
            Self::Passthrough => "passthrough",
            Self::Mesh => "true",
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
    /// The peer's mesh identity (SPIFFE ID): the verified client inbound,
    /// the identity demanded of the server outbound.
    pub peer_identity: Option<String>,
    /// The peer's metric labels (`client_id`/`server_id`, `dst_*`), capped.
    pub peer_labels: PeerLabels,
}
