//! Sockets: the HTTPS and admin listeners, TLS handshakes, per-connection
//! HTTP/1.1 and HTTP/2 serving, and graceful shutdown.
//!
//! Every way a client can hold a connection is bounded: the TLS handshake by
//! the handshake timeout, the bytes that tell HTTP/1 from HTTP/2 by
//! [`FirstBytes`], HTTP/1 headers (including an idle keep-alive connection
//! waiting for its next request) by hyper's header read timeout, a request
//! body by the router's tower timeout, and a silent HTTP/2 peer by
//! keep-alive pings.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::deadline::{FirstBytes, PREFACE_LEN};
use super::{AppState, Limits, admin_router, webhook_router};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The webhook's two listeners, bound and ready to serve.
pub struct Server {
    https: TcpListener,
    admin: TcpListener,
    state: AppState,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("https", &self.https.local_addr().ok())
            .field("admin", &self.admin.local_addr().ok())
            .field("limits", &self.limits)
            .finish()
    }
}

/// Tells connections to finish; each connection holds a receiver, so the
/// sender learns when the last one is gone.
type Stop = watch::Receiver<bool>;

impl Server {
    /// Binds the HTTPS listener at `https` and the admin listener at `admin`
    /// (port 0 picks a free port; see [`Server::https_addr`]).
    pub async fn bind(
        https: SocketAddr,
        admin: SocketAddr,
        state: AppState,
        tls: Arc<rustls::ServerConfig>,
        limits: Limits,
    ) -> Result<Self, ServeError> {
        let bind = |addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })
        };
        Ok(Server {
            https: bind(https).await?,
            admin: bind(admin).await?,
            state,
            tls,
            limits,
        })
    }

    /// Where the HTTPS listener is bound.
    pub fn https_addr(&self) -> std::io::Result<SocketAddr> {
        self.https.local_addr()
    }

    /// Where the admin listener is bound.
    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets open
    /// connections finish their requests (up to the drain timeout), and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let Server {
            https,
            admin,
            state,
            tls,
            limits,
        } = self;
        let http = Arc::new(http_builder(&limits));
        let (stop_tx, stop_rx) = watch::channel(false);

        let webhook = webhook_router(state.clone(), limits.request_timeout);
        let acceptor = TlsAcceptor::from(tls);
        let metrics = state.metrics().clone();
        let https_loop = accept_loop(https, stop_rx.clone(), {
            let http = http.clone();
            move |tcp, stop| {
                let (acceptor, webhook, http, metrics) = (
                    acceptor.clone(),
                    webhook.clone(),
                    http.clone(),
                    metrics.clone(),
                );
                async move {
                    let handshake =
                        tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await;
                    match handshake {
                        Ok(Ok(tls)) => {
                            serve_connection(tls, webhook, &http, &limits, stop).await;
                        }
                        Ok(Err(error)) => {
                            metrics.tls_handshake_failure();
                            tracing::debug!(%error, "TLS handshake failed");
                        }
                        Err(_) => {
                            metrics.tls_handshake_failure();
                            tracing::debug!("TLS handshake timed out");
                        }
                    }
                }
            }
        });

        let admin_routes = admin_router(state);
        let admin_loop = accept_loop(admin, stop_rx, move |tcp, stop| {
            let (routes, http) = (admin_routes.clone(), http.clone());
            async move { serve_connection(tcp, routes, &http, &limits, stop).await }
        });

        let loops = async { tokio::join!(https_loop, admin_loop) };
        tokio::select! {
            _ = loops => tracing::error!("listeners stopped"),
            () = shutdown => tracing::info!("shutting down: no new connections"),
        }
        // The accept loops are dropped here with their receivers; what is
        // left are the open connections, told to finish now.
        let _ = stop_tx.send(true);
        match tokio::time::timeout(limits.drain_timeout, stop_tx.closed()).await {
            Ok(()) => tracing::info!("all connections closed"),
            Err(_) => tracing::warn!(
                open = stop_tx.receiver_count(),
                "drain timeout reached with connections still open"
            ),
        }
    }
}

/// HTTP/1.1 and HTTP/2 (by ALPN or preface) with the connection-level timeouts.
fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.request_timeout)
        .keep_alive_timeout(limits.request_timeout);
    builder
}

/// Accepts connections and spawns `handle` for each until dropped.
async fn accept_loop<F, Fut>(listener: TcpListener, stop: Stop, handle: F)
where
    F: Fn(TcpStream, Stop) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((tcp, _peer)) => {
                // Reviews are small request/response exchanges: Nagle's delay
                // would only add latency.
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::debug!(%error, "cannot set TCP_NODELAY");
                }
                tokio::spawn(handle(tcp, stop.clone()));
            }
            Err(error) => {
                // Out of file descriptors and the like: back off instead of
                // spinning; connections in flight keep being served.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves HTTP on one connection until the client leaves, a timeout closes
/// it, or shutdown asks it to finish its current requests.
async fn serve_connection<I>(
    io: I,
    routes: Router,
    http: &auto::Builder<TokioExecutor>,
    limits: &Limits,
    mut stop: Stop,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // hyper's own timeouts start once it knows the protocol; this one
    // covers the bytes it needs to find out.
    let io = FirstBytes::new(io, PREFACE_LEN, limits.request_timeout);
    let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(routes));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection closed with an error");
            }
        }
        () = async { let _ = stop.wait_for(|stopping| *stopping).await; } => {
            conn.as_mut().graceful_shutdown();
            if let Err(error) = conn.await {
                tracing::debug!(%error, "connection closed with an error while draining");
            }
        }
    }
}
