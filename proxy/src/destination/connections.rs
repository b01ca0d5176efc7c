//! The HTTP/2 connections destination's watches ride on.
//!
//! Watches are long-lived streams, many to one connection; weft-control
//! takes at most [`MAX_STREAMS_PER_CONNECTION`] streams per connection
//! (docs/architecture.md, "Limits"), and a stream past that would wait for
//! a free one instead of opening. So the watches fill one connection, and
//! a new one opens beside it when it is full. A connection on which a
//! request failed or timed out takes no new stream (it may be dead without
//! knowing it) and closes once its last stream ends; of the connections
//! left without a stream one is kept for the next watch.
//!
//! One connection is opened at a time, and every watch that waited for an
//! attempt that failed gets its error rather than trying again in turn: a
//! destination that does not answer costs one connect timeout, not one per
//! watch.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use tokio::sync::Mutex;

use super::watch::{WatchBody, WatchError};
use crate::tls::control::ControlClient;

/// Streams one connection carries at most (weft-control's limit).
pub const MAX_STREAMS_PER_CONNECTION: usize = 100;

/// How loaded a connection is.
#[derive(Debug, Default)]
struct Load {
    streams: AtomicUsize,
    retired: AtomicBool,
}

impl Load {
    fn takes_streams(&self, max: usize) -> bool {
        !self.retired.load(Ordering::SeqCst) && self.streams.load(Ordering::SeqCst) < max
    }

    fn idle(&self) -> bool {
        self.streams.load(Ordering::SeqCst) == 0
    }

    fn retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }
}

struct Conn {
    sender: SendRequest<Full<Bytes>>,
    load: Arc<Load>,
}

/// A stream's place on its connection, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    load: Arc<Load>,
}

impl Slot {
    /// Takes the connection out of use for new streams.
    fn retire(&self) {
        self.load.retired.store(true, Ordering::SeqCst);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.load.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Pool {
    conns: Vec<Conn>,
    // The last failed connect, for the watches that waited on it.
    last_failure: Option<WatchError>,
}

/// Destination's connections, shared by every watch.
pub struct Connections {
    control: ControlClient,
    max_streams: usize,
    pool: Mutex<Pool>,
    // Connects that failed so far (changed only under the pool's lock).
    failed_connects: AtomicU64,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("control", &self.control)
            .field("max_streams", &self.max_streams)
            .finish()
    }
}

impl Connections {
    /// Connections through `control` (whose timeout bounds connecting and
    /// each request's response head), `max_streams` streams each.
    pub fn new(control: ControlClient, max_streams: usize) -> Self {
        Self {
            control,
            max_streams: max_streams.max(1),
            pool: Mutex::default(),
            failed_connects: AtomicU64::new(0),
        }
    }

    /// `GET path_and_query` on a connection with room: the response head,
    /// and the stream's slot, to keep while its body is read.
    pub async fn get(
        &self,
        path_and_query: &str,
    ) -> Result<(Response<Incoming>, Slot), WatchError> {
        let (mut sender, slot) = self.place().await?;
        let request = Request::get(format!("https://{}{path_and_query}", self.control.addr()))
            .body(Full::new(Bytes::new()))
            .map_err(|e| WatchError::Open(e.to_string()))?;
        let timeout = self.control.timeout();
        let sent = tokio::time::timeout(timeout, async {
            sender.ready().await?;
            sender.send_request(request).await
        })
        .await;
        match sent {
            Ok(Ok(response)) => Ok((response, slot)),
            Ok(Err(e)) => {
                slot.retire();
                Err(WatchError::Open(format!("{}: {e}", self.control.addr())))
            }
            Err(_) => {
                slot.retire();
                Err(WatchError::Open(format!(
                    "{} did not answer within {timeout:?}",
                    self.control.addr()
                )))
            }
        }
    }

    /// Connections open now (retired ones with streams included).
    pub async fn count(&self) -> usize {
        self.pool.lock().await.conns.len()
    }

    /// A connection with room for one more stream, opened if none has.
    async fn place(&self) -> Result<(SendRequest<Full<Bytes>>, Slot), WatchError> {
        let failed_before = self.failed_connects.load(Ordering::SeqCst);
        // Held while connecting, so watches opened together share the new
        // connection (or its failure) instead of each opening one.
        let mut pool = self.pool.lock().await;
        let mut spare = false;
        pool.conns.retain(|c| {
            if c.sender.is_closed() || (c.load.retired() && c.load.idle()) {
                return false;
            }
            // One connection without streams is enough to keep.
            let extra = c.load.idle() && !c.load.retired() && spare;
            spare |= c.load.idle() && !c.load.retired();
            !extra
        });
        let room = pool
            .conns
            .iter()
            .position(|c| c.load.takes_streams(self.max_streams));
        let at = match room {
            Some(at) => at,
            None => {
                if self.failed_connects.load(Ordering::SeqCst) != failed_before
                    && let Some(failure) = &pool.last_failure
                {
                    return Err(failure.clone());
                }
                match self.control.open_connection().await {
                    Ok(sender) => pool.conns.push(Conn {
                        sender,
                        load: Arc::default(),
                    }),
                    Err(e) => {
                        let failure = WatchError::Open(e.to_string());
                        pool.last_failure = Some(failure.clone());
                        self.failed_connects.fetch_add(1, Ordering::SeqCst);
                        return Err(failure);
                    }
                }
                pool.conns.len() - 1
            }
        };
        let conn = &pool.conns[at];
        conn.load.streams.fetch_add(1, Ordering::SeqCst);
        let slot = Slot {
            load: conn.load.clone(),
        };
        Ok((conn.sender.clone(), slot))
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds its stream's slot until dropped.
    struct Held {
        #[pin]
        body: Incoming,
        _slot: Slot,
    }
}

impl Body for Held {
    type Data = Bytes;
    type Error = WatchError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, WatchError>>> {
        self.project()
            .body
            .poll_frame(cx)
            .map_err(|e| WatchError::Read(e.to_string()))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}

/// `body` as a watch body, keeping `slot` taken while it is read.
pub fn hold(body: Incoming, slot: Slot) -> WatchBody {
    Held { body, _slot: slot }.boxed_unsync()
}

/// Reads at most `limit` bytes of an error answer's body, for a message:
/// what arrived within `timeout`.
pub async fn error_text(mut body: Incoming, limit: usize, timeout: Duration) -> String {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut text = Vec::new();
    while text.len() < limit {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    text.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    text.truncate(limit);
    String::from_utf8_lossy(&text).into_owned()
}

#[cfg(test)]
#[path = "connections_tests.rs"]
mod tests;
