//! The accept loop every server here shares: HTTP/1.1 and HTTP/2 (h2c by
//! prior knowledge) on one port, told apart by hyper's `auto` builder, and
//! on shutdown a stop to accepting and a bounded drain of the connections
//! (HTTP/2 gets a GOAWAY, idle HTTP/1.1 connections close, requests in
//! flight finish).

use std::error::Error as StdError;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Serves `service` on `listener` until `shutdown`, then waits at most
/// `grace` for the open connections. `role` names the port in logs.
pub async fn serve<S, B>(
    role: &'static str,
    listener: TcpListener,
    service: S,
    mut shutdown: Shutdown,
    grace: Duration,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    match listener.local_addr() {
        Ok(addr) => tracing::info!("{role} listening on {addr}"),
        Err(err) => tracing::warn!(%err, "{role}: no local address"),
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that opens a connection and sends nothing is dropped.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            biased;
            () = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors or the like: the next accept
                    // may work once a connection closes.
                    tracing::warn!(%err, "{role}: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = builder
            .serve_connection(TokioIo::new(stream), service.clone())
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%err, "{role}: connection ended");
            }
        });
    }
    drop(listener);
    let open = graceful.count();
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("{role}: {open} connections did not drain in {grace:?}; closing them");
    }
    tracing::info!("{role} stopped");
}
