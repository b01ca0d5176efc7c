//! Inbound mesh TLS: tell a mesh ClientHello (ALPN `weft/1`) from the
//! application's own TLS, and terminate the former.
//!
//! Detection has seen the first bytes of a TLS record; here the rest of the
//! ClientHello is read (bounded in size and time) and parsed by rustls's
//! `Acceptor`. A mesh hello continues into the handshake on the same parsed
//! state; anything else — another ALPN, no ALPN, a hello rustls cannot
//! parse, a client that stalls — is handed back with every byte read, to be
//! forwarded untouched as before.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls::ServerConfig;
use rustls::server::{Accepted, Acceptor};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::StartHandshake;
use tokio_rustls::server::TlsStream;
use weft_certs::SpiffeId;

use super::MESH_ALPN;
use super::peer::{self, PeerIdError};

/// The most bytes read while looking for the end of a ClientHello: one
/// full TLS record and its header.
pub const MAX_HELLO_BYTES: usize = 16 * 1024 + 5;

/// What the first TLS record of a connection turned out to be.
pub enum Hello {
    /// A mesh ClientHello, parsed and ready for the handshake.
    Mesh(Box<Accepted>),
    /// Anything else: the application's TLS, or not TLS at all.
    Other,
}

/// Reads the rest of the ClientHello that begins with `prefix`.
///
/// Returns the verdict and every byte read so far (`prefix` included), to
/// replay when the connection is not mesh TLS.
pub async fn read_client_hello(
    stream: &mut TcpStream,
    prefix: Bytes,
    timeout: Duration,
) -> io::Result<(Hello, Bytes)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut acceptor = Acceptor::default();
    let mut seen = BytesMut::from(&prefix[..]);
    let mut fed = 0;
    loop {
        while fed < seen.len() {
            let mut unread = &seen[fed..];
            match acceptor.read_tls(&mut unread) {
                Ok(n) if n > 0 => fed += n,
                _ => return Ok((Hello::Other, seen.freeze())),
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let mesh = accepted
                    .client_hello()
                    .alpn()
                    .is_some_and(|mut protocols| protocols.any(|p| p == MESH_ALPN));
                let hello = if mesh {
                    Hello::Mesh(Box::new(accepted))
                } else {
                    Hello::Other
                };
                return Ok((hello, seen.freeze()));
            }
            Ok(None) => {}
            Err(_) => return Ok((Hello::Other, seen.freeze())),
        }
        if seen.len() >= MAX_HELLO_BYTES {
            return Ok((Hello::Other, seen.freeze()));
        }
        seen.reserve(MAX_HELLO_BYTES - seen.len());
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut seen)).await {
            Ok(Ok(0)) | Err(_) => return Ok((Hello::Other, seen.freeze())),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// Why an inbound mesh handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The handshake failed (bad certificate, protocol error, I/O).
    #[error("mesh TLS handshake failed: {0}")]
    Handshake(#[source] io::Error),
    /// The handshake did not finish in time.
    #[error("mesh TLS handshake timed out after {0:?}")]
    Timeout(Duration),
    /// The verified client certificate names no usable identity.
    #[error("mesh client identity: {0}")]
    Identity(#[source] PeerIdError),
}

/// Completes the handshake of a mesh hello and returns the stream and the
/// client's verified identity.
pub async fn handshake(
    accepted: Accepted,
    stream: TcpStream,
    config: Arc<ServerConfig>,
    trust_domain: &str,
    timeout: Duration,
) -> Result<(TlsStream<TcpStream>, SpiffeId), AcceptError> {
    let start = StartHandshake::from_parts(accepted, stream);
    let tls = tokio::time::timeout(timeout, start.into_stream(config))
        .await
        .map_err(|_| AcceptError::Timeout(timeout))?
        .map_err(AcceptError::Handshake)?;
    // The verifier already required one SPIFFE ID of the trust domain;
    // reading it again here names the client for metrics and tap.
    let identity = match tls.get_ref().1.peer_certificates() {
        Some([leaf, ..]) => peer::spiffe_id(leaf, trust_domain).map_err(AcceptError::Identity)?,
        _ => return Err(AcceptError::Identity(PeerIdError::Missing)),
    };
    Ok((tls, identity))
}
