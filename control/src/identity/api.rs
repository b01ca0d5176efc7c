//! The certification API: `POST /v1/certify`.
//!
//! A request carries the proxy's projected ServiceAccount token and a CSR.
//! In order: read the body (bounded in size and time), parse the JSON and
//! the CSR (400), ask the API server whose token it is (401), check that
//! the CSR asks for exactly that ServiceAccount's SPIFFE ID (403), sign
//! (200). Every refusal is a JSON `{"error": ...}` with the reason, and
//! every answer counts in `weft_identity_certify_total{result}`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use weft_certs::{CertificateRequest, SpiffeId};

use super::Shared;
use super::metrics::CertifyResult;
use super::token::{self, Unauthenticated};

/// The path of the certification endpoint.
pub const CERTIFY_PATH: &str = "/v1/certify";

/// What a proxy sends.
#[derive(Clone, Deserialize, Serialize)]
pub struct CertifyRequest {
    /// The projected ServiceAccount token (audience `identity.weft.dev`).
    pub token: String,
    /// The CSR (PEM `CERTIFICATE REQUEST`) for the proxy's in-memory key.
    pub csr: String,
}

impl std::fmt::Debug for CertifyRequest {
    // A token is a credential: never into a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifyRequest")
            .field("token", &"[elided]")
            .field("csr", &self.csr)
            .finish()
    }
}

/// What identity answers with a 200.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct CertifyResponse {
    /// The leaf certificate (PEM).
    pub certificate: String,
    /// The intermediates, nearest first (PEM): the issuer.
    pub chain: Vec<String>,
    /// When the leaf expires (RFC 3339, UTC).
    pub not_after: String,
}

/// What identity answers with any other status.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ErrorBody {
    /// Why, in words.
    pub error: String,
}

/// Why a certification request was not granted.
#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    /// 413: the body is larger than the limit.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// 408: the body did not arrive in time.
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    /// 400: the request or its CSR is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: the token proves no ServiceAccount for our audience.
    #[error("{0}")]
    Unauthenticated(#[from] Unauthenticated),
    /// 403: the CSR asks for another identity than the token proves.
    #[error("{0}")]
    Forbidden(String),
    /// 503: the API server could not be asked, no issuer can sign, or too
    /// many requests are in flight. Worth retrying.
    #[error("{0}")]
    Unavailable(String),
    /// 500: signing failed.
    #[error("{0}")]
    Internal(String),
}

impl CertifyError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            CertifyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            CertifyError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            CertifyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            CertifyError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            CertifyError::Forbidden(_) => StatusCode::FORBIDDEN,
            CertifyError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            CertifyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `result` label.
    pub fn result(&self) -> CertifyResult {
        match self {
            CertifyError::TooLarge { .. }
            | CertifyError::BodyTimeout(_)
            | CertifyError::BadRequest(_) => CertifyResult::bad_request,
            CertifyError::Unauthenticated(_) => CertifyResult::unauthenticated,
            CertifyError::Forbidden(_) => CertifyResult::forbidden,
            CertifyError::Unavailable(_) | CertifyError::Internal(_) => CertifyResult::error,
        }
    }
}

impl IntoResponse for CertifyError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (
            status,
            axum::Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110 asks a 401 to name the scheme; the credential is the
            // token in the body, issued for this audience.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"identity.weft.dev\""),
            );
        }
        response
    }
}

/// The router of the identity port.
pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(CERTIFY_PATH, post(certify))
        .with_state(shared)
}

async fn certify(State(shared): State<Arc<Shared>>, body: Body) -> Response {
    let started = tokio::time::Instant::now();
    let answer = answer(&shared, body).await;
    let seconds = started.elapsed().as_secs_f64();
    match answer {
        Ok((identity, response)) => {
            shared.metrics.certified(CertifyResult::issued, seconds);
            tracing::info!(%identity, not_after = %response.not_after, "certified");
            axum::Json(response).into_response()
        }
        Err(error) => {
            shared.metrics.certified(error.result(), seconds);
            match error.result() {
                CertifyResult::error => tracing::warn!(%error, "certification failed"),
                CertifyResult::bad_request => tracing::debug!(%error, "bad certification request"),
                _ => tracing::info!(%error, "certification refused"),
            }
            error.into_response()
        }
    }
}

async fn answer(shared: &Shared, body: Body) -> Result<(SpiffeId, CertifyResponse), CertifyError> {
    let bytes = read_body(
        body,
        shared.config.max_body_bytes,
        shared.config.body_timeout,
    )
    .await?;
    let request: CertifyRequest = serde_json::from_slice(&bytes).map_err(|e| {
        CertifyError::BadRequest(format!(
            "expected JSON {{\"token\": \"...\", \"csr\": \"...\"}}: {e}"
        ))
    })?;
    if request.token.trim().is_empty() {
        return Err(CertifyError::BadRequest("the token is empty".to_owned()));
    }
    // Cheap checks first: a malformed CSR never costs an API server call.
    let csr = CertificateRequest::from_pem(&request.csr)
        .map_err(|e| CertifyError::BadRequest(e.to_string()))?;

    let account = review(shared, request.token.trim()).await?;
    let identity = SpiffeId::new(
        &shared.config.trust_domain,
        &account.namespace,
        &account.name,
    )
    .map_err(|e| {
        Unauthenticated::NotAServiceAccount(format!(
            "system:serviceaccount:{}:{} ({e})",
            account.namespace, account.name
        ))
    })?;
    csr.check_identity(&identity)
        .map_err(|e| CertifyError::Forbidden(e.to_string()))?;
    if csr.asks_for_ca() {
        tracing::debug!(%identity, "the CSR asks to be a CA; issuing a leaf as always");
    }

    let loaded = shared.issuers.current().ok_or_else(|| {
        CertifyError::Unavailable("no issuer is loaded yet; try again shortly".to_owned())
    })?;
    let issued = loaded
        .issuer
        .certify(
            &csr,
            &identity,
            shared.config.leaf_lifetime,
            SystemTime::now(),
        )
        .map_err(|e| match e {
            weft_certs::Error::CaNotValidNow { .. } => CertifyError::Unavailable(format!(
                "the issuer cannot sign now: {e}; rotate the issuer"
            )),
            other => CertifyError::Internal(format!("cannot sign the certificate: {other}")),
        })?;
    let response = CertifyResponse {
        certificate: issued.cert_pem,
        chain: issued.chain_pem,
        not_after: super::rfc3339(issued.not_after),
    };
    Ok((identity, response))
}

/// Asks the API server whose token this is, with a bound on how many
/// reviews run at once.
async fn review(shared: &Shared, token: &str) -> Result<token::ServiceAccountRef, CertifyError> {
    let _permit = acquire(&shared.reviews, shared.config.queue_timeout).await?;
    let status = shared
        .reviewer
        .review(token)
        .await
        .map_err(|e| CertifyError::Unavailable(format!("cannot check the token: {e}")))?;
    Ok(token::interpret(&status)?)
}

async fn acquire(
    semaphore: &Semaphore,
    wait: Duration,
) -> Result<tokio::sync::SemaphorePermit<'_>, CertifyError> {
    match tokio::time::timeout(wait, semaphore.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(CertifyError::Unavailable(
            "too many certification requests in flight; try again shortly".to_owned(),
        )),
    }
}

/// Reads at most `limit` bytes of body within `timeout`.
async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, CertifyError> {
    let declared = axum::body::HttpBody::size_hint(&body).lower();
    if declared > limit as u64 {
        return Err(CertifyError::TooLarge { limit });
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(CertifyError::BodyTimeout(timeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(CertifyError::TooLarge { limit })
        }
        Ok(Err(error)) => Err(CertifyError::BadRequest(format!(
            "cannot read the request body: {error}"
        ))),
    }
}
