//! Every way a destination request fails, and the HTTP answer for each: a
//! status and a JSON body `{"error": "..."}` a human can read in `curl`.

use std::net::IpAddr;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Seconds a client is told to wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// Why a destination request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// No `addr` query parameter.
    #[error("missing query parameter addr (addr=IP:PORT, IPv6 as [IP]:PORT)")]
    MissingAddr,
    /// `addr` is not an IP and a port.
    #[error("addr {0:?} is not IP:PORT (IPv6 as [IP]:PORT)")]
    BadAddr(String),
    /// `addr` names port 0, which nothing connects to.
    #[error("addr {0:?} has port 0; give the port the client connects to")]
    PortZero(String),
    /// The query string does not decode.
    #[error("bad query string: {0}")]
    BadQuery(String),
    /// The watch caches have not finished their first list.
    #[error("destination has not finished reading the cluster's pods yet; retry shortly")]
    NotReady,
    /// The global cap on open watches is reached.
    #[error("too many watches are open ({limit}); retry later")]
    TooManyWatches {
        /// The cap.
        limit: usize,
    },
    /// One client has as many watches open as it may.
    #[error("client {client} already has {limit} watches open; close some first")]
    TooManyClientWatches {
        /// The client's IP.
        client: IpAddr,
        /// The per-client cap.
        limit: usize,
    },
}

impl DestinationError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            DestinationError::MissingAddr
            | DestinationError::BadAddr(_)
            | DestinationError::PortZero(_)
            | DestinationError::BadQuery(_) => StatusCode::BAD_REQUEST,
            DestinationError::NotReady | DestinationError::TooManyWatches { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            DestinationError::TooManyClientWatches { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Whether the request itself was wrong (as opposed to the server being
    /// unable to serve it now).
    pub fn is_bad_request(&self) -> bool {
        self.status() == StatusCode::BAD_REQUEST
    }
}

impl IntoResponse for DestinationError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response =
            (status, Json(serde_json::json!({"error": self.to_string()}))).into_response();
        if !self.is_bad_request() {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}
