//! A deadline on a connection's first bytes.
//!
//! hyper bounds an HTTP/1 request head (`header_read_timeout`), but not the
//! moment before it knows the protocol: to tell HTTP/1 from HTTP/2 it waits
//! for the 24-byte HTTP/2 preface, and a client that completes TLS and then
//! sends nothing (or half a preface) would hold the connection for ever.
//! [`FirstBytes`] fails the read with `TimedOut` unless those first bytes
//! arrive in time; after them it is a plain pass-through.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Length of the HTTP/2 client preface, which decides the protocol.
pub(super) const PREFACE_LEN: usize = 24;

/// An I/O stream whose first `remaining` bytes must arrive before a deadline.
pub(super) struct FirstBytes<I> {
    io: I,
    remaining: usize,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<I> FirstBytes<I> {
    /// Requires `len` bytes from `io` within `timeout`.
    pub(super) fn new(io: I, len: usize, timeout: Duration) -> Self {
        FirstBytes {
            io,
            remaining: len,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for FirstBytes<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if this.deadline.is_some() {
                    let read = buf.filled().len() - before;
                    this.remaining = this.remaining.saturating_sub(read);
                    // Done waiting once the bytes are in, or the stream ended.
                    if this.remaining == 0 || read == 0 || result.is_err() {
                        this.deadline = None;
                    }
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if !expired {
                    return Poll::Pending;
                }
                this.deadline = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent no request in time",
                )))
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FirstBytes<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn silence_times_out() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = FirstBytes::new(server, PREFACE_LEN, Duration::from_millis(100));
        let mut buf = [0u8; 8];
        let error = server.read(&mut buf).await.expect_err("times out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }

    #[tokio::test]
    async fn half_a_preface_times_out() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = FirstBytes::new(server, PREFACE_LEN, Duration::from_millis(100));
        client
            .write_all(b"PRI * HTTP/2.0\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        assert_eq!(server.read(&mut buf).await.expect("first part"), 16);
        let error = server.read(&mut buf).await.expect_err("times out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn after_the_first_bytes_silence_is_allowed() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = FirstBytes::new(server, 4, Duration::from_millis(100));
        client
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        assert_eq!(server.read(&mut buf).await.expect("request"), 16);
        // Past the deadline, the stream still works both ways.
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.write_all(b"more").await.expect("write");
        assert_eq!(server.read(&mut buf).await.expect("more"), 4);
        server.write_all(b"answer").await.expect("answer");
        let mut answer = [0u8; 6];
        client.read_exact(&mut answer).await.expect("read answer");
        assert_eq!(&answer, b"answer");
    }
}
