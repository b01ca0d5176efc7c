//! `emojivoto web`: the front end. HTTP/1.1 (and h2c) on one port:
//!
//! | path | answer |
//! | --- | --- |
//! | `/`, `/leaderboard` | the page (embedded, no CDN), which uses the API |
//! | `/api/list` | `ListAll`: `[{"shortcode", "unicode"}]` |
//! | `/api/vote?choice=:joy:` | `FindByShortcode`, then `Vote<Name>`: 200, or 400/500 with `{"error"}` |
//! | `/api/leaderboard` | `Results` and `ListAll`: `[{"shortcode", "unicode", "votes"}]` |
//! | `/js` | the file of `--index-bundle`, when given (the sample's bundle path) |
//! | `/healthz` | 200 "ok" |
//!
//! It calls emoji-svc and voting-svc over one HTTP/2 connection each
//! ([`Channel`]), so a mesh sees web's calls as gRPC.

mod shapes;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::emoji_svc;
use crate::grpc::{Channel, Status};
use crate::health;
use crate::proto::{
    Empty, FindByShortcodeRequest, FindByShortcodeResponse, ListAllEmojiResponse, ResultsResponse,
};
use crate::query;
use crate::serve;
use crate::shutdown::Shutdown;
use crate::vote_method;
use crate::voting_svc;

/// The page at `/`: plain HTML and script, no external resources.
const PAGE: &str = include_str!("web/page.html");

/// Form bodies of `POST /api/vote` are a few bytes; more is refused.
const MAX_FORM: usize = 64 * 1024;

/// What web talks to.
#[derive(Debug)]
pub struct WebConfig {
    pub emoji: Channel,
    pub voting: Channel,
    /// Served at `/js` (read at start).
    pub index_bundle: Option<Bytes>,
}

/// Serves the web app on `listener` until `shutdown`.
pub async fn run(listener: TcpListener, config: WebConfig, shutdown: Shutdown, grace: Duration) {
    let app = Arc::new(config);
    let handler = hyper::service::service_fn(move |req| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(route(&app, req).await) }
    });
    serve::serve("web", listener, handler, shutdown, grace).await;
}

async fn route(app: &WebConfig, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
    let response = match path.as_str() {
        "/api/vote" if read_only || req.method() == Method::POST => vote(app, req).await,
        _ if !read_only => error(StatusCode::METHOD_NOT_ALLOWED, "GET only"),
        "/" | "/index.html" | "/leaderboard" => {
            respond(StatusCode::OK, "text/html; charset=utf-8", PAGE.into())
        }
        health::PATH => respond(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
        "/api/list" => list(app).await,
        "/api/leaderboard" => leaderboard(app).await,
        "/js" => match &app.index_bundle {
            Some(js) => respond(StatusCode::OK, "text/javascript", js.clone()),
            None => error(StatusCode::NOT_FOUND, "no --index-bundle given"),
        },
        _ => error(StatusCode::NOT_FOUND, &format!("not found: {path}")),
    };
    let status = response.status();
    if status.is_server_error() {
        tracing::info!(%path, %status, "request failed");
    } else {
        tracing::debug!(%path, %status, "request");
    }
    response
}

async fn list(app: &WebConfig) -> Response<Full<Bytes>> {
    let path = format!("/{}/ListAll", emoji_svc::SERVICE);
    match app
        .emoji
        .unary::<_, ListAllEmojiResponse>(&path, &Empty)
        .await
    {
        Ok(response) => json(StatusCode::OK, &shapes::listed(response.list)),
        Err(status) => rpc_failed(&status),
    }
}

async fn vote(app: &WebConfig, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let choice = match choice(req).await {
        Ok(choice) => choice.unwrap_or_default(),
        Err(response) => return response,
    };
    if choice.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("Emoji choice [{choice}] is mandatory"),
        );
    }
    let find = format!("/{}/FindByShortcode", emoji_svc::SERVICE);
    let request = FindByShortcodeRequest {
        shortcode: choice.clone(),
    };
    let found = match app
        .emoji
        .unary::<_, FindByShortcodeResponse>(&find, &request)
        .await
    {
        Ok(FindByShortcodeResponse { emoji: Some(emoji) }) => emoji,
        Ok(FindByShortcodeResponse { emoji: None }) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("Chosen emoji shortcode [{choice}] doesn't exist"),
            );
        }
        Err(status) => return rpc_failed(&status),
    };
    let Some(method) = vote_method::method_for(&found.shortcode) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("no vote method for [{}]", found.shortcode),
        );
    };
    let path = format!("/{}/{method}", voting_svc::SERVICE);
    match app.voting.unary::<_, Empty>(&path, &Empty).await {
        // The sample answers a vote with 200 and nothing else.
        Ok(Empty) => respond(StatusCode::OK, "text/plain; charset=utf-8", Bytes::new()),
        Err(status) => rpc_failed(&status),
    }
}

/// `choice` from the query, or for a form POST from the body too (as Go's
/// `FormValue`, body first); a malformed query or body is a 400.
async fn choice(req: Request<Incoming>) -> Result<Option<String>, Response<Full<Bytes>>> {
    let bad = |err: query::QueryError| error(StatusCode::BAD_REQUEST, &format!("bad query: {err}"));
    let from_query = query::param(req.uri().query().unwrap_or(""), "choice").map_err(bad)?;
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if req.method() != Method::POST || !is_form {
        return Ok(from_query);
    }
    let body = Limited::new(req.into_body(), MAX_FORM)
        .collect()
        .await
        .map_err(|err| error(StatusCode::BAD_REQUEST, &format!("reading the form: {err}")))?
        .to_bytes();
    let body = std::str::from_utf8(&body)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "the form is not UTF-8"))?;
    let from_body = query::param(body, "choice").map_err(bad)?;
    Ok(from_body.or(from_query))
}

async fn leaderboard(app: &WebConfig) -> Response<Full<Bytes>> {
    let results = format!("/{}/Results", voting_svc::SERVICE);
    let results = match app
        .voting
        .unary::<_, ResultsResponse>(&results, &Empty)
        .await
    {
        Ok(response) => response.results,
        Err(status) => return rpc_failed(&status),
    };
    // One ListAll for the unicode of every entry, rather than the
    // sample's FindByShortcode per entry.
    let list = format!("/{}/ListAll", emoji_svc::SERVICE);
    let list = match app
        .emoji
        .unary::<_, ListAllEmojiResponse>(&list, &Empty)
        .await
    {
        Ok(response) => response.list,
        Err(status) => return rpc_failed(&status),
    };
    json(StatusCode::OK, &shapes::ranked(results, &list))
}

/// A failed call to a backend: 500 with its status, as the sample.
fn rpc_failed(status: &Status) -> Response<Full<Bytes>> {
    error(StatusCode::INTERNAL_SERVER_ERROR, &status.to_string())
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        &shapes::ErrorBody {
            error: message.to_string(),
        },
    )
}

fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(body) {
        Ok(mut bytes) => {
            // Go's json.Encoder ends the document with a newline.
            bytes.push(b'\n');
            respond(status, "application/json; charset=UTF-8", bytes.into())
        }
        Err(err) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("cannot write JSON: {err}\n").into(),
        ),
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
