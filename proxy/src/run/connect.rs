//! Opening the upstream TCP connection, started as soon as a connection is
//! accepted so that a server that speaks first is heard during detection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::TcpStream;

/// A connection attempt in flight.
pub type Connecting = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

/// Where the upstream TCP connection stands.
pub enum Dial {
    /// The handshake has not finished yet.
    Connecting(Connecting),
    /// Connected.
    Connected(TcpStream),
    /// The attempt failed (refused, unreachable, timed out).
    Failed(io::Error),
}

impl Dial {
    /// Starts connecting to `target`.
    pub fn start(target: SocketAddr, timeout: Duration) -> Self {
        Self::Connecting(Box::pin(connect(target, timeout)))
    }

    /// Waits for the attempt to finish.
    pub async fn finish(self) -> io::Result<TcpStream> {
        match self {
            Self::Connecting(connecting) => connecting.await,
            Self::Connected(stream) => Ok(stream),
            Self::Failed(e) => Err(e),
        }
    }
}

/// Connects to `target` within `timeout`, with Nagle off (the proxy forwards
/// whatever it has at once; batching is the endpoints' choice).
pub async fn connect(target: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}
