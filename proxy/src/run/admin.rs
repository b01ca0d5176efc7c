//! The admin server (4191): `/metrics`, `/ready`, `/live`, `/shutdown`.
//!
//! `/ready` is 200 once the proxy's listeners are bound and 503 again while
//! draining, so Kubernetes stops routing before the proxy stops accepting.
//! `/shutdown` (POST, loopback peers only) starts the same drain as SIGTERM:
//! a Job's application calls it when done so the pod can complete.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::drain::Drain;
use super::metrics::Metrics;

/// What the admin endpoints answer from.
#[derive(Debug)]
pub struct AdminState {
    metrics: Arc<Metrics>,
    drain: Drain,
    ready: AtomicBool,
}

impl AdminState {
    /// Not ready until [`AdminState::set_ready`].
    pub fn new(metrics: Arc<Metrics>, drain: Drain) -> Self {
        Self {
            metrics,
            drain,
            ready: AtomicBool::new(false),
        }
    }

    /// Marks the listeners bound.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.drain.is_draining()
    }
}

/// Serves admin requests until the process exits.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        // Not tracked by the drain: a scraper's keep-alive connection must
        // not hold the process after its proxied connections are done.
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, peer, &req)) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "admin connection failed");
            }
        });
    }
}

/// Answers one admin request.
pub fn route(
    state: &AdminState,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    route_parts(state, peer, req.method(), req.uri().path())
}

fn route_parts(
    state: &AdminState,
    peer: SocketAddr,
    method: &Method,
    path: &str,
) -> Response<Full<Bytes>> {
    match (path, method) {
        ("/metrics", &Method::GET) => match state.metrics.encode() {
            Ok(text) => {
                let mut response = text_response(StatusCode::OK, text);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static(
                        prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    ),
                );
                response
            }
            Err(_) => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics encoding failed\n",
            ),
        },
        ("/ready", &Method::GET) if state.is_ready() => text_response(StatusCode::OK, "ready\n"),
        ("/ready", &Method::GET) => text_response(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        ("/live", &Method::GET) => text_response(StatusCode::OK, "live\n"),
        ("/shutdown", &Method::POST) if peer.ip().to_canonical().is_loopback() => {
            tracing::info!(%peer, "shutdown requested");
            state.drain.signal();
            text_response(StatusCode::OK, "shutting down\n")
        }
        ("/shutdown", &Method::POST) => text_response(
            StatusCode::FORBIDDEN,
            "shutdown is allowed from loopback only\n",
        ),
        ("/metrics" | "/ready" | "/live" | "/shutdown", _) => {
            text_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text_response(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AdminState {
        AdminState::new(Arc::new(Metrics::new()), Drain::new())
    }

    const LOOPBACK: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5000);
    const REMOTE: SocketAddr = SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9)),
        5000,
    );

    #[test]
    fn ready_follows_listeners_and_drain() {
        let state = state();
        assert_eq!(
            route_parts(&state, REMOTE, &Method::GET, "/ready").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.set_ready();
        assert_eq!(
            route_parts(&state, REMOTE, &Method::GET, "/ready").status(),
            StatusCode::OK
        );
        state.drain.signal();
        assert_eq!(
            route_parts(&state, REMOTE, &Method::GET, "/ready").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            route_parts(&state, REMOTE, &Method::GET, "/live").status(),
            StatusCode::OK
        );
    }

    #[test]
    fn shutdown_only_from_loopback_and_only_post() {
        let state = state();
        assert_eq!(
            route_parts(&state, REMOTE, &Method::POST, "/shutdown").status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            route_parts(&state, LOOPBACK, &Method::GET, "/shutdown").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert!(!state.drain.is_draining());
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().expect("addr");
        assert_eq!(
            route_parts(&state, mapped, &Method::POST, "/shutdown").status(),
            StatusCode::OK
        );
        assert!(state.drain.is_draining());
    }

    #[test]
    fn metrics_and_unknown_paths() {
        let state = state();
        let metrics = route_parts(&state, REMOTE, &Method::GET, "/metrics");
        assert_eq!(metrics.status(), StatusCode::OK);
        assert_eq!(
            metrics
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(prometheus_client::encoding::prometheus_text::CONTENT_TYPE.as_bytes())
        );
        assert_eq!(
            route_parts(&state, REMOTE, &Method::GET, "/nope").status(),
            StatusCode::NOT_FOUND
        );
    }
}
