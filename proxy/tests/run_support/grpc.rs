//! The gRPC wire format for the proxy tests, without a gRPC library: each
//! message is a 1-byte compressed flag, a 4-byte big-endian length and the
//! bytes; the status comes in the trailers. What the proxy must carry is
//! exactly this: HTTP/2 DATA frames streamed both ways, and trailers.
//!
//! [`ChannelBody`] is a body written message by message while it is being
//! sent (client requests and server responses alike); [`Messages`] reads a
//! body message by message as it arrives.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::TestResult;

/// Errors a body may end with (a reset, on the wire).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One frame of a [`ChannelBody`], or the error that resets its stream.
pub type Item = Result<Frame<Bytes>, BoxError>;

/// Frames one message.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// A body fed through a channel: data frames, trailers, or an error (which
/// resets the stream). It ends when the sender is dropped.
pub struct ChannelBody {
    rx: mpsc::Receiver<Item>,
}

/// A [`ChannelBody`] and the sender that writes it.
pub fn channel() -> (BodySender, ChannelBody) {
    // Small: a writer waits while the peer (through the proxy) has not read.
    let (tx, rx) = mpsc::channel(4);
    (BodySender { tx }, ChannelBody { rx })
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Writes a [`ChannelBody`].
#[derive(Clone)]
pub struct BodySender {
    tx: mpsc::Sender<Item>,
}

impl BodySender {
    /// Sends one message; fails once the body was dropped (the stream is gone).
    pub async fn message(&self, message: &[u8]) -> TestResult {
        self.send(Ok(Frame::data(frame(message)))).await
    }

    /// Sends the trailers with `grpc-status: code`, which end the body.
    pub async fn trailers(&self, code: &str) -> TestResult {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", code.parse()?);
        trailers.insert("grpc-message", "from the test server".parse()?);
        self.send(Ok(Frame::trailers(trailers))).await
    }

    /// Fails the body, which resets its stream.
    pub async fn reset(&self, why: &'static str) -> TestResult {
        self.send(Err(why.into())).await
    }

    /// Resolves once the body is gone (its stream ended or was reset).
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    async fn send(&self, item: Item) -> TestResult {
        self.tx
            .send(item)
            .await
            .map_err(|_| "the body is gone (stream reset or ended)".into())
    }
}

/// What a body yields next, message by message.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// One whole message.
    Message(Bytes),
    /// The body ended, with these trailers (if any).
    End(Option<HeaderMap>),
}

/// Reads a body (request or response) message by message.
pub struct Messages {
    body: Incoming,
    buf: BytesMut,
}

impl Messages {
    /// Reads `body` from its start.
    pub fn new(body: Incoming) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
        }
    }

    /// The next message, or the end; an error when the stream was reset or
    /// a message was cut short.
    pub async fn next(&mut self) -> TestResult<Next> {
        loop {
            if let Some(message) = self.split_message() {
                return Ok(Next::Message(message));
            }
            match self.body.frame().await {
                Some(frame) => match frame?.into_data() {
                    Ok(data) => self.buf.extend_from_slice(&data),
                    Err(frame) => {
                        let trailers = frame.into_trailers().ok();
                        return self.end(trailers);
                    }
                },
                None => return self.end(None),
            }
        }
    }

    /// The next message, which must be there.
    pub async fn message(&mut self) -> TestResult<Bytes> {
        match self.next().await? {
            Next::Message(message) => Ok(message),
            Next::End(_) => Err("the stream ended where a message was expected".into()),
        }
    }

    /// Reads to the end; the trailers' `grpc-status`.
    pub async fn status(&mut self) -> TestResult<String> {
        match self.next().await? {
            Next::End(Some(trailers)) => Ok(trailers
                .get("grpc-status")
                .ok_or("trailers without grpc-status")?
                .to_str()?
                .to_owned()),
            Next::End(None) => Err("the stream ended without trailers".into()),
            Next::Message(m) => {
                Err(format!("a {}-byte message where the end was expected", m.len()).into())
            }
        }
    }

    fn split_message(&mut self) -> Option<Bytes> {
        if self.buf.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if self.buf.len() < 5 + len {
            return None;
        }
        self.buf.advance(5);
        Some(self.buf.split_to(len).freeze())
    }

    fn end(&self, trailers: Option<HeaderMap>) -> TestResult<Next> {
        if self.buf.is_empty() {
            Ok(Next::End(trailers))
        } else {
            Err(format!(
                "the stream ended inside a message ({} bytes left)",
                self.buf.len()
            )
            .into())
        }
    }
}
