//! Mesh TLS between proxies (docs/architecture.md, "Mesh TLS").
//!
//! TLS 1.3 only, ring as the crypto provider, ALPN [`MESH_ALPN`] on both
//! sides. The outbound proxy names the identity destination announced in
//! its SNI ([`peer::server_name`]) and accepts only a server certificate
//! that chains to the trust anchors *and* carries exactly that SPIFFE ID
//! ([`verify::MeshServerVerifier`]); the inbound proxy asks every mesh
//! client for a certificate, checks its chain and records its SPIFFE ID
//! ([`verify::MeshClientVerifier`]). A ClientHello without the mesh ALPN is
//! the application's own TLS and passes through untouched ([`accept`]).
//!
//! The control-plane client ([`control`]) uses the same anchors to verify
//! identity and destination. What this module leaves to others: the proxy's
//! own certificate ([`crate::identity`]) and who is meshed
//! ([`crate::destination`]).

pub mod accept;
pub mod anchors;
pub mod config;
pub mod connect;
pub mod control;
pub mod io;
pub mod labels;
pub mod mesh;
pub mod metrics;
pub mod peer;
pub mod verify;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use anchors::TrustAnchors;
pub use mesh::Mesh;

/// The ALPN protocol that marks a connection as mesh TLS between two weft
/// proxies; the application protocol inside is detected as on plaintext.
pub const MESH_ALPN: &[u8] = b"weft/1";

/// The crypto provider of every TLS endpoint in the proxy.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The trust anchor bundle holds no certificate.
    #[error("no PEM CERTIFICATE block in the trust anchors")]
    NoAnchors,
    /// A trust anchor could not be read or used.
    #[error("trust anchor {index} is not usable: {reason}")]
    BadAnchor {
        /// Its position in the bundle, from 1.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A control-plane address has no usable host name for TLS.
    #[error("{addr:?} cannot be verified over TLS: {reason}")]
    BadServerName {
        /// The `host:port` address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("rustls refused the configuration: {0}")]
    Rustls(#[from] rustls::Error),
}
