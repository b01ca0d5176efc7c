//! The test application's gRPC streaming routes, `POST /grpc.test.Stream/...`
//! (HTTP/2, `content-type: application/grpc`):
//!
//! - `Server/{n}/{size}/{code}`: reads the request, then sends `n` messages
//!   of `size` bytes (message `i` is [`payload`]`(i, size)`) and
//!   `grpc-status: code` in the trailers;
//! - `Client/{code}`: reads every message, then answers one [`Summary`] of
//!   them and `code`;
//! - `Bidi/{code}`: echoes each message the moment it is whole; `code` once
//!   the request ends;
//! - `ResetAfter/{n}`: after a first request message, `n` messages of 100
//!   bytes; after a second one (the client saw them all: an HTTP/2 reset
//!   discards frames still queued), resets the stream;
//! - `Endless`: a small message every few milliseconds until the client goes
//!   away, which it counts in [`Events::cancelled`].

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use super::grpc::{self, BodySender, BoxError, Messages, Next};
use super::{Payload, TestResult};

/// The path prefix of these routes.
pub const PREFIX: &str = "/grpc.test.Stream/";

/// What the routes saw that a test cannot see from the client.
#[derive(Debug, Default)]
pub struct Events {
    /// `Endless` streams whose client went away (a reset reached the server).
    pub cancelled: AtomicUsize,
}

impl Events {
    /// Waits until `n` streams were cancelled, at most `limit`.
    pub async fn wait_cancelled(&self, n: usize, limit: Duration) -> TestResult {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let seen = self.cancelled.load(Ordering::SeqCst);
            if seen >= n {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(
                    format!("{seen} cancelled streams reached the server, {n} expected").into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Message `i` of `size` bytes: reproducible from its index.
pub fn payload(i: u64, size: usize) -> Bytes {
    let mut data = vec![0u8; size];
    Payload::new(0x6772_7063 + i).fill(&mut data);
    Bytes::from(data)
}

/// What `Client/{code}` answers: how many messages, how many bytes, and the
/// SHA-256 of their concatenation.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub count: u32,
    pub bytes: u64,
    pub sha256: [u8; 32],
}

impl Summary {
    /// The summary of `messages`.
    pub fn of<'a>(messages: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut hash = Sha256::new();
        let (mut count, mut bytes) = (0, 0);
        for message in messages {
            hash.update(message);
            count += 1;
            bytes += message.len() as u64;
        }
        Self {
            count,
            bytes,
            sha256: hash.finalize().into(),
        }
    }

    fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(44);
        out.put_u32(self.count);
        out.put_u64(self.bytes);
        out.put_slice(&self.sha256);
        out.freeze()
    }

    /// Reads what [`Summary::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> TestResult<Self> {
        if bytes.len() != 44 {
            return Err(format!("a summary is 44 bytes, got {}", bytes.len()).into());
        }
        Ok(Self {
            count: u32::from_be_bytes(bytes[..4].try_into()?),
            bytes: u64::from_be_bytes(bytes[4..12].try_into()?),
            sha256: bytes[12..].try_into()?,
        })
    }
}

type Body = BoxBody<Bytes, BoxError>;

/// Answers one request under [`PREFIX`].
pub fn route(events: Arc<Events>, req: Request<Incoming>) -> Response<Body> {
    let path = req
        .uri()
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or_default()
        .to_owned();
    let args: Vec<&str> = path.split('/').collect();
    let (tx, body) = grpc::channel();
    let request = Messages::new(req.into_body());
    let started = match args.as_slice() {
        ["Server", n, size, code] => number(n).and_then(|n| {
            let size = number(size)?;
            let code = (*code).to_owned();
            Some(tokio::spawn(server_stream(request, tx, n, size, code)))
        }),
        ["Client", code] => Some(tokio::spawn(client_stream(request, tx, (*code).to_owned()))),
        ["Bidi", code] => Some(tokio::spawn(bidi(request, tx, (*code).to_owned()))),
        ["ResetAfter", n] => number(n).map(|n| tokio::spawn(reset_after(request, tx, n))),
        ["Endless"] => Some(tokio::spawn(endless(tx, events))),
        _ => None,
    };
    let status = if started.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let mut response = Response::new(body.boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    response
}

fn number<T: FromStr>(text: &str) -> Option<T> {
    text.parse().ok()
}

async fn server_stream(
    mut request: Messages,
    tx: BodySender,
    n: u64,
    size: usize,
    code: String,
) -> TestResult {
    while let Next::Message(_) = request.next().await? {}
    for i in 0..n {
        tx.message(&payload(i, size)).await?;
    }
    tx.trailers(&code).await
}

async fn client_stream(mut request: Messages, tx: BodySender, code: String) -> TestResult {
    let mut received = Vec::new();
    while let Next::Message(message) = request.next().await? {
        received.push(message);
    }
    let summary = Summary::of(received.iter().map(|m| &m[..]));
    tx.message(&summary.encode()).await?;
    tx.trailers(&code).await
}

async fn bidi(mut request: Messages, tx: BodySender, code: String) -> TestResult {
    while let Next::Message(message) = request.next().await? {
        tx.message(&message).await?;
    }
    tx.trailers(&code).await
}

async fn reset_after(mut request: Messages, tx: BodySender, n: u64) -> TestResult {
    request.message().await?;
    for i in 0..n {
        tx.message(&payload(i, 100)).await?;
    }
    request.message().await?;
    tx.reset("the server gave up mid-stream").await
}

async fn endless(tx: BodySender, events: Arc<Events>) -> TestResult {
    for i in 0..100_000 {
        if tx.message(&payload(i, 64)).await.is_err() {
            events.cancelled.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err("the client never went away".into())
}
