//! The upstream side of one proxied HTTP connection.
//!
//! Each accepted connection gets its own upstream connection, in the same
//! protocol, to the same target: the application sees one connection per
//! client connection, as it would without the proxy. The first upstream
//! connection is the one detection already opened; if the server closes it
//! (keep-alive ended), the next request opens another.

use std::io;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Mutex;

use super::super::connect::{Connector, Dial, UpstreamIo};
use super::super::io::PrefixedIo;
use super::coalesce::Coalesce;

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP connect failed or timed out.
    #[error("upstream connect failed: {0}")]
    Connect(#[source] io::Error),
    /// The HTTP handshake (h2 preface, settings) failed.
    #[error("upstream handshake failed: {0}")]
    Handshake(#[source] hyper::Error),
    /// The request failed on the upstream connection.
    #[error("upstream request failed: {0}")]
    Request(#[source] hyper::Error),
}

/// A request that failed, and the request itself when it never left (the
/// connection could not be opened, or refused it unsent): it may then go
/// elsewhere.
#[derive(Debug)]
pub struct SendFailed {
    /// Why.
    pub error: UpstreamError,
    /// The request, when the server cannot have seen it.
    pub unsent: Option<Request<Incoming>>,
}

impl SendFailed {
    fn sent(error: UpstreamError) -> Self {
        Self {
            error,
            unsent: None,
        }
    }
}

impl UpstreamError {
    /// Whether the failure was a timeout (504) rather than a refusal (502).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Connect(e) if e.kind() == io::ErrorKind::TimedOut)
    }
}

/// The HTTP version spoken on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.x: one request at a time per connection.
    Http1,
    /// HTTP/2: multiplexed.
    Http2,
}

type Io = TokioIo<PrefixedIo<UpstreamIo>>;

enum State {
    /// Detection's connection (and anything the server already sent on it).
    Fresh(Dial, Bytes),
    /// A live HTTP/1 connection.
    H1(http1::SendRequest<Incoming>),
    /// A live HTTP/2 connection.
    H2(http2::SendRequest<Incoming>),
    /// Nothing open; the next request connects.
    Closed,
}

/// One client connection's upstream.
pub struct Upstream {
    connector: Connector,
    version: Version,
    state: Mutex<State>,
}

impl Upstream {
    /// An upstream that starts from detection's `dial`; later connections
    /// (plaintext or mesh TLS alike) come from `connector`.
    pub fn new(connector: Connector, version: Version, dial: Dial, server_prefix: Bytes) -> Self {
        Self {
            connector,
            version,
            state: Mutex::new(State::Fresh(dial, server_prefix)),
        }
    }

    /// An upstream with nothing open yet: the first request connects.
    pub fn idle(connector: Connector, version: Version) -> Self {
        Self {
            connector,
            version,
            state: Mutex::new(State::Closed),
        }
    }

    /// Whether a connection is open now (a request sent now does not wait
    /// for a connect). Best effort: `false` while another request holds it.
    pub fn is_connected(&self) -> bool {
        match self.state.try_lock().as_deref() {
            Ok(State::H1(sender)) => !sender.is_closed(),
            Ok(State::H2(sender)) => !sender.is_closed(),
            Ok(State::Fresh(Dial::Connected(_), _)) => true,
            _ => false,
        }
    }

    /// Forwards one request; streams both bodies.
    ///
    /// A request the connection never took (the server closed an idle
    /// keep-alive connection as we picked it) is retried once on a new
    /// connection; a request that may have reached the server is not. A
    /// request that could not be sent comes back in the error.
    pub async fn send(&self, req: Request<Incoming>) -> Result<Response<Incoming>, SendFailed> {
        let mut req = req;
        let mut retried = false;
        loop {
            let sent = match self.version {
                Version::Http1 => {
                    // The client connection sends one request at a time, so
                    // holding the lock until the request is queued costs nothing.
                    let mut state = match self.state.try_lock() {
                        Ok(state) => state,
                        Err(_) => self.state.lock().await,
                    };
                    let mut sender = match std::mem::replace(&mut *state, State::Closed) {
                        // Every request but the first, usually: no await.
                        State::H1(sender) if sender.is_ready() => sender,
                        // Connecting is rare and its future large: boxed, so
                        // that every request's future stays small.
                        other => match Box::pin(self.h1_sender(other)).await {
                            Ok(sender) => sender,
                            Err(error) => return Err(unsent(error, req)),
                        },
                    };
                    let sending = sender.try_send_request(req);
                    *state = State::H1(sender);
                    drop(state);
                    sending.await
                }
                Version::Http2 => {
                    let mut sender = match self.live_h2() {
                        Some(sender) => sender,
                        None => match Box::pin(self.h2_sender()).await {
                            Ok(sender) => sender,
                            Err(error) => return Err(unsent(error, req)),
                        },
                    };
                    // Waits for the server's stream limit without the lock,
                    // so other streams proceed meanwhile.
                    if let Err(e) = sender.ready().await {
                        if retried {
                            return Err(unsent(UpstreamError::Request(e), req));
                        }
                        retried = true;
                        continue;
                    }
                    sender.try_send_request(req).await
                }
            };
            match sent {
                Ok(response) => return Ok(response),
                Err(mut e) => match e.take_message() {
                    Some(back) if !retried => {
                        retried = true;
                        req = back;
                    }
                    Some(back) => return Err(unsent(UpstreamError::Request(e.into_error()), back)),
                    None => return Err(SendFailed::sent(UpstreamError::Request(e.into_error()))),
                },
            }
        }
    }

    /// An HTTP/1 sender from what `state` held: waits for a busy one,
    /// reconnects when it is closed or there was none.
    async fn h1_sender(&self, state: State) -> Result<http1::SendRequest<Incoming>, UpstreamError> {
        match state {
            State::H1(mut sender) => match sender.ready().await {
                Ok(()) => Ok(sender),
                Err(_) => self.handshake_h1(self.dial(), Bytes::new()).await,
            },
            State::Fresh(dial, prefix) => self.handshake_h1(dial, prefix).await,
            State::H2(_) | State::Closed => self.handshake_h1(self.dial(), Bytes::new()).await,
        }
    }

    /// The live HTTP/2 sender, if there is one and nobody is connecting.
    fn live_h2(&self) -> Option<http2::SendRequest<Incoming>> {
        match &*self.state.try_lock().ok()? {
            State::H2(sender) if !sender.is_closed() => Some(sender.clone()),
            _ => None,
        }
    }

    async fn h2_sender(&self) -> Result<http2::SendRequest<Incoming>, UpstreamError> {
        let mut state = self.state.lock().await;
        let sender = match std::mem::replace(&mut *state, State::Closed) {
            State::H2(sender) if !sender.is_closed() => sender,
            State::Fresh(dial, prefix) => self.handshake_h2(dial, prefix).await?,
            State::H2(_) | State::H1(_) | State::Closed => {
                self.handshake_h2(self.dial(), Bytes::new()).await?
            }
        };
        *state = State::H2(sender.clone());
        Ok(sender)
    }

    fn dial(&self) -> Dial {
        self.connector.dial()
    }

    async fn handshake_h1(
        &self,
        dial: Dial,
        prefix: Bytes,
    ) -> Result<http1::SendRequest<Incoming>, UpstreamError> {
        let io = open(dial, prefix).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(UpstreamError::Handshake)?;
        // The connection task ends when the server closes or the client
        // connection (and with it the sender) goes away.
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream HTTP/1 connection ended");
            }
        });
        Ok(sender)
    }

    async fn handshake_h2(
        &self,
        dial: Dial,
        prefix: Bytes,
    ) -> Result<http2::SendRequest<Incoming>, UpstreamError> {
        let stream = dial.finish().await.map_err(UpstreamError::Connect)?;
        // A request's HEADERS and its DATA leave in one write (see `coalesce`).
        let io = TokioIo::new(Coalesce::new(PrefixedIo::new(prefix, stream)));
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(UpstreamError::Handshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
            }
        });
        Ok(sender)
    }
}

fn unsent(error: UpstreamError, req: Request<Incoming>) -> SendFailed {
    SendFailed {
        error,
        unsent: Some(req),
    }
}

async fn open(dial: Dial, prefix: Bytes) -> Result<Io, UpstreamError> {
    let stream = dial.finish().await.map_err(UpstreamError::Connect)?;
    Ok(TokioIo::new(PrefixedIo::new(prefix, stream)))
}
