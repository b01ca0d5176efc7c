//! Sockets for the control plane's ports: accept loops, TLS handshakes,
//! HTTP/1.1 or HTTP/2 per connection, and a graceful drain.
//!
//! Every way a client can hold a connection is bounded: the TLS handshake
//! by a timeout, HTTP/1 request heads (and idle keep-alive connections) by
//! hyper's header read timeout, a silent HTTP/2 peer by keep-alive pings,
//! and a request by the router's own timeout. The protocol comes from ALPN
//! (or is HTTP/1.1 on the plain admin port), so no connection waits to
//! guess it from a preface.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Streams one HTTP/2 connection may have open at once.
const MAX_CONCURRENT_STREAMS: u32 = 100;

/// Time bounds on what a client may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A TLS handshake must complete within this time.
    pub handshake_timeout: Duration,
    /// An HTTP/1 request head must arrive within this time (also how long
    /// an idle keep-alive connection stays); HTTP/2 pings at this interval.
    pub header_timeout: Duration,
    /// After shutdown is asked, open connections get this long to finish.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a port could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Held by every accept loop and connection; tells them to stop.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Asks everything holding a [`Shutdown`] to stop, and waits for it.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// A trigger and the handle the servers hold.
pub fn shutdown_channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl Shutdown {
    /// Resolves once shutdown is asked.
    pub async fn requested(&mut self) {
        // An error means the trigger is gone: nobody can ask any more, and
        // a server without a trigger has nothing to wait for.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

impl ShutdownTrigger {
    /// Stops the accept loops, lets open connections finish their requests
    /// for at most `timeout`, and returns when all are gone or time is up.
    pub async fn drain(self, timeout: Duration) {
        let _ = self.tx.send(true);
        match tokio::time::timeout(timeout, self.tx.closed()).await {
            Ok(()) => tracing::info!("all connections closed"),
            Err(_) => tracing::warn!(
                open = self.tx.receiver_count(),
                "drain timeout reached with connections still open"
            ),
        }
    }
}

/// Serves `router` over TLS on `listener` until shutdown. `on_handshake_error`
/// is called for each failed or timed-out handshake (a metric).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    limits: Limits,
    shutdown: Shutdown,
    on_handshake_error: Arc<dyn Fn() + Send + Sync>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let builders = Arc::new(Builders::new(&limits));
    accept_loop(listener, shutdown, move |tcp, peer, shutdown| {
        let (acceptor, router, builders, on_error) = (
            acceptor.clone(),
            with_peer(&router, peer),
            builders.clone(),
            on_handshake_error.clone(),
        );
        async move {
            match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    let builder = if h2 { &builders.h2 } else { &builders.h1 };
                    serve_connection(stream, builder, router, shutdown).await;
                }
                Ok(Err(error)) => {
                    on_error();
                    tracing::debug!(%error, "TLS handshake failed");
                }
                Err(_) => {
                    on_error();
                    tracing::debug!("TLS handshake timed out");
                }
            }
        }
    })
    .await;
}

/// Serves `router` over plain HTTP/1.1 on `listener` until shutdown (the
/// admin port: probes and Prometheus).
pub async fn serve_http(listener: TcpListener, router: Router, limits: Limits, shutdown: Shutdown) {
    let builders = Arc::new(Builders::new(&limits));
    accept_loop(listener, shutdown, move |tcp, peer, shutdown| {
        let (router, builders) = (with_peer(&router, peer), builders.clone());
        async move { serve_connection(tcp, &builders.h1, router, shutdown).await }
    })
    .await;
}

/// One builder per protocol, configured with the limits.
struct Builders {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &Limits) -> Self {
        let mut h1 = auto::Builder::new(TokioExecutor::new()).http1_only();
        h1.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true);
        let mut h2 = auto::Builder::new(TokioExecutor::new()).http2_only();
        h2.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .keep_alive_interval(limits.header_timeout)
            .keep_alive_timeout(limits.header_timeout);
        Builders { h1, h2 }
    }
}

/// The router with the client's address in every request's extensions, as
/// axum's `ConnectInfo` (destination limits watches per client by it).
fn with_peer(router: &Router, peer: SocketAddr) -> Router {
    router.clone().layer(Extension(ConnectInfo(peer)))
}

/// Accepts connections and spawns `handle` for each until shutdown.
async fn accept_loop<F, Fut>(listener: TcpListener, shutdown: Shutdown, handle: F)
where
    F: Fn(TcpStream, SocketAddr, Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            () = stop.requested() => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    // Small request/response exchanges: Nagle only adds delay.
                    if let Err(error) = tcp.set_nodelay(true) {
                        tracing::debug!(%error, "cannot set TCP_NODELAY");
                    }
                    tokio::spawn(handle(tcp, peer, shutdown.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off rather
                    // than spin; open connections keep being served.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Serves one connection until the client leaves, a timeout closes it, or
/// shutdown asks it to finish its requests in flight.
async fn serve_connection<I>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    router: Router,
    mut shutdown: Shutdown,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection closed with an error");
            }
        }
        () = shutdown.requested() => {
            conn.as_mut().graceful_shutdown();
            if let Err(error) = conn.await {
                tracing::debug!(%error, "connection closed with an error while draining");
            }
        }
    }
}
