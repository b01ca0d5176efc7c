//! The client side of unary gRPC calls: one HTTP/2 connection to a
//! `host:port`, shared by every call (HTTP/2 multiplexes them), made again
//! when it fails.
//!
//! The host is resolved each time a connection is made, so a Service's
//! DNS name follows its pods; every call has a deadline, sent along as
//! `grpc-timeout` and enforced here.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, TE, USER_AGENT};
use http::uri::Authority;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::frame::{self, MAX_MESSAGE};
use super::status::{Code, Status, percent_decode};
use crate::proto::Message;

/// A connection (made when first needed) to one gRPC server.
#[derive(Debug)]
pub struct Channel {
    authority: Authority,
    timeout: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    conn: Option<Conn>,
    /// Connections made so far: the next one's generation.
    made: u64,
}

#[derive(Debug)]
struct Conn {
    /// Tells a failed connection from one made since by another call.
    generation: u64,
    sender: SendRequest<Full<Bytes>>,
}

impl Channel {
    /// A channel to `authority` (`host:port`) whose calls give up after
    /// `timeout`, connecting included.
    pub fn new(authority: Authority, timeout: Duration) -> Self {
        Channel {
            authority,
            timeout,
            state: Mutex::new(State::default()),
        }
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Calls `path` (`/package.Service/Method`) with `request`.
    pub async fn unary<Req: Message, Resp: Message>(
        &self,
        path: &str,
        request: &Req,
    ) -> Result<Resp, Status> {
        let body = frame::encode(&request.encode());
        let answer = tokio::time::timeout(self.timeout, self.call(path, body))
            .await
            .map_err(|_| {
                Status::new(
                    Code::DeadlineExceeded,
                    format!("{} gave no answer in {:?}", self.authority, self.timeout),
                )
            })??;
        Resp::decode(&answer).map_err(|err| {
            Status::new(Code::Internal, format!("cannot decode the response: {err}"))
        })
    }

    /// One call, retried once on a new connection when the old one turned
    /// out dead before the request left (so it cannot have been counted).
    async fn call(&self, path: &str, body: Bytes) -> Result<Bytes, Status> {
        let mut retried = false;
        loop {
            let (generation, mut sender) = self.sender().await?;
            let request = self.request(path, body.clone())?;
            let sent = match sender.ready().await {
                Ok(()) => sender.try_send_request(request).await,
                Err(err) => {
                    self.forget(generation).await;
                    if retried {
                        return Err(unavailable(&self.authority, &err));
                    }
                    retried = true;
                    continue;
                }
            };
            match sent {
                Ok(response) => return read(response).await,
                Err(mut err) => {
                    self.forget(generation).await;
                    let unsent = err.take_message().is_some();
                    if unsent && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(unavailable(&self.authority, err.error()));
                }
            }
        }
    }

    /// The shared connection, made now if there is none or it closed.
    async fn sender(&self) -> Result<(u64, SendRequest<Full<Bytes>>), Status> {
        let mut state = self.state.lock().await;
        if let Some(c) = state.conn.as_ref().filter(|c| !c.sender.is_closed()) {
            return Ok((c.generation, c.sender.clone()));
        }
        let sender = self.connect().await?;
        state.made += 1;
        let generation = state.made;
        state.conn = Some(Conn {
            generation,
            sender: sender.clone(),
        });
        Ok((generation, sender))
    }

    /// Drops the connection of `generation`, unless a newer one replaced it.
    async fn forget(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state
            .conn
            .as_ref()
            .is_some_and(|c| c.generation == generation)
        {
            state.conn = None;
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Status> {
        let target = self.authority.as_str();
        let addrs = tokio::net::lookup_host(target).await.map_err(|err| {
            Status::new(Code::Unavailable, format!("cannot resolve {target}: {err}"))
        })?;
        let mut last_err = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(err) => last_err = Some(format!("{addr}: {err}")),
            }
        }
        let stream = stream.ok_or_else(|| {
            let why = last_err.unwrap_or_else(|| "no address".to_string());
            Status::new(
                Code::Unavailable,
                format!("cannot connect to {target}: {why}"),
            )
        })?;
        // Small messages, one at a time: do not wait to fill a segment.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // Find a dead peer (a pod gone without a FIN) between calls.
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|err| unavailable(&self.authority, &err))?;
        let authority = self.authority.clone();
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::info!(%authority, %err, "gRPC connection ended");
            }
        });
        tracing::debug!(%target, "gRPC connection made");
        Ok(sender)
    }

    fn request(&self, path: &str, body: Bytes) -> Result<Request<Full<Bytes>>, Status> {
        let uri = format!("http://{}{path}", self.authority);
        // grpc-timeout takes at most 8 digits.
        let millis = self.timeout.as_millis().min(99_999_999);
        Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, super::CONTENT_TYPE)
            .header(TE, "trailers")
            .header("grpc-timeout", format!("{millis}m"))
            .header(
                USER_AGENT,
                concat!("weft-emojivoto/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))
            .map_err(|err| Status::new(Code::Internal, format!("bad request for {path}: {err}")))
    }
}

fn unavailable(authority: &Authority, err: &hyper::Error) -> Status {
    Status::new(Code::Unavailable, format!("{authority}: {err}"))
}

/// The message of a response, or its status as an error.
async fn read(response: Response<Incoming>) -> Result<Bytes, Status> {
    let (parts, body) = response.into_parts();
    if parts.status != StatusCode::OK {
        return Err(Status::new(
            Code::from_http(parts.status),
            format!("HTTP {} instead of a gRPC answer", parts.status),
        ));
    }
    let collected = Limited::new(body, MAX_MESSAGE + 5)
        .collect()
        .await
        .map_err(|err| Status::new(Code::Internal, format!("reading the response: {err}")))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let data = collected.to_bytes();
    // A "Trailers-Only" answer carries the status in its headers.
    check_status(&trailers).or_else(|missing| {
        if parts.headers.contains_key("grpc-status") {
            check_status(&parts.headers)
        } else {
            Err(missing)
        }
    })?;
    let message = frame::decode_unary(&data, MAX_MESSAGE).map_err(Status::from)?;
    Ok(Bytes::copy_from_slice(message))
}

/// `Ok` for grpc-status 0; the status otherwise, or INTERNAL without one.
fn check_status(headers: &HeaderMap) -> Result<(), Status> {
    let Some(value) = headers.get("grpc-status") else {
        return Err(Status::new(Code::Internal, "the answer has no grpc-status"));
    };
    let code = value
        .to_str()
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(Code::Unknown, Code::from_number);
    if code == Code::Ok {
        return Ok(());
    }
    let message = headers
        .get("grpc-message")
        .map(|v| percent_decode(v.as_bytes()))
        .unwrap_or_default();
    Err(Status::new(code, message))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn statuses_from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(check_status(&h).map_err(|s| s.code), Err(Code::Internal));
        h.insert("grpc-status", HeaderValue::from_static("0"));
        assert_eq!(check_status(&h), Ok(()));
        h.insert("grpc-status", HeaderValue::from_static("2"));
        h.insert("grpc-message", HeaderValue::from_static("ERROR%21"));
        assert_eq!(check_status(&h), Err(Status::new(Code::Unknown, "ERROR!")));
        h.insert("grpc-status", HeaderValue::from_static("x"));
        assert_eq!(check_status(&h).map_err(|s| s.code), Err(Code::Unknown));
    }
}
