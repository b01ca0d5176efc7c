//! The destination HTTP API: `GET /v1/resolve?addr=IP:PORT` answers once,
//! `GET /v1/watch?addr=IP:PORT` streams the answer and its changes. Both
//! read the watch cache only; neither calls the API server.
//!
//! The [`router`] is transport-agnostic: `weft-control` serves it over TLS
//! on the destination port, tests and local debugging over plain TCP with
//! [`serve`].

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Config;
use super::answer::{self, Answer, parse_addr};
use super::cache::Cache;
use super::error::DestinationError;
use super::metrics::{LookupResult, Metrics};
use super::stream::{Watch, WatchLimits};

/// The content type of `/v1/watch`.
pub const NDJSON: &str = "application/x-ndjson";

/// Everything the handlers share.
#[derive(Clone, Debug)]
pub struct DestinationState {
    cache: Cache,
    config: Arc<Config>,
    metrics: Metrics,
    limits: Arc<WatchLimits>,
    shutdown: Arc<watch::Sender<bool>>,
}

impl DestinationState {
    /// State answering from `cache` (fed by [`super::informer::spawn`], or
    /// by hand in tests).
    pub fn new(cache: Cache, config: Config, metrics: Metrics) -> Self {
        let limits = Arc::new(WatchLimits::new(
            config.max_watches,
            config.max_watches_per_client,
        ));
        DestinationState {
            cache,
            config: Arc::new(config),
            metrics,
            limits,
            shutdown: Arc::new(watch::Sender::new(false)),
        }
    }

    /// The cache answers come from.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The metrics handles.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether the caches have synced (for the control plane's `/ready`).
    pub fn is_ready(&self) -> bool {
        self.cache.is_ready()
    }

    /// Ends every open watch stream (and any opened later), so a graceful
    /// HTTP shutdown does not wait on streams that never end by themselves.
    pub fn close_watches(&self) {
        self.shutdown.send_replace(true);
    }

    /// Watches open now.
    pub fn open_watches(&self) -> usize {
        self.limits.open()
    }

    fn answer(&self, addr: SocketAddr) -> Answer {
        let target = self.cache.lookup(addr.ip());
        answer::for_target(addr, target.as_ref(), self.config.proxy_port)
    }

    fn count(&self, answer: &Answer) {
        self.metrics.lookup(if answer.service.is_some() {
            LookupResult::Service
        } else if answer.meshed {
            LookupResult::Meshed
        } else {
            LookupResult::Unmeshed
        });
    }

    /// The checks both endpoints make before answering.
    fn admit(
        &self,
        query: Result<Query<AddrQuery>, QueryRejection>,
    ) -> Result<SocketAddr, DestinationError> {
        let checked = query
            .map_err(|rejection| DestinationError::BadQuery(rejection.body_text()))
            .and_then(|Query(q)| parse_addr(q.addr.as_deref()))
            .and_then(|addr| {
                if self.cache.is_ready() {
                    Ok(addr)
                } else {
                    Err(DestinationError::NotReady)
                }
            });
        checked.inspect_err(|error| self.refused(error))
    }

    fn refused(&self, error: &DestinationError) {
        self.metrics.lookup(if error.is_bad_request() {
            LookupResult::BadRequest
        } else {
            LookupResult::Unavailable
        });
    }
}

/// The query both endpoints take.
#[derive(Debug, Deserialize)]
struct AddrQuery {
    addr: Option<String>,
}

/// The client's IP, when the server recorded it (`ConnectInfo`).
struct PeerIp(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_canonical());
        Ok(PeerIp(peer))
    }
}

/// The destination API's routes.
pub fn router(state: DestinationState) -> Router {
    Router::new()
        .route("/v1/resolve", get(resolve))
        .route("/v1/watch", get(watch_addr))
        .with_state(state)
}

async fn resolve(
    State(state): State<DestinationState>,
    query: Result<Query<AddrQuery>, QueryRejection>,
) -> Result<Json<Answer>, DestinationError> {
    let addr = state.admit(query)?;
    let answer = state.answer(addr);
    state.count(&answer);
    Ok(Json(answer))
}

async fn watch_addr(
    State(state): State<DestinationState>,
    PeerIp(client): PeerIp,
    query: Result<Query<AddrQuery>, QueryRejection>,
) -> Result<Response, DestinationError> {
    let addr = state.admit(query)?;
    let permit = state
        .limits
        .acquire(client, &state.metrics)
        .inspect_err(|error| state.refused(error))?;
    // Subscribe before reading the first answer so no change falls between.
    let mut subscription = state.cache.subscribe(addr.ip());
    let first = answer::for_target(
        addr,
        subscription.current().as_ref(),
        state.config.proxy_port,
    );
    state.count(&first);
    let watch = Watch {
        addr,
        subscription,
        proxy_port: state.config.proxy_port,
        heartbeat: state.config.heartbeat,
        shutdown: state.shutdown.subscribe(),
        permit,
        metrics: state.metrics.clone(),
    };
    let mut response = watch.into_body(first).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Serves the API over plain TCP on `listener` until `shutdown` resolves,
/// then ends the open watches and finishes. For tests and local debugging;
/// production serves [`router`] over TLS.
pub async fn serve(
    listener: TcpListener,
    state: DestinationState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            state.close_watches();
        })
        .await
}
