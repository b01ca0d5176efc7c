//! The inbound and outbound listeners: accept, find where the connection was
//! going, and spawn its handler as a task the drain waits for.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::Shared;
use super::config::Target;
use super::conn;
use super::context::{ConnContext, Direction, TlsStatus};
use crate::orig_dst;
use crate::tls::labels::PeerLabels;

/// Accepts connections until the drain is signalled.
pub async fn serve(
    listener: TcpListener,
    direction: Direction,
    target: Target,
    shared: Arc<Shared>,
) {
    loop {
        let accepted = tokio::select! {
            () = shared.drain.signaled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of
                // spinning, the condition usually clears as connections close.
                tracing::warn!(direction = direction.as_str(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let orig_dst = match destination(&stream, target) {
            Ok(dst) => dst,
            Err(e) => {
                tracing::warn!(direction = direction.as_str(), %client, error = %e, "no original destination; closing");
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        // Inbound goes to the address the client dialled (the pod IP and the
        // app's port), not to 127.0.0.1: the app sees the same reachability
        // as without the mesh, and a port it bound only to loopback stays
        // private (docs/architecture.md, "Where the proxy connects").
        let ctx = ConnContext {
            direction,
            client,
            orig_dst,
            target: orig_dst,
            tls: TlsStatus::None,
            peer_identity: None,
            peer_labels: PeerLabels::none(),
        };
        shared
            .drain
            .spawn(conn::handle(stream, ctx, shared.clone()));
    }
}

/// Where `stream` was going: the fixed target, or `SO_ORIGINAL_DST`.
fn destination(stream: &TcpStream, target: Target) -> io::Result<SocketAddr> {
    match target {
        Target::Fixed(addr) => Ok(addr),
        Target::OrigDst => {
            let dst = orig_dst::original_dst(stream)?;
            // Not redirected (someone dialled the proxy port itself):
            // forwarding to the original destination would loop to us.
            if dst == stream.local_addr()? {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "connection was not redirected to the proxy",
                ));
            }
            Ok(dst)
        }
    }
}
