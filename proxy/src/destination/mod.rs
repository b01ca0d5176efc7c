//! The proxy's client of the destination service: for each outbound
//! connection, is a meshed proxy behind the original destination, which
//! identity must it present, is the port opaque, and which workload labels
//! name it in metrics.
//!
//! The proxy subscribes: the first lookup of an address opens
//! `GET /v1/watch?addr=IP:PORT` over HTTPS (the control plane's certificate
//! verified against the mesh trust anchors), many watches multiplexed on
//! one HTTP/2 connection ([`connections`]), and every line destination
//! sends updates the address's entry in the [`cache`] as it arrives
//! ([`watch`], [`lines`]). A lookup that fails is the caller's to count and
//! treat as unmeshed: the connection goes out in plaintext, as without the
//! mesh.

pub mod answer;
pub mod cache;
pub mod connections;
pub mod lines;
pub mod metrics;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;

pub use answer::Resolution;
pub use cache::{Cache, DEFAULT_SETTINGS, LookupFailed, Outcome, Settings};
pub use metrics::WatchMetrics;
pub use watch::{Opening, Subscribe, WatchBody, WatchError};

use crate::tls::control::ControlClient;
use connections::{Connections, MAX_STREAMS_PER_CONNECTION};

/// The watch endpoint.
pub const WATCH_PATH: &str = "/v1/watch";

/// The start of a refusal's body kept for the log.
const ERROR_TEXT: usize = 200;

/// Opens watches on the destination service.
#[derive(Debug)]
pub struct DestinationClient {
    connections: Connections,
}

impl DestinationClient {
    /// Watches through `client` (its timeout bounds connecting and each
    /// watch's response head).
    pub fn new(client: ControlClient) -> Self {
        Self {
            connections: Connections::new(client, MAX_STREAMS_PER_CONNECTION),
        }
    }

    async fn open(&self, addr: SocketAddr) -> Result<WatchBody, WatchError> {
        let (response, slot) = self.connections.get(&watch_path(addr)).await?;
        let status = response.status();
        if !status.is_success() {
            // A refusal is a few bytes of JSON that came with its head.
            let body = connections::error_text(
                response.into_body(),
                ERROR_TEXT,
                std::time::Duration::from_secs(1),
            )
            .await;
            return Err(WatchError::Refused {
                status: status.as_u16(),
                body,
            });
        }
        Ok(connections::hold(response.into_body(), slot))
    }
}

impl Subscribe for DestinationClient {
    fn subscribe(self: Arc<Self>, addr: SocketAddr) -> Opening {
        Box::pin(async move { self.open(addr).await })
    }
}

/// `/v1/watch?addr=...` with the brackets of an IPv6 address escaped.
pub fn watch_path(addr: SocketAddr) -> String {
    let addr = addr.to_string().replace('[', "%5B").replace(']', "%5D");
    format!("{WATCH_PATH}?addr={addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_query_safe() {
        let v4 = SocketAddr::from(([10, 0, 0, 5], 8080));
        assert_eq!(watch_path(v4), "/v1/watch?addr=10.0.0.5:8080");
        let v6: SocketAddr = "[fd00::5]:80".parse().expect("valid");
        assert_eq!(watch_path(v6), "/v1/watch?addr=%5Bfd00::5%5D:80");
    }
}
