//! Metric series resolved once per connection and authority, not per
//! request.
//!
//! Finding a series by its labels hashes every label (authority, peer
//! identity, workload, ...) and takes the family's lock; a connection's
//! requests nearly always share one authority and a few statuses, so each
//! connection keeps the series it used last and a request only compares its
//! authority and bumps counters. Label values and caps are exactly those of
//! [`Metrics::request_labels`]: the cache changes how a series is found, not
//! which one.

use std::sync::{Arc, Mutex, MutexGuard};

use http::{Request, StatusCode, header};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::super::context::{ConnContext, TlsStatus};
use super::super::metrics::{LatencyLabels, Metrics, RequestLabels, ResponseLabels};
use super::classify::Classification;
use crate::tls::labels::PeerLabels;

/// Distinct statuses (or status, gRPC status, classification triples) kept
/// per authority; a connection that sees more looks the rest up each time.
const MAX_CACHED: usize = 8;

/// Where a request's authority came from: the label of a `Host` is
/// lower-cased, the URI's (HTTP/2 `:authority`, absolute form) is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authority<'a> {
    /// The request URI's authority.
    Uri(&'a str),
    /// The `Host` field.
    Host(&'a str),
    /// Neither.
    None,
}

impl<'a> Authority<'a> {
    /// The request's authority: the URI's, else `Host`.
    pub fn of<B>(req: &'a Request<B>) -> Self {
        if let Some(authority) = req.uri().authority() {
            return Self::Uri(authority.as_str());
        }
        match req.headers().get(header::HOST).map(|h| h.to_str()) {
            Some(Ok(host)) => Self::Host(host),
            _ => Self::None,
        }
    }

    /// The `authority` label value, before the cap.
    fn label(self) -> Option<String> {
        match self {
            Self::Uri(a) => Some(a.to_owned()),
            Self::Host(h) => Some(h.to_ascii_lowercase()),
            Self::None => None,
        }
    }
}

/// The series of one connection's requests to one authority.
#[derive(Debug)]
pub struct AuthorityMetrics {
    /// The authority as the request carried it (the cache key).
    seen: AuthorityKey,
    /// The peer it was resolved for (part of the key: a Service's requests
    /// go to different endpoints).
    tls: TlsStatus,
    peer: PeerLabels,
    metrics: Arc<Metrics>,
    labels: RequestLabels,
    requests: Counter,
    latency: Mutex<Vec<(u16, Histogram)>>,
    responses: Mutex<Vec<(ResponseKey, Counter)>>,
}

#[derive(Debug, PartialEq, Eq)]
enum AuthorityKey {
    Uri(String),
    Host(String),
    None,
}

impl AuthorityKey {
    fn matches(&self, authority: Authority<'_>) -> bool {
        match (self, authority) {
            (Self::Uri(a), Authority::Uri(b)) | (Self::Host(a), Authority::Host(b)) => a == b,
            (Self::None, Authority::None) => true,
            _ => false,
        }
    }
}

impl From<Authority<'_>> for AuthorityKey {
    fn from(authority: Authority<'_>) -> Self {
        match authority {
            Authority::Uri(a) => Self::Uri(a.to_owned()),
            Authority::Host(h) => Self::Host(h.to_owned()),
            Authority::None => Self::None,
        }
    }
}

type ResponseKey = (u16, Option<u32>, Classification);

impl AuthorityMetrics {
    /// Counts a request.
    pub fn request(&self) {
        self.requests.inc();
    }

    /// Records the time from request headers to response headers.
    pub fn latency(&self, status: StatusCode, millis: f64) {
        let code = status.as_u16();
        let histogram = cached(&self.latency, &code, || {
            self.metrics.latency_histogram(&LatencyLabels {
                request: self.labels.clone(),
                status_code: code,
            })
        });
        histogram.observe(millis);
    }

    /// Counts a finished (or failed) response.
    pub fn response(
        &self,
        status: StatusCode,
        grpc_status: Option<u32>,
        classification: Classification,
    ) {
        let key = (status.as_u16(), grpc_status, classification);
        let counter = cached(&self.responses, &key, || {
            self.metrics.response_counter(&ResponseLabels {
                request: self.labels.clone(),
                status_code: key.0,
                grpc_status,
                classification,
            })
        });
        counter.inc();
    }
}

/// The metric under `key` in `cache`, made by `make` on a miss and kept
/// while there is room. Metric handles are cheap clones of one shared series.
fn cached<K: PartialEq + Copy, M: Clone>(
    cache: &Mutex<Vec<(K, M)>>,
    key: &K,
    make: impl FnOnce() -> M,
) -> M {
    if let Some((_, metric)) = lock(cache).iter().find(|(k, _)| k == key) {
        return metric.clone();
    }
    let metric = make();
    let mut cache = lock(cache);
    if cache.len() < MAX_CACHED && !cache.iter().any(|(k, _)| k == key) {
        cache.push((*key, metric.clone()));
    }
    metric
}

/// The metric handles of one client connection.
#[derive(Debug)]
pub struct ConnMetrics {
    metrics: Arc<Metrics>,
    last: Mutex<Option<Arc<AuthorityMetrics>>>,
}

impl ConnMetrics {
    /// No series resolved yet.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            last: Mutex::new(None),
        }
    }

    /// The series of a request to `authority` on the connection `ctx`,
    /// sent to `peer` when that is not the connection's (a Service's
    /// endpoint): the last one's again when both match, else looked up
    /// (and the authority admitted under the cap) and kept.
    pub fn for_request(
        &self,
        ctx: &ConnContext,
        peer: Option<(TlsStatus, &PeerLabels)>,
        authority: Authority<'_>,
    ) -> Arc<AuthorityMetrics> {
        let (tls, peer) = peer.unwrap_or((ctx.tls, &ctx.peer_labels));
        if let Some(last) = lock(&self.last).as_ref()
            && last.seen.matches(authority)
            && last.tls == tls
            && last.peer == *peer
        {
            return last.clone();
        }
        let mut labels = self
            .metrics
            .request_labels(ctx, authority.label().as_deref());
        labels.tls = tls;
        labels.peer = peer.clone();
        let resolved = Arc::new(AuthorityMetrics {
            seen: authority.into(),
            tls,
            peer: peer.clone(),
            metrics: self.metrics.clone(),
            requests: self.metrics.request_counter(&labels),
            labels,
            latency: Mutex::new(Vec::new()),
            responses: Mutex::new(Vec::new()),
        });
        *lock(&self.last) = Some(resolved.clone());
        resolved
    }
}

// Nothing panics while these locks are held; a poisoned one still holds a
// consistent cache.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::context::{Direction, TlsStatus};
    use crate::tls::labels::PeerLabels;
    use std::net::SocketAddr;

    fn ctx() -> ConnContext {
        ConnContext {
            direction: Direction::Outbound,
            client: SocketAddr::from(([127, 0, 0, 1], 40000)),
            orig_dst: SocketAddr::from(([10, 0, 0, 2], 8080)),
            target: SocketAddr::from(([10, 0, 0, 2], 8080)),
            tls: TlsStatus::None,
            peer_identity: None,
            peer_labels: PeerLabels::none(),
        }
    }

    #[test]
    fn authority_from_uri_or_host() -> Result<(), http::Error> {
        let h2 = Request::get("http://web.ns.svc:8080/x").body(())?;
        assert_eq!(Authority::of(&h2), Authority::Uri("web.ns.svc:8080"));
        let h1 = Request::get("/x").header("host", "Web:80").body(())?;
        assert_eq!(Authority::of(&h1), Authority::Host("Web:80"));
        assert_eq!(Authority::of(&h1).label().as_deref(), Some("web:80"));
        let none = Request::get("/x").body(())?;
        assert_eq!(Authority::of(&none), Authority::None);
        Ok(())
    }

    #[test]
    fn cached_series_count_like_fresh_lookups() -> Result<(), std::fmt::Error> {
        let metrics = Arc::new(Metrics::new());
        let conn = ConnMetrics::new(metrics.clone());
        let ctx = ctx();
        // Alternating authorities and statuses: hits and misses both land
        // in the series a direct lookup would use.
        for (host, status) in [("a", 200), ("a", 200), ("b", 503), ("a", 404), ("A", 200)] {
            let series = conn.for_request(&ctx, None, Authority::Host(host));
            series.request();
            let status = StatusCode::from_u16(status).map_err(|_| std::fmt::Error)?;
            series.latency(status, 0.2);
            let class = if status.is_server_error() {
                Classification::Failure
            } else {
                Classification::Success
            };
            series.response(status, None, class);
        }
        let text = metrics.encode()?;
        for line in [
            r#"request_total{direction="outbound",tls="false",dst_port="8080",authority="a"} 4"#,
            r#"request_total{direction="outbound",tls="false",dst_port="8080",authority="b"} 1"#,
            r#"status_code="200",grpc_status="",classification="success"} 3"#,
            r#"authority="b",status_code="503",grpc_status="",classification="failure"} 1"#,
            r#"authority="a",status_code="404",grpc_status="",classification="success"} 1"#,
            r#"authority="a",status_code="200",le="0.25"} 3"#,
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
        Ok(())
    }

    #[test]
    fn a_full_cache_still_counts() {
        let cache: Mutex<Vec<(u16, Counter)>> = Mutex::new(Vec::new());
        let mut made = Vec::new();
        for code in 0..(MAX_CACHED as u16 + 3) {
            let counter = cached(&cache, &code, Counter::default);
            counter.inc();
            made.push(counter);
        }
        assert_eq!(lock(&cache).len(), MAX_CACHED);
        // A cached key returns the same series; an uncached one a new lookup.
        cached(&cache, &0, Counter::default).inc();
        assert_eq!(made[0].get(), 2);
    }
}
