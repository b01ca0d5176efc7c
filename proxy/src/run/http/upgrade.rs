//! Upgraded connections (WebSocket, HTTP/1 CONNECT): once both sides have
//! switched protocols, the two connections are spliced byte for byte.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::super::drain::Drain;

/// How a request asked to leave HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpgradeKind {
    /// `Connection: upgrade` with this `Upgrade` value; done on a 101.
    Protocol(http::HeaderValue),
    /// `CONNECT`; done on a 2xx.
    Connect,
}

impl UpgradeKind {
    /// Whether the upstream's answer with `status` completes the switch.
    pub fn accepted_by(&self, status: http::StatusCode) -> bool {
        match self {
            Self::Protocol(_) => status == http::StatusCode::SWITCHING_PROTOCOLS,
            Self::Connect => status.is_success(),
        }
    }
}

/// Splices the client's and the server's upgraded connections once both
/// upgrades complete; the task is tracked so a drain waits for it.
pub fn splice(drain: &Drain, client: OnUpgrade, server: OnUpgrade) {
    drain.spawn(async move {
        let (client, server) = match tokio::try_join!(client, server) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut server = TokioIo::new(server);
        match tokio::io::copy_bidirectional(&mut client, &mut server).await {
            Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
            Err(e) => tracing::debug!(error = %e, "upgraded connection failed"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, StatusCode};

    #[test]
    fn switch_statuses() {
        let ws = UpgradeKind::Protocol(HeaderValue::from_static("websocket"));
        assert!(ws.accepted_by(StatusCode::SWITCHING_PROTOCOLS));
        assert!(!ws.accepted_by(StatusCode::OK));
        assert!(UpgradeKind::Connect.accepted_by(StatusCode::OK));
        assert!(!UpgradeKind::Connect.accepted_by(StatusCode::FORBIDDEN));
    }
}
