//! The admin port of the gRPC services: `GET /healthz` answers 200 "ok"
//! over plain HTTP/1.1, so Kubernetes `httpGet` probes work without a gRPC
//! health client.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::net::TcpListener;

use crate::serve;
use crate::shutdown::Shutdown;

/// The probe path.
pub const PATH: &str = "/healthz";

/// Serves the admin port until `shutdown`.
pub async fn serve(listener: TcpListener, shutdown: Shutdown, grace: Duration) {
    let handler =
        hyper::service::service_fn(|req| async move { Ok::<_, Infallible>(answer(&req)) });
    serve::serve("admin", listener, handler, shutdown, grace).await;
}

fn answer<B>(req: &Request<B>) -> Response<Full<Bytes>> {
    let (status, text) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, PATH) => (StatusCode::OK, "ok\n"),
        (_, PATH) => (StatusCode::METHOD_NOT_ALLOWED, "GET only\n"),
        _ => (
            StatusCode::NOT_FOUND,
            "not found: the admin port has /healthz\n",
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(method: Method, path: &str) -> StatusCode {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .expect("request");
        answer(&req).status()
    }

    #[test]
    fn paths() {
        assert_eq!(get(Method::GET, "/healthz"), StatusCode::OK);
        assert_eq!(
            get(Method::POST, "/healthz"),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(get(Method::GET, "/"), StatusCode::NOT_FOUND);
    }
}
