//! `/v1/watch`'s body: newline-delimited JSON, the current [`Answer`]
//! first, then a line each time the answer changes, and a `{}` heartbeat
//! after each quiet interval so a proxy can tell a dead control plane from
//! a quiet one. Also the caps on how many watches may be open.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use tokio::sync::watch;
use tokio::time::Instant;

use super::answer::{self, Answer};
use super::cache::Subscription;
use super::error::DestinationError;
use super::metrics::{Metrics, Refusal};

/// The heartbeat line.
pub const HEARTBEAT: &[u8] = b"{}\n";

/// Caps on open watches: one for the whole server and one per client IP
/// (when the server knows the client's address).
#[derive(Debug)]
pub struct WatchLimits {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<OpenWatches>,
}

#[derive(Debug, Default)]
struct OpenWatches {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

impl WatchLimits {
    /// Caps of `max_total` watches in all and `max_per_client` per client.
    pub fn new(max_total: usize, max_per_client: usize) -> Self {
        WatchLimits {
            max_total,
            max_per_client,
            open: Mutex::new(OpenWatches::default()),
        }
    }

    /// A slot for one more watch from `client`, released when dropped.
    pub fn acquire(
        self: &Arc<Self>,
        client: Option<IpAddr>,
        metrics: &Metrics,
    ) -> Result<WatchPermit, DestinationError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            metrics.watch_refused(Refusal::GlobalLimit);
            return Err(DestinationError::TooManyWatches {
                limit: self.max_total,
            });
        }
        if let Some(client) = client {
            let count = open.by_client.entry(client).or_default();
            if *count >= self.max_per_client {
                metrics.watch_refused(Refusal::ClientLimit);
                return Err(DestinationError::TooManyClientWatches {
                    client,
                    limit: self.max_per_client,
                });
            }
            *count += 1;
        }
        open.total += 1;
        metrics.watch_opened();
        Ok(WatchPermit {
            limits: self.clone(),
            client,
            metrics: metrics.clone(),
        })
    }

    /// Watches open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// One open watch's place under the caps.
#[derive(Debug)]
pub struct WatchPermit {
    limits: Arc<WatchLimits>,
    client: Option<IpAddr>,
    metrics: Metrics,
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(client) = self.client
            && let Some(count) = open.by_client.get_mut(&client)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.by_client.remove(&client);
            }
        }
        self.metrics.watch_closed();
    }
}

/// One open `/v1/watch`.
pub struct Watch {
    /// The address watched.
    pub addr: SocketAddr,
    /// Its IP's subscription.
    pub subscription: Subscription,
    /// The peer proxy port written into meshed answers.
    pub proxy_port: u16,
    /// The quiet interval after which a heartbeat is sent.
    pub heartbeat: Duration,
    /// Flips to `true` when the server shuts down: the stream ends.
    pub shutdown: watch::Receiver<bool>,
    /// Its place under the caps.
    pub permit: WatchPermit,
    /// For counting updates.
    pub metrics: Metrics,
}

impl Watch {
    /// The streaming body: the first answer is `first` (already computed
    /// for the lookup metrics), then changes and heartbeats.
    pub fn into_body(self, first: Answer) -> Body {
        let state = WatchState {
            watch: self,
            last: first.clone(),
            next_heartbeat: None,
            pending: Some(first),
        };
        let lines = futures::stream::unfold(state, |mut state| async move {
            let line = state.next_line().await?;
            Some((Ok::<_, Infallible>(line), state))
        });
        Body::from_stream(lines)
    }
}

struct WatchState {
    watch: Watch,
    last: Answer,
    next_heartbeat: Option<Instant>,
    pending: Option<Answer>,
}

impl WatchState {
    fn line(answer: &Answer) -> Bytes {
        // An Answer is strings, bools and numbers: serializing cannot fail,
        // but a heartbeat is a harmless stand-in if it ever did.
        let mut line = serde_json::to_vec(answer).unwrap_or_else(|_| b"{}".to_vec());
        line.push(b'\n');
        Bytes::from(line)
    }

    async fn next_line(&mut self) -> Option<Bytes> {
        let heartbeat = self.watch.heartbeat;
        if let Some(first) = self.pending.take() {
            self.next_heartbeat = Some(Instant::now() + heartbeat);
            return Some(Self::line(&first));
        }
        loop {
            let deadline = self
                .next_heartbeat
                .unwrap_or_else(|| Instant::now() + heartbeat);
            let Watch {
                addr,
                subscription,
                proxy_port,
                shutdown,
                metrics,
                ..
            } = &mut self.watch;
            tokio::select! {
                // Also ends the stream if the state that owns the sender is gone.
                _ = shutdown.wait_for(|closed| *closed) => return None,
                () = subscription.changed() => {
                    let target = subscription.current();
                    let answer = answer::for_target(*addr, target.as_ref(), *proxy_port);
                    // Changes that do not change this answer (another
                    // port's annotation or endpoints, a status update)
                    // send nothing.
                    if answer != self.last {
                        metrics.watch_update();
                        self.next_heartbeat = Some(Instant::now() + heartbeat);
                        let line = Self::line(&answer);
                        self.last = answer;
                        return Some(line);
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    self.next_heartbeat = Some(Instant::now() + heartbeat);
                    return Some(Bytes::from_static(HEARTBEAT));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_global_and_per_client_and_released_on_drop() {
        let metrics = Metrics::new();
        let limits = Arc::new(WatchLimits::new(3, 2));
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");

        let first = limits.acquire(Some(a), &metrics).expect("1st");
        let second = limits.acquire(Some(a), &metrics).expect("2nd");
        assert_eq!(
            limits.acquire(Some(a), &metrics).err(),
            Some(DestinationError::TooManyClientWatches {
                client: a,
                limit: 2
            })
        );
        let third = limits.acquire(Some(b), &metrics).expect("another client");
        assert_eq!(
            limits.acquire(None, &metrics).err(),
            Some(DestinationError::TooManyWatches { limit: 3 })
        );
        assert_eq!((limits.open(), metrics.watches()), (3, 3));

        drop(first);
        let again = limits.acquire(Some(a), &metrics).expect("a slot was freed");
        drop((second, third, again));
        assert_eq!((limits.open(), metrics.watches()), (0, 0));
        // An unknown client only counts against the global cap.
        let unknown: Vec<WatchPermit> = (0..3)
            .map(|_| limits.acquire(None, &metrics).expect("global slot"))
            .collect();
        assert_eq!(unknown.len(), 3);
    }
}
