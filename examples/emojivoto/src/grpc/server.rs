//! The server side of a unary gRPC call: check the request is gRPC, read
//! its one message, hand it to the service, and answer with the message or
//! the status in trailers.
//!
//! Every failure is a gRPC status with HTTP 200 (except a request that is
//! not gRPC at all: 415 or 405, as the spec asks), so a bad client gets a
//! precise answer and the connection keeps serving others.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::WithTrailers;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::frame::{self, MAX_MESSAGE};
use super::status::{Code, Status, percent_encode};
use crate::health;
use crate::proto::DecodeError;
use crate::serve;
use crate::shutdown::Shutdown;

/// A response body: at most one framed message, then trailers.
pub type Body = WithTrailers<Full<Bytes>, Ready<Option<Result<HeaderMap, Infallible>>>>;

/// A gRPC service: unary methods on raw protobuf bytes.
pub trait Service: Send + Sync + 'static {
    /// The fully-qualified name, as in paths: `emojivoto.v1.EmojiService`.
    fn name(&self) -> &'static str;

    /// Runs `method` on the encoded `request`; an unknown method is
    /// [`unimplemented()`].
    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status>;
}

/// The status for a method the service does not have.
pub fn unimplemented(service: &str, method: &str) -> Status {
    Status::new(
        Code::Unimplemented,
        format!("unknown method {method} for service {service}"),
    )
}

impl From<DecodeError> for Status {
    /// A message that does not decode: INTERNAL, as grpc-go answers.
    fn from(err: DecodeError) -> Status {
        Status::new(Code::Internal, format!("cannot decode the message: {err}"))
    }
}

/// Serves `service` on `listener` (HTTP/2; HTTP/1.1 only reaches
/// `/healthz`) until `shutdown`, then drains for at most `grace`.
pub async fn serve<S: Service>(
    service: Arc<S>,
    listener: TcpListener,
    shutdown: Shutdown,
    grace: Duration,
) {
    let handler = hyper::service::service_fn(move |req| {
        let service = Arc::clone(&service);
        async move { Ok::<_, Infallible>(handle(service.as_ref(), req).await) }
    });
    serve::serve("gRPC", listener, handler, shutdown, grace).await;
}

/// Answers one request.
pub async fn handle<S: Service + ?Sized>(service: &S, req: Request<Incoming>) -> Response<Body> {
    // Kubernetes probes may be pointed here too: answer them plainly.
    if req.method() == Method::GET && req.uri().path() == health::PATH {
        return plain(StatusCode::OK, "ok\n");
    }
    let is_grpc = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(super::CONTENT_TYPE));
    if !is_grpc {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "gRPC only: content-type application/grpc\n",
        );
    }
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "gRPC calls are POST\n");
    }
    let path = req.uri().path().to_string();
    let result = call(service, &path, req.into_body()).await;
    match &result {
        Ok(_) => tracing::debug!(%path, "OK"),
        Err(status) => tracing::info!(%path, %status, "call failed"),
    }
    response(result)
}

async fn call<S: Service + ?Sized>(
    service: &S,
    path: &str,
    body: Incoming,
) -> Result<Vec<u8>, Status> {
    let method = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .filter(|(name, _)| *name == service.name())
        .map(|(_, method)| method);
    let Some(method) = method else {
        return Err(Status::new(
            Code::Unimplemented,
            format!("unknown service or path {path}"),
        ));
    };
    // Read at most one maximal message and its header: anything longer
    // is refused without buffering it.
    let body = Limited::new(body, MAX_MESSAGE + 5)
        .collect()
        .await
        .map_err(|err| {
            if err.is::<http_body_util::LengthLimitError>() {
                Status::new(Code::ResourceExhausted, "request above 4 MiB")
            } else {
                Status::new(Code::Cancelled, format!("reading the request: {err}"))
            }
        })?
        .to_bytes();
    let message = frame::decode_unary(&body, MAX_MESSAGE)?;
    service.call(method, message)
}

fn response(result: Result<Vec<u8>, Status>) -> Response<Body> {
    let (data, status) = match result {
        Ok(message) => (frame::encode(&message), None),
        Err(status) => (Bytes::new(), Some(status)),
    };
    let mut trailers = HeaderMap::new();
    let code = status.as_ref().map_or(Code::Ok, |s| s.code);
    trailers.insert("grpc-status", HeaderValue::from(code.number()));
    if let Some(status) = &status {
        // percent_encode gives visible ASCII only: always a valid value.
        if let Ok(message) = HeaderValue::from_str(&percent_encode(&status.message)) {
            trailers.insert("grpc-message", message);
        }
    }
    let mut response = Response::new(Full::new(data).with_trailers(ready(Some(Ok(trailers)))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(super::CONTENT_TYPE));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response =
        Response::new(Full::new(Bytes::from_static(text.as_bytes())).with_trailers(ready(None)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
