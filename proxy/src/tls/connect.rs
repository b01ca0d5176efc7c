//! Outbound mesh TLS: the handshake on a freshly connected TCP stream to a
//! meshed peer, asking for the identity destination announced.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use weft_certs::SpiffeId;

use super::MESH_ALPN;
use super::metrics::MeshMetrics;

/// How to open mesh TLS to one peer identity.
#[derive(Clone)]
pub struct MeshConnect {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    identity: Arc<SpiffeId>,
    timeout: Duration,
    metrics: Arc<MeshMetrics>,
}

impl std::fmt::Debug for MeshConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshConnect")
            .field("identity", &self.identity.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl MeshConnect {
    /// Mesh TLS to the peer that must present `identity` (already written
    /// as `server_name`).
    pub fn new(
        config: Arc<ClientConfig>,
        identity: Arc<SpiffeId>,
        server_name: ServerName<'static>,
        timeout: Duration,
        metrics: Arc<MeshMetrics>,
    ) -> Self {
        Self {
            config,
            server_name,
            identity,
            timeout,
            metrics,
        }
    }

    /// The identity the peer must present.
    pub fn identity(&self) -> &SpiffeId {
        &self.identity
    }

    /// Runs the handshake on `tcp`; a refused certificate, a peer that does
    /// not speak mesh TLS, or a handshake over the timeout is an error.
    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let connector = TlsConnector::from(self.config.clone());
        let connecting = connector.connect(self.server_name.clone(), tcp);
        let result = match tokio::time::timeout(self.timeout, connecting).await {
            Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(MESH_ALPN) => Ok(tls),
            Ok(Ok(_)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the peer did not agree to mesh TLS (no weft/1 ALPN)",
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "mesh TLS handshake timed out",
            )),
        };
        result.map_err(|e| {
            self.metrics.handshake_failed_outbound();
            tracing::info!(peer = %self.identity, error = %e, "mesh TLS handshake failed");
            io::Error::new(
                e.kind(),
                format!("mesh TLS to {} failed: {e}", self.identity),
            )
        })
    }
}
