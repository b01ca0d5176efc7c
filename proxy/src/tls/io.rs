//! The two byte streams of a proxied connection, plaintext or mesh TLS,
//! as one type each so the detection, HTTP and TCP layers stay generic and
//! compile once: [`ClientIo`] (what the proxy accepted) and [`UpstreamIo`]
//! (what it dialled).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{client, server};

/// An accepted connection: plaintext, or mesh TLS terminated by the proxy.
#[derive(Debug)]
pub enum ClientIo {
    /// Plaintext (or the application's own TLS, passed through).
    Plain(TcpStream),
    /// Mesh TLS from another proxy.
    Mesh(Box<server::TlsStream<TcpStream>>),
}

impl ClientIo {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(tcp) => tcp,
            Self::Mesh(tls) => tls.get_ref().0,
        }
    }

    /// Makes the close a TCP reset (what a refused connect looks like).
    pub fn set_zero_linger(&self) -> io::Result<()> {
        self.tcp().set_zero_linger()
    }
}

/// A dialled connection: plaintext, or mesh TLS to a peer proxy.
#[derive(Debug)]
pub enum UpstreamIo {
    /// Plaintext.
    Plain(TcpStream),
    /// Mesh TLS originated by the proxy.
    Mesh(Box<client::TlsStream<TcpStream>>),
}

macro_rules! delegate_io {
    ($ty:ident) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(io) => Pin::new(io).poll_read(cx, buf),
                    Self::Mesh(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
                }
            }
        }

        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Plain(io) => Pin::new(io).poll_write(cx, buf),
                    Self::Mesh(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
                }
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
                    Self::Mesh(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
                }
            }

            fn is_write_vectored(&self) -> bool {
                match self {
                    Self::Plain(io) => io.is_write_vectored(),
                    Self::Mesh(io) => io.is_write_vectored(),
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(io) => Pin::new(io).poll_flush(cx),
                    Self::Mesh(io) => Pin::new(io.as_mut()).poll_flush(cx),
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(io) => Pin::new(io).poll_shutdown(cx),
                    Self::Mesh(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
                }
            }
        }
    };
}

delegate_io!(ClientIo);
delegate_io!(UpstreamIo);
