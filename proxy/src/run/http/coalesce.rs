//! Small writes held for one turn of the runtime, so that what belongs
//! together leaves in one segment.
//!
//! hyper's HTTP/2 client flushes a request's HEADERS frame as soon as the
//! stream opens, and the body's DATA frame a moment later from another
//! task: two writes, so the server wakes up twice for one small request.
//! Wrapped in [`Coalesce`], a flush of a few small frames first yields once
//! (the body task runs and queues its DATA), then writes everything in one
//! call. Large writes go straight through: bulk transfers pay nothing.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A write at least this large (with nothing held) is not held back.
const SMALL: usize = 4 * 1024;
/// Held bytes past this are written before more are taken.
const MAX_HELD: usize = 64 * 1024;

pin_project_lite::pin_project! {
    /// `inner`, with small writes held until a flush that follows a yield.
    #[derive(Debug)]
    pub struct Coalesce<T> {
        #[pin]
        inner: T,
        held: Vec<u8>,
        yielded: bool,
    }
}

impl<T> Coalesce<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            held: Vec::new(),
            yielded: false,
        }
    }
}

impl<T: AsyncWrite> Coalesce<T> {
    /// Writes every held byte to `inner`.
    fn poll_drain(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        let mut written = 0;
        while written < this.held.len() {
            match this.inner.as_mut().poll_write(cx, &this.held[written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    this.held.drain(..written);
                    return Poll::Pending;
                }
            }
        }
        this.held.clear();
        *this.yielded = false;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead> AsyncRead for Coalesce<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for Coalesce<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if self.held.is_empty() && len >= SMALL {
            return self.project().inner.poll_write_vectored(cx, bufs);
        }
        if self.held.len() + len > MAX_HELD {
            ready!(self.as_mut().poll_drain(cx))?;
            if len >= SMALL {
                return self.project().inner.poll_write_vectored(cx, bufs);
            }
        }
        let held = self.project().held;
        for buf in bufs {
            held.extend_from_slice(buf);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.held.is_empty() {
            if !self.yielded {
                // Let the tasks that are ready (a body about to send its
                // DATA) run first; the next flush writes it all at once.
                *self.as_mut().project().yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(self.as_mut().poll_drain(cx))?;
        }
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_drain(cx))?;
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_writes_leave_together_after_one_flush() -> io::Result<()> {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut io = Coalesce::new(near);
        io.write_all(b"HEADERS").await?;
        io.write_all(b" DATA").await?;
        // Nothing is written before the flush.
        let mut buf = [0u8; 64];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(20), far.read(&mut buf)).await;
        assert!(early.is_err(), "{early:?}");
        io.flush().await?;
        let n = far.read(&mut buf).await?;
        assert_eq!(&buf[..n], b"HEADERS DATA");
        Ok(())
    }

    #[tokio::test]
    async fn large_writes_go_straight_through_and_order_is_kept() -> io::Result<()> {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut io = Coalesce::new(near);
        let big = vec![7u8; SMALL * 2];
        io.write_all(&big).await?;
        let mut got = vec![0u8; big.len()];
        far.read_exact(&mut got).await?;
        assert_eq!(got, big);
        // Held bytes go before a large write that follows them.
        io.write_all(b"small").await?;
        io.write_all(&big).await?;
        io.shutdown().await?;
        let mut all = Vec::new();
        far.read_to_end(&mut all).await?;
        assert_eq!(&all[..5], b"small");
        assert_eq!(&all[5..], &big[..]);
        Ok(())
    }
}
