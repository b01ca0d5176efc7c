//! One proxied request: count it, strip hop-by-hop fields, forward it
//! upstream, and hand the response back observed for metrics; a failed
//! upstream becomes a short 502 (or 504 on a connect timeout).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::super::context::ConnContext;
use super::super::drain::Drain;
use super::super::metrics::Metrics;
use super::balanced::Forward;
use super::body::{ObservedBody, ResponseRecorder};
use super::classify;
use super::handles::{Authority, ConnMetrics};
use super::headers::{restore_upgrade, strip_hop_by_hop, upgrade_protocol};
use super::upgrade::{self, UpgradeKind};
use super::upstream::UpstreamError;

/// The body of a proxied response: upstream's, or the proxy's own error text.
pub type ProxyBody = Either<ObservedBody, Full<Bytes>>;

/// The header that marks a response the proxy made itself.
pub const PROXY_ERROR_HEADER: &str = "weft-proxy-error";

/// The per-connection request handler.
pub struct ProxyService {
    ctx: ConnContext,
    upstream: Forward,
    metrics: ConnMetrics,
    drain: Drain,
}

impl ProxyService {
    /// A handler for one client connection.
    pub fn new(ctx: ConnContext, upstream: Forward, metrics: Arc<Metrics>, drain: Drain) -> Self {
        Self {
            ctx,
            upstream,
            metrics: ConnMetrics::new(metrics),
            drain,
        }
    }

    /// Proxies one request; never fails (errors become responses).
    pub async fn call(&self, mut req: Request<Incoming>) -> Response<ProxyBody> {
        let start = Instant::now();
        let route = self.upstream.route().await;
        let series = self
            .metrics
            .for_request(&self.ctx, route.peer(), Authority::of(&req));
        series.request();

        let upgrade = upgrade_kind(&req);
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        strip_hop_by_hop(req.headers_mut());
        if let Some(UpgradeKind::Protocol(protocol)) = &upgrade {
            restore_upgrade(req.headers_mut(), protocol.clone());
        }

        let result = self.upstream.send(req, route).await;
        let millis = start.elapsed().as_secs_f64() * 1_000.0;
        let mut response = match result {
            Ok(response) => response,
            Err(error) => {
                let status = if error.is_timeout() {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                };
                tracing::info!(target = %self.ctx.target, %error, "upstream failed");
                series.latency(status, millis);
                ResponseRecorder::new(series, status, None).finish(false);
                return error_response(status, &error);
            }
        };

        let status = response.status();
        series.latency(status, millis);
        let switched = upgrade.as_ref().filter(|kind| kind.accepted_by(status));
        let server_protocol = switched.and_then(|_| upgrade_protocol(response.headers()));
        strip_hop_by_hop(response.headers_mut());
        if let (Some(kind), Some(client_upgrade)) = (switched, client_upgrade) {
            if let UpgradeKind::Protocol(asked) = kind {
                let protocol = server_protocol.unwrap_or_else(|| asked.clone());
                restore_upgrade(response.headers_mut(), protocol);
            }
            let server_upgrade = hyper::upgrade::on(&mut response);
            upgrade::splice(&self.drain, client_upgrade, server_upgrade);
        }
        let grpc_status = classify::grpc_status(response.headers());
        let recorder = ResponseRecorder::new(series, status, grpc_status);
        response.map(|body| Either::Left(ObservedBody::new(body, recorder)))
    }
}

/// Upgrades exist only in HTTP/1 (RFC 9110 §7.8); HTTP/2 forwards as is.
fn upgrade_kind<B>(req: &Request<B>) -> Option<UpgradeKind> {
    if req.version() >= Version::HTTP_2 {
        return None;
    }
    if req.method() == Method::CONNECT {
        return Some(UpgradeKind::Connect);
    }
    upgrade_protocol(req.headers()).map(UpgradeKind::Protocol)
}

fn error_response(status: StatusCode, error: &UpstreamError) -> Response<ProxyBody> {
    let reason = match error {
        UpstreamError::Connect(_) if status == StatusCode::GATEWAY_TIMEOUT => {
            "upstream connect timed out"
        }
        UpstreamError::Connect(_) => "upstream connection refused or unreachable",
        UpstreamError::Handshake(_) => "upstream protocol handshake failed",
        UpstreamError::Request(_) => "upstream connection failed",
    };
    let mut response = Response::new(Either::Right(Full::from(format!("weft-proxy: {reason}\n"))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(PROXY_ERROR_HEADER, HeaderValue::from_static("upstream"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_only_in_http1() -> Result<(), http::Error> {
        let ws = Request::get("/chat")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .body(())?;
        assert_eq!(
            upgrade_kind(&ws),
            Some(UpgradeKind::Protocol(HeaderValue::from_static("websocket")))
        );
        let connect = Request::connect("example.com:443").body(())?;
        assert_eq!(upgrade_kind(&connect), Some(UpgradeKind::Connect));
        let h2 = Request::get("/chat")
            .version(Version::HTTP_2)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .body(())?;
        assert_eq!(upgrade_kind(&h2), None);
        Ok(())
    }
}
