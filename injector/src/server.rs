//! The webhook's HTTP side: the HTTPS router the API server calls
//! (`POST /mutate`, `/healthz`, `/readyz`) and the plain-HTTP admin router
//! for probes and Prometheus (`/metrics`, `/healthz`, `/readyz`).
//!
//! A review is handled inline: read the body (bounded), parse it, look up
//! the namespace, run the pure planner (microseconds), answer. An Event about
//! the answer, if any, is only queued ([`crate::events`] publishes it in the
//! background). Sockets, TLS handshakes, timeouts and graceful shutdown are
//! in [`listener`].

mod deadline;
mod listener;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Router};
use bytes::{Bytes, BytesMut};
use http::{StatusCode, header};
use http_body_util::BodyExt as _;
use tower::ServiceBuilder;

pub use listener::{ServeError, Server};

use crate::InjectorConfig;
use crate::admission::{self, BadRequest};
use crate::events::{self, EventSender};
use crate::metrics::{self, Metrics};
use crate::namespaces::NamespaceLookup;
use crate::tls::CertResolver;

/// Bounds on what a client may cost the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest AdmissionReview body read; larger ones get HTTP 413.
    pub max_body_bytes: usize,
    /// A request (headers and body) must arrive within this time, and an
    /// idle keep-alive connection is closed after it.
    pub request_timeout: Duration,
    /// A TLS handshake must complete within this time.
    pub handshake_timeout: Duration,
    /// After a shutdown signal, open connections get this long to finish.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: admission::MAX_BODY_BYTES,
            request_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(20),
        }
    }
}

/// A body this many times over the limit is not read to its end: the
/// connection is closed instead. Below it, the rest of an oversized body is
/// read and thrown away so the client is still listening when the 413 comes.
const DRAIN_FACTOR: usize = 4;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    /// Swapped whole when the trust anchors change ([`crate::anchors`]).
    config: Arc<ArcSwap<InjectorConfig>>,
    namespaces: Arc<dyn NamespaceLookup>,
    certs: Arc<CertResolver>,
    metrics: Arc<Metrics>,
    max_body_bytes: usize,
    events: Option<EventSender>,
}

impl AppState {
    /// The state of a webhook planning with `config`.
    pub fn new(
        config: InjectorConfig,
        namespaces: Arc<dyn NamespaceLookup>,
        certs: Arc<CertResolver>,
        metrics: Arc<Metrics>,
        limits: &Limits,
    ) -> Self {
        AppState {
            inner: Arc::new(Shared {
                config: Arc::new(ArcSwap::from_pointee(config)),
                namespaces,
                certs,
                metrics,
                max_body_bytes: limits.max_body_bytes,
                events: None,
            }),
        }
    }

    /// The same state, queuing Kubernetes Events about injections on `events`.
    pub fn with_events(mut self, events: EventSender) -> Self {
        Arc::make_mut(&mut self.inner).events = Some(events);
        self
    }

    /// The planner's configuration, for a reloader to swap (the trust
    /// anchors); each review plans with the one current when it starts.
    pub fn config_handle(&self) -> Arc<ArcSwap<InjectorConfig>> {
        self.inner.config.clone()
    }

    /// The metrics the handlers record into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Ready to review: the namespace cache has synced and a serving
    /// certificate is loaded.
    pub fn is_ready(&self) -> bool {
        self.inner.namespaces.is_ready() && self.inner.certs.is_loaded()
    }
}

/// The HTTPS router the API server calls.
pub fn webhook_router(state: AppState, request_timeout: Duration) -> Router {
    let metrics = state.metrics().clone();
    let on_timeout = move |error: BoxError| {
        let metrics = metrics.clone();
        async move {
            if error.is::<tower::timeout::error::Elapsed>() {
                metrics.request_timeout();
                (
                    StatusCode::REQUEST_TIMEOUT,
                    "request not received in time\n",
                )
                    .into_response()
            } else {
                tracing::error!(%error, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    };
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(on_timeout))
                .timeout(request_timeout),
        )
}

/// The plain-HTTP admin router (kubelet probes, Prometheus).
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let shared = &state.inner;
    match (shared.namespaces.is_ready(), shared.certs.is_loaded()) {
        (true, true) => "ok\n".into_response(),
        (cache, cert) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: namespace cache synced: {cache}, serving certificate loaded: {cert}\n"
            ),
        )
            .into_response(),
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics().encode(),
    )
        .into_response()
}

async fn mutate(State(state): State<AppState>, body: Body) -> Response {
    let started = tokio::time::Instant::now();
    let shared = &state.inner;
    let answer = match read_body(body, shared.max_body_bytes).await {
        Ok(bytes) => review(shared, &bytes).await,
        Err(bad) => Err(bad),
    };
    let elapsed = started.elapsed().as_secs_f64();
    match answer {
        Ok((outcome, json)) => {
            shared.metrics.review(outcome, elapsed);
            ([(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
        Err(bad) => {
            shared.metrics.review(bad.outcome(), elapsed);
            tracing::debug!(error = %bad, "bad admission request");
            (bad.status(), format!("{bad}\n")).into_response()
        }
    }
}

async fn review(shared: &Shared, body: &[u8]) -> Result<(admission::Outcome, Vec<u8>), BadRequest> {
    let request = admission::parse(body)?;
    let namespace = match request.namespace.as_deref() {
        Some(name) if request.needs_namespace() => {
            let found = shared.namespaces.annotations(name).await;
            shared.metrics.namespace_lookup(found.source);
            found.annotations
        }
        _ => Default::default(),
    };
    let reviewed = admission::review(&request, &namespace, &shared.config.load());
    tracing::debug!(
        uid = %request.uid,
        namespace = request.namespace.as_deref().unwrap_or_default(),
        outcome = reviewed.outcome.as_str(),
        decision = ?reviewed.decision,
        "reviewed"
    );
    // Our own plain types always serialize; keep the request alive with an
    // error rather than trusting that blindly.
    let json = serde_json::to_vec(&reviewed.review)
        .map_err(|e| BadRequest::Unreadable(format!("cannot encode the response: {e}")))?;
    if let Some(sender) = &shared.events
        && let Some(event) = events::for_review(&request, &reviewed)
    {
        sender.send(event);
    }
    Ok((reviewed.outcome, json))
}

/// Reads at most `limit` bytes of body. An oversized body is read on (and
/// dropped) up to [`DRAIN_FACTOR`] times the limit so that the client, still
/// sending, reads the 413 instead of a reset connection.
async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, BadRequest> {
    let too_large = BadRequest::TooLarge { limit };
    // A declared length past the drain bound is refused before reading any of it.
    let declared = axum::body::HttpBody::size_hint(&body).lower();
    if declared > (limit.saturating_mul(DRAIN_FACTOR)) as u64 {
        return Err(too_large);
    }
    let mut buf = BytesMut::with_capacity(usize::try_from(declared).unwrap_or(0).min(limit));
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BadRequest::Unreadable(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total = total.saturating_add(data.len());
        if total > limit.saturating_mul(DRAIN_FACTOR) {
            return Err(too_large);
        }
        if total <= limit {
            buf.extend_from_slice(&data);
        }
    }
    if total > limit {
        return Err(too_large);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde_json::json;
    use tower::ServiceExt as _;

    use super::*;
    use crate::events::REASON_INJECTED;
    use crate::namespaces::StaticNamespaces;

    /// A router planning for namespace `shop` (enabled) and queuing Events
    /// on the returned receiver.
    fn router_with_events() -> (Router, tokio::sync::mpsc::Receiver<events::InjectionEvent>) {
        let namespaces = StaticNamespaces::new(HashMap::from([(
            "shop".to_string(),
            BTreeMap::from([("weft.dev/inject".to_string(), "enabled".to_string())]),
        )]));
        let metrics = Arc::new(Metrics::new());
        let (sender, queue) = EventSender::channel(8, metrics.clone());
        let state = AppState::new(
            InjectorConfig::default(),
            Arc::new(namespaces),
            Arc::new(CertResolver::new()),
            metrics,
            &Limits::default(),
        )
        .with_events(sender);
        (webhook_router(state, Duration::from_secs(5)), queue)
    }

    fn review(uid: &str, dry_run: bool) -> http::Request<Body> {
        let body = json!({
            "apiVersion": admission::API_VERSION,
            "kind": admission::KIND,
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "shop",
                "operation": "CREATE",
                "dryRun": dry_run,
                "object": {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"generateName": "web-7d9f8c-", "ownerReferences": [
                        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c",
                         "uid": "6a0c8f4e", "controller": true}]},
                    "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
                },
            },
        });
        http::Request::post("/mutate")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    }

    #[tokio::test]
    async fn an_answered_review_queues_its_event_and_a_dry_run_does_not() {
        let (router, mut queue) = router_with_events();
        let dry = router
            .clone()
            .oneshot(review("dry", true))
            .await
            .expect("answer");
        assert_eq!(dry.status(), StatusCode::OK);
        let real = router.oneshot(review("real", false)).await.expect("answer");
        assert_eq!(real.status(), StatusCode::OK);

        // Only the real create's Event is queued: the first one out is it.
        let event = queue.try_recv().expect("an event queued before the answer");
        assert_eq!(event.reason, REASON_INJECTED);
        assert_eq!(event.regarding.name.as_deref(), Some("web-7d9f8c"));
        assert!(queue.try_recv().is_err(), "one event only");
    }
}
