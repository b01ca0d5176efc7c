//! One address's watch: a task that opens `/v1/watch` through a
//! [`Subscribe`], applies each line to the address's cache entry as it
//! arrives, and keeps the stream open for as long as the address is used.
//!
//! - A stream that sends no line (answer or `{}` heartbeat) for
//!   [`Settings::silence`] is taken as dead — destination heartbeats every
//!   15 s, so two missed heartbeats — dropped and reopened, like a stream
//!   that ends or breaks, after a back-off ([`Settings::backoff`]; reset by
//!   a stream that delivered a line).
//! - Unreadable lines are logged and skipped; they do not prove liveness.
//! - The task ends when its entry goes: evicted by the cache (which aborts
//!   it) or idle for [`Settings::idle`] (the task removes the entry itself).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::time::{Instant, sleep_until};

use super::cache::{Event, Inner, LookupFailed, Settings};
use super::lines::{Line, LineBuffer, read_line};
use super::metrics::WatchMetrics;
use crate::identity::renew::jitter;

/// A watch's body, as bytes in chunks cut anywhere.
pub type WatchBody = UnsyncBoxBody<Bytes, WatchError>;

/// A watch being opened: resolves once destination accepted it.
pub type Opening = Pin<Box<dyn Future<Output = Result<WatchBody, WatchError>> + Send>>;

/// Who streams answers for an address (destination, or a test double).
pub trait Subscribe: Send + Sync + 'static {
    /// Opens a watch on `addr`: `Ok` once the stream is accepted (its
    /// first line may come later).
    fn subscribe(self: Arc<Self>, addr: SocketAddr) -> Opening;
}

/// Why a watch could not be opened or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// Destination could not be reached or did not answer in time.
    #[error("cannot open a watch on destination: {0}")]
    Open(String),
    /// Destination answered with another status than 200.
    #[error("destination answered {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// The stream broke while it was read.
    #[error("the watch stream broke: {0}")]
    Read(String),
}

/// What a watch task needs, none of it keeping the cache alive.
pub(super) struct Watcher {
    pub(super) cache: Weak<Inner>,
    pub(super) subscriber: Arc<dyn Subscribe>,
    pub(super) trust_domain: Arc<str>,
    pub(super) settings: Settings,
    pub(super) metrics: WatchMetrics,
    pub(super) addr: SocketAddr,
    pub(super) id: u64,
}

/// How a stream ended.
enum Ended {
    /// The entry is gone: the task stops.
    Stop,
    /// The stream is down and is to be reopened.
    Down {
        reason: String,
        /// It delivered at least one line.
        answered: bool,
    },
}

impl Watcher {
    /// Applies `event` to the entry, counting an update; `false` when the
    /// entry is gone.
    fn apply(&self, event: Event) -> bool {
        let applied = self
            .cache
            .upgrade()
            .and_then(|cache| cache.apply(self.addr, self.id, event));
        if applied == Some(true) {
            self.metrics.updated();
        }
        applied.is_some()
    }

    /// When the entry goes idle; `None` when it is gone (or was idle and
    /// has just been removed).
    fn idle_at(&self) -> Option<Instant> {
        self.cache
            .upgrade()?
            .idle_deadline(self.addr, self.id, Instant::now())
    }

    /// Sleeps until `at`; `false` if the entry went meanwhile.
    async fn wait_until(&self, at: Instant) -> bool {
        loop {
            let Some(idle_at) = self.idle_at() else {
                return false;
            };
            if at <= idle_at {
                sleep_until(at).await;
                return true;
            }
            // Idle first, unless a lookup moves that point meanwhile.
            sleep_until(idle_at).await;
        }
    }

    /// Reads `body` until it ends, breaks, falls silent or the entry goes.
    async fn read(&self, mut body: WatchBody) -> Ended {
        let _open = self.metrics.watch_opened();
        let silence = self.settings.silence;
        let mut lines = LineBuffer::default();
        let mut answered = false;
        let mut silent_at = Instant::now() + silence;
        loop {
            let Some(idle_at) = self.idle_at() else {
                return Ended::Stop;
            };
            let frame = tokio::select! {
                frame = body.frame() => frame,
                () = sleep_until(silent_at) => {
                    return Ended::Down {
                        reason: format!("no line from destination for {silence:?}"),
                        answered,
                    };
                }
                // Loops back to the idle check at the top.
                () = sleep_until(idle_at) => continue,
            };
            let data = match frame {
                None => {
                    return Ended::Down {
                        reason: "destination ended the watch".to_owned(),
                        answered,
                    };
                }
                Some(Err(e)) => {
                    return Ended::Down {
                        reason: e.to_string(),
                        answered,
                    };
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    // Trailers carry nothing for us.
                    Err(_) => continue,
                },
            };
            for line in lines.push(&data) {
                let event = match line.map(|line| read_line(&line, &self.trust_domain)) {
                    Err(e) => {
                        tracing::warn!(addr = %self.addr, error = %e, "skipping a line of destination's watch");
                        continue;
                    }
                    Ok(Line::Malformed(why)) => {
                        tracing::warn!(addr = %self.addr, error = %why, "skipping a line of destination's watch");
                        continue;
                    }
                    Ok(Line::Heartbeat) => {
                        silent_at = Instant::now() + silence;
                        continue;
                    }
                    Ok(Line::Answer(resolution)) => Event::Answer(Arc::new(resolution)),
                    Ok(Line::Unusable(e)) => {
                        tracing::info!(addr = %self.addr, error = %e, "destination's answer is unusable; plaintext");
                        Event::Unusable(LookupFailed(e.to_string().into()))
                    }
                };
                silent_at = Instant::now() + silence;
                answered = true;
                if !self.apply(event) {
                    return Ended::Stop;
                }
            }
        }
    }
}

/// Keeps the watch of `watcher.addr` open until its entry goes.
pub(super) async fn run(watcher: Watcher) {
    let addr = watcher.addr;
    let mut failures = 0u32;
    loop {
        let reason = match watcher.subscriber.clone().subscribe(addr).await {
            Ok(body) => match watcher.read(body).await {
                Ended::Stop => return,
                Ended::Down { reason, answered } => {
                    if answered {
                        failures = 0;
                    }
                    reason
                }
            },
            Err(e) => e.to_string(),
        };
        failures = failures.saturating_add(1);
        // Only the first failure in a row is news; the rest repeat it.
        if failures == 1 {
            tracing::info!(%addr, error = %reason, "destination watch down; reopening");
        } else {
            tracing::debug!(%addr, error = %reason, failures, "destination watch still down");
        }
        if !watcher.apply(Event::Down(LookupFailed(reason.into()))) {
            return;
        }
        let delay = watcher.settings.backoff.delay(failures, jitter());
        if !watcher.wait_until(Instant::now() + delay).await {
            return;
        }
    }
}
