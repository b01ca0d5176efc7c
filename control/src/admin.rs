//! The admin port (plain HTTP, 9990 by default): `/metrics` for
//! Prometheus, `/ready` and `/live` for the kubelet.
//!
//! Each service of the process registers its metrics in one shared
//! [`Registry`] and a readiness check in one [`Readiness`]; `/ready` is 200
//! only when every check holds, and its body names the ones that do not.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use prometheus_client::registry::Registry;

/// The content type of `/metrics`.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// Named readiness checks.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<Vec<(&'static str, Check)>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("not_ready", &self.not_ready())
            .finish()
    }
}

impl Readiness {
    /// No checks yet (ready).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check named `name`: the process is ready only while it holds.
    pub fn add(&self, name: &'static str, check: impl Fn() -> bool + Send + Sync + 'static) {
        self.checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name, Arc::new(check)));
    }

    /// The names of the checks that do not hold now.
    pub fn not_ready(&self) -> Vec<&'static str> {
        let checks = self
            .checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        checks
            .into_iter()
            .filter(|(_, check)| !check())
            .map(|(name, _)| name)
            .collect()
    }
}

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    readiness: Readiness,
}

/// The admin router over the process's metrics and readiness.
pub fn router(registry: Arc<Registry>, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/ready", get(ready))
        .route("/live", get(live))
        .with_state(AdminState {
            registry,
            readiness,
        })
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn ready(State(state): State<AdminState>) -> Response {
    let not_ready = state.readiness.not_ready();
    if not_ready.is_empty() {
        "ready\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", not_ready.join(", ")),
        )
            .into_response()
    }
}

async fn live() -> &'static str {
    "live\n"
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    async fn get_text(
        router: &Router,
        path: &str,
    ) -> Result<(StatusCode, String), Box<dyn std::error::Error>> {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty())?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8(body.to_vec())?))
    }

    #[tokio::test]
    async fn ready_only_when_every_check_holds() -> Result<(), Box<dyn std::error::Error>> {
        let readiness = Readiness::new();
        let issuer = Arc::new(AtomicBool::new(false));
        let flag = issuer.clone();
        readiness.add("identity issuer", move || flag.load(Ordering::Relaxed));
        readiness.add("always", || true);
        let router = router(Arc::new(Registry::default()), readiness);

        let (status, body) = get_text(&router, "/ready").await?;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "not ready: identity issuer\n");
        issuer.store(true, Ordering::Relaxed);
        assert_eq!(get_text(&router, "/ready").await?.0, StatusCode::OK);
        assert_eq!(get_text(&router, "/live").await?.0, StatusCode::OK);
        let (status, body) = get_text(&router, "/metrics").await?;
        assert_eq!(status, StatusCode::OK);
        assert!(body.ends_with("# EOF\n"), "{body}");
        Ok(())
    }
}
