//! The proxy's view of destination: one entry per address looked up, each
//! kept current by its own watch ([`super::watch`]).
//!
//! - The first lookup of an address opens its watch and waits up to
//!   [`Settings::first_answer`] for the first line; concurrent lookups of
//!   it share that wait. Every later lookup answers from the entry at once.
//! - Each line replaces the entry's answer the moment it arrives: a pod IP
//!   that changes hands is followed as soon as destination knows.
//! - While the watch is down (destination unreachable, the stream silent)
//!   the last answer is still used, for at most [`Settings::stale`] after
//!   the watch died; then lookups fail (plaintext) until it is back.
//! - A watch that could not be opened, or an answer that cannot be used,
//!   fails lookups at once (no waiting while destination is down) until
//!   the next answer.
//! - An address not looked up for [`Settings::idle`] loses its watch and
//!   its entry; at most [`Settings::max_entries`] addresses, the least
//!   recently used evicted first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::answer::Resolution;
use super::metrics::WatchMetrics;
use super::watch::{Subscribe, Watcher};
use crate::identity::renew::Backoff;

/// Why an address could not be resolved (shared by everyone who asked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LookupFailed(pub Arc<str>);

/// One lookup's result.
pub type Outcome = Result<Arc<Resolution>, LookupFailed>;

/// How answers are waited for, kept and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How long the first lookup of an address waits for the first line.
    pub first_answer: Duration,
    /// A watch with no line for this long is dead and is reopened.
    pub silence: Duration,
    /// How long the last answer is used after its watch died.
    pub stale: Duration,
    /// A watch on an address not looked up for this long is closed.
    pub idle: Duration,
    /// Waits between attempts to reopen a watch.
    pub backoff: Backoff,
    /// Addresses watched at most.
    pub max_entries: usize,
}

/// The defaults: a new address waits 1 s for its first answer; a watch is
/// dead after 30 s without a line (two heartbeats missed, as
/// docs/architecture.md asks of clients); reopened after 0.5 s doubling to
/// 30 s; the last answer rides out 5 min of a dead watch; an address
/// unused for 5 min is dropped; at most 2,000 addresses, the number of
/// watches destination grants one client.
pub const DEFAULT_SETTINGS: Settings = Settings {
    first_answer: Duration::from_secs(1),
    silence: Duration::from_secs(30),
    stale: Duration::from_secs(300),
    idle: Duration::from_secs(300),
    backoff: Backoff {
        base: Duration::from_millis(500),
        max: Duration::from_secs(30),
    },
    max_entries: 2_000,
};

/// What is known of an address.
#[derive(Debug, Clone)]
enum Known {
    /// Its watch has sent nothing yet.
    Pending,
    /// Destination's answer; `dead_since` while its watch is down.
    Answer {
        resolution: Arc<Resolution>,
        dead_since: Option<Instant>,
    },
    /// No usable answer: the watch could not be opened, or the answer
    /// cannot be used.
    Failed(LookupFailed),
}

impl Known {
    /// What a lookup gets now; `None` while the first line is awaited.
    fn outcome(&self, now: Instant, stale: Duration) -> Option<Outcome> {
        match self {
            Self::Pending => None,
            Self::Answer {
                resolution,
                dead_since,
            } => Some(match dead_since {
                Some(since) if now.duration_since(*since) >= stale => Err(LookupFailed(
                    format!("destination unreachable for over {stale:?}; its last answer expired")
                        .into(),
                )),
                _ => Ok(resolution.clone()),
            }),
            Self::Failed(failed) => Some(Err(failed.clone())),
        }
    }

    /// Whether destination said the same thing in both (liveness aside).
    fn same_answer(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Answer { resolution: a, .. }, Self::Answer { resolution: b, .. }) => a == b,
            (Self::Failed(a), Self::Failed(b)) => a == b,
            (Self::Pending, Self::Pending) => true,
            _ => false,
        }
    }
}

/// What a watch tells its entry.
#[derive(Debug)]
pub(super) enum Event {
    /// The answer from now on.
    Answer(Arc<Resolution>),
    /// An answer that cannot be used.
    Unusable(LookupFailed),
    /// The watch is down (could not be opened, ended, broke, fell silent).
    Down(LookupFailed),
}

struct Entry {
    // Tells the watch's task its entry is still this one, not a successor.
    id: u64,
    known: watch::Sender<Known>,
    last_used: Instant,
    task: Option<AbortHandle>,
    // Destination has answered (usable or not) at least once.
    answered: bool,
}

impl Drop for Entry {
    // The watch goes with its entry, whoever drops it.
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[derive(Default)]
struct Entries {
    map: HashMap<SocketAddr, Entry>,
    next_id: u64,
}

/// The cache's state, shared with the watch tasks (which hold it weakly,
/// so dropping the cache ends them).
pub(super) struct Inner {
    subscriber: Arc<dyn Subscribe>,
    trust_domain: Arc<str>,
    settings: Settings,
    metrics: WatchMetrics,
    entries: Mutex<Entries>,
}

impl Inner {
    // The map stays consistent between statements; a panic elsewhere while
    // holding the lock leaves nothing half-written worth crashing over.
    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a watch's `event` to entry `id` of `addr`: `None` when that
    /// entry is gone, else whether it changed an earlier answer (an
    /// update: not the first answer, not a repeat after a reopen).
    pub(super) fn apply(&self, addr: SocketAddr, id: u64, event: Event) -> Option<bool> {
        let mut entries = self.lock();
        let entry = entries.map.get_mut(&addr).filter(|e| e.id == id)?;
        let now = Instant::now();
        // Only answers, usable or not, can be updates; the first is not.
        let answer = !matches!(event, Event::Down(_));
        let update = answer && entry.answered;
        entry.answered |= answer;
        let mut changed = false;
        entry.known.send_modify(|known| {
            let next = match (event, &*known) {
                (Event::Answer(resolution), _) => Known::Answer {
                    resolution,
                    dead_since: None,
                },
                (Event::Unusable(failed), _) => Known::Failed(failed),
                (
                    Event::Down(_),
                    Known::Answer {
                        resolution,
                        dead_since,
                    },
                ) => Known::Answer {
                    resolution: resolution.clone(),
                    dead_since: dead_since.or(Some(now)),
                },
                (Event::Down(failed), Known::Pending | Known::Failed(_)) => Known::Failed(failed),
            };
            changed = update && !known.same_answer(&next);
            *known = next;
        });
        Some(changed)
    }

    /// When entry `id` of `addr` goes idle, or `None` when it is gone; an
    /// entry idle at `now` is removed here (its watch task is the caller,
    /// and stops).
    pub(super) fn idle_deadline(&self, addr: SocketAddr, id: u64, now: Instant) -> Option<Instant> {
        let mut entries = self.lock();
        let entry = entries.map.get(&addr).filter(|e| e.id == id)?;
        let Some(idle_at) = entry.last_used.checked_add(self.settings.idle) else {
            // An idle time too long to count never comes: look again daily.
            return Some(now + Duration::from_secs(86_400));
        };
        if idle_at > now {
            return Some(idle_at);
        }
        if let Some(mut entry) = entries.map.remove(&addr) {
            // The caller is that task: it returns rather than be aborted.
            entry.task = None;
            tracing::debug!(%addr, "closing the watch of an idle address");
        }
        None
    }
}

/// The answer cache; cheap to clone.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("settings", &self.inner.settings)
            .field("entries", &self.len())
            .finish()
    }
}

impl Cache {
    /// A cache of answers streamed by `subscriber`, for identities of
    /// `trust_domain`, counting its watches in `metrics`.
    pub fn new(
        subscriber: Arc<dyn Subscribe>,
        trust_domain: &str,
        settings: Settings,
        metrics: WatchMetrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                subscriber,
                trust_domain: trust_domain.into(),
                settings,
                metrics,
                entries: Mutex::default(),
            }),
        }
    }

    /// The answer for `addr`: from its entry, or, for an address not
    /// watched yet, the first line of a new watch.
    pub async fn get(&self, addr: SocketAddr) -> Outcome {
        let settings = self.inner.settings;
        let mut known = {
            let mut entries = self.inner.lock();
            let now = Instant::now();
            if let Some(entry) = entries.map.get_mut(&addr) {
                entry.last_used = now;
                if let Some(outcome) = entry.known.borrow().outcome(now, settings.stale) {
                    return outcome;
                }
                entry.known.subscribe()
            } else {
                if entries.map.len() >= settings.max_entries {
                    evict_least_recently_used(&mut entries.map);
                }
                self.start(&mut entries, addr, now)
            }
        };
        let first = tokio::time::timeout(
            settings.first_answer,
            known.wait_for(|k| !matches!(k, Known::Pending)),
        )
        .await;
        match first {
            Ok(Ok(known)) => known
                .outcome(Instant::now(), settings.stale)
                .unwrap_or_else(|| Err(LookupFailed("destination has not answered yet".into()))),
            Ok(Err(_)) => Err(LookupFailed(
                "the address was evicted before destination answered".into(),
            )),
            Err(_) => Err(LookupFailed(
                format!(
                    "destination sent no answer within {:?}",
                    settings.first_answer
                )
                .into(),
            )),
        }
    }

    /// Addresses watched now.
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// Whether no address is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the entry of `addr` and starts its watch.
    fn start(
        &self,
        entries: &mut Entries,
        addr: SocketAddr,
        now: Instant,
    ) -> watch::Receiver<Known> {
        let id = entries.next_id;
        entries.next_id = entries.next_id.wrapping_add(1);
        let (known, receiver) = watch::channel(Known::Pending);
        let inner = &self.inner;
        let watcher = Watcher {
            cache: Arc::downgrade(inner),
            subscriber: inner.subscriber.clone(),
            trust_domain: inner.trust_domain.clone(),
            settings: inner.settings,
            metrics: inner.metrics.clone(),
            addr,
            id,
        };
        // Spawned under the lock: the task's first look at its entry waits
        // for the insert below.
        let task = tokio::spawn(super::watch::run(watcher)).abort_handle();
        entries.map.insert(
            addr,
            Entry {
                id,
                known,
                last_used: now,
                task: Some(task),
                answered: false,
            },
        );
        receiver
    }
}

fn evict_least_recently_used(map: &mut HashMap<SocketAddr, Entry>) {
    let oldest = map
        .iter()
        .min_by_key(|(_, entry)| entry.last_used)
        .map(|(addr, _)| *addr);
    if let Some(addr) = oldest {
        tracing::debug!(%addr, "destination cache full; closing the least recently used watch");
        map.remove(&addr);
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
