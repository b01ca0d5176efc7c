//! Opening the upstream connection, started as soon as a connection is
//! accepted so that a server that speaks first is heard during detection.
//!
//! A [`Connector`] knows where to go and whether to open mesh TLS there
//! (outbound to a meshed peer); what it dials is an [`UpstreamIo`], so the
//! layers above handle plaintext and mesh TLS alike.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::tls::connect::MeshConnect;
pub use crate::tls::io::UpstreamIo;

/// A connection attempt in flight.
pub type Connecting = Pin<Box<dyn Future<Output = io::Result<UpstreamIo>> + Send>>;

/// Where the upstream connection stands.
pub enum Dial {
    /// Not started: the client must prove who it is first (inbound with
    /// `require-identity`), so the application sees no connection from a
    /// client that is then refused.
    Deferred(Connector),
    /// The handshake has not finished yet.
    Connecting(Connecting),
    /// Connected.
    Connected(UpstreamIo),
    /// The attempt failed (refused, unreachable, timed out, TLS refused).
    Failed(io::Error),
}

impl Dial {
    /// Starts connecting to `target` in plaintext.
    pub fn start(target: SocketAddr, timeout: Duration) -> Self {
        Connector::new(target, timeout, None).dial()
    }

    /// Starts a deferred attempt; any other state is returned as it is.
    pub fn started(self) -> Self {
        match self {
            Self::Deferred(connector) => connector.dial(),
            other => other,
        }
    }

    /// Waits for the attempt to finish (starting a deferred one).
    pub async fn finish(self) -> io::Result<UpstreamIo> {
        match self.started() {
            Self::Deferred(_) => Err(io::Error::other("a deferred dial did not start")),
            Self::Connecting(connecting) => connecting.await,
            Self::Connected(stream) => Ok(stream),
            Self::Failed(e) => Err(e),
        }
    }
}

/// How to open one connection's upstream, as often as it needs.
#[derive(Clone, Debug)]
pub struct Connector {
    target: SocketAddr,
    timeout: Duration,
    tls: Option<MeshConnect>,
}

impl Connector {
    /// Connects to `target` within `timeout` (TCP), then opens mesh TLS
    /// when `tls` says so.
    pub fn new(target: SocketAddr, timeout: Duration, tls: Option<MeshConnect>) -> Self {
        Self {
            target,
            timeout,
            tls,
        }
    }

    /// The address dialled.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The TCP connect timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Starts a connection attempt.
    pub fn dial(&self) -> Dial {
        let this = self.clone();
        Dial::Connecting(Box::pin(async move {
            let tcp = connect(this.target, this.timeout).await?;
            match &this.tls {
                None => Ok(UpstreamIo::Plain(tcp)),
                Some(tls) => Ok(UpstreamIo::Mesh(Box::new(tls.handshake(tcp).await?))),
            }
        }))
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
