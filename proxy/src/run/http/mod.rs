//! HTTP proxying with hyper: the client connection is served in the protocol
//! detection found, and each request is forwarded on an upstream connection
//! of the same protocol (see [`upstream`]).
//!
//! Timeout policy: the proxy imposes none the application did not choose.
//! There is no request or response timeout (gRPC streams and long polls run
//! as long as the endpoints want) and no idle or header-read timeout on the
//! client connection; only the upstream TCP connect is bounded
//! (`connect_timeout`, answered with 504). A client that gives up releases
//! everything its request held.

pub mod balanced;
pub mod body;
pub mod classify;
pub mod coalesce;
pub mod handles;
pub mod headers;
pub mod service;
pub mod upgrade;
pub mod upstream;

use std::convert::Infallible;
use std::sync::Arc;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::drain::Drain;
use service::ProxyService;
use upstream::Version;

/// Serves one client connection until it closes or a drain finishes it.
pub async fn serve<I>(io: I, version: Version, service: ProxyService, drain: Drain)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = Arc::new(service);
    let svc = service_fn(move |req| {
        let service = service.clone();
        async move { Ok::<_, Infallible>(service.call(req).await) }
    });
    let io = TokioIo::new(io);
    let result = match version {
        Version::Http1 => {
            // No half-close: a client that sends its request and then EOF
            // has gone, as far as HTTP/1 is concerned (RFC 9112 §9.6), so an
            // upstream that never answers cannot pin the connection.
            let conn = http1::Builder::new()
                .half_close(false)
                .header_read_timeout(None)
                .serve_connection(io, svc)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => result,
                () = drain.signaled() => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        }
        Version::Http2 => {
            let conn = http2::Builder::new(TokioExecutor::new()).serve_connection(io, svc);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => result,
                () = drain.signaled() => {
                    // GOAWAY: streams in flight finish, no new ones start.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "client HTTP connection ended with an error");
    }
}
