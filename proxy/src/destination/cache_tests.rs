//! The cache and its watches against a stand-in destination whose streams
//! the test feeds chunk by chunk, on tokio's paused clock: first answers,
//! lines cut anywhere, updates, heartbeats, silence, streams that end,
//! outages, idle addresses and the cap.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt as _;
use tokio::sync::mpsc;

use super::*;
use crate::destination::lines::MAX_LINE;
use crate::destination::watch::{Opening, WatchError};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The sending end of one watch stream; dropping it ends the stream.
type Feed = mpsc::UnboundedSender<Result<Bytes, WatchError>>;

/// A watch body fed by the test.
struct Fed(mpsc::UnboundedReceiver<Result<Bytes, WatchError>>);

impl Body for Fed {
    type Data = Bytes;
    type Error = WatchError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, WatchError>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }
}

/// A stand-in destination: each watch it accepts is handed to the test as
/// a [`Feed`]; while `refuse` is set it refuses instead.
struct Fake {
    opened: mpsc::UnboundedSender<(SocketAddr, Feed)>,
    refuse: Mutex<Option<WatchError>>,
    opens: AtomicUsize,
}

impl Fake {
    fn refuse(&self, refusal: Option<WatchError>) {
        *self.refuse.lock().unwrap_or_else(|e| e.into_inner()) = refusal;
    }
}

impl Subscribe for Fake {
    fn subscribe(self: Arc<Self>, addr: SocketAddr) -> Opening {
        Box::pin(async move {
            self.opens.fetch_add(1, Ordering::SeqCst);
            if let Some(refusal) = self
                .refuse
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
            {
                return Err(refusal);
            }
            let (feed, body) = mpsc::unbounded_channel();
            // A test that no longer listens just leaves the stream silent.
            let _ = self.opened.send((addr, feed));
            Ok(Fed(body).boxed_unsync())
        })
    }
}

struct Harness {
    cache: Cache,
    fake: Arc<Fake>,
    opened: mpsc::UnboundedReceiver<(SocketAddr, Feed)>,
    metrics: WatchMetrics,
}

const TD: &str = "cluster.local";
const S: Settings = DEFAULT_SETTINGS;

fn harness(settings: Settings) -> Harness {
    let (opened, watches) = mpsc::unbounded_channel();
    let fake = Arc::new(Fake {
        opened,
        refuse: Mutex::new(None),
        opens: AtomicUsize::new(0),
    });
    let metrics = WatchMetrics::default();
    Harness {
        cache: Cache::new(fake.clone(), TD, settings, metrics.clone()),
        fake,
        opened: watches,
        metrics,
    }
}

impl Harness {
    /// The next watch opened, for `addr`.
    async fn next_watch(&mut self, addr: SocketAddr) -> TestResult<Feed> {
        let (opened, feed) = self.opened.recv().await.ok_or("the fake is gone")?;
        assert_eq!(opened, addr);
        Ok(feed)
    }

    /// Looks `addr` up for the first time while its watch sends `line`.
    async fn first(&mut self, addr: SocketAddr, line: &str) -> TestResult<(Outcome, Feed)> {
        let cache = self.cache.clone();
        let (outcome, feed) = tokio::join!(cache.get(addr), async {
            let feed = self.next_watch(addr).await?;
            send(&feed, line)?;
            Ok::<_, Box<dyn std::error::Error>>(feed)
        });
        Ok((outcome, feed?))
    }
}

fn send(feed: &Feed, chunk: &str) -> TestResult {
    feed.send(Ok(Bytes::copy_from_slice(chunk.as_bytes())))
        .map_err(|_| "the watch was closed".into())
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

fn meshed(sa: &str) -> String {
    format!(
        "{{\"addr\":\"10.0.0.1:80\",\"meshed\":true,\"identity\":\"spiffe://{TD}/ns/shop/sa/{sa}\",\"opaque\":false,\"proxy_port\":4143,\"labels\":{{\"dst_pod\":\"{sa}-0\"}}}}\n"
    )
}

const UNMESHED: &str = "{\"addr\":\"10.0.0.1:80\",\"meshed\":false}\n";

/// Who the outcome says is there: a ServiceAccount, `plaintext` or `failed`.
fn who(outcome: &Outcome) -> String {
    match outcome {
        Ok(resolution) => resolution.identity.as_ref().map_or_else(
            || "plaintext".to_owned(),
            |id| {
                id.to_string()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            },
        ),
        Err(_) => "failed".to_owned(),
    }
}

/// Lets the spawned watch tasks run what is ready.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_lookup_waits_for_a_line_cut_across_chunks_and_askers_share_it() -> TestResult {
    let mut h = harness(S);
    let start = Instant::now();
    let cache = h.cache.clone();
    let line = meshed("web");
    let (a, b, c, fed) = tokio::join!(
        cache.get(addr(80)),
        cache.get(addr(80)),
        cache.get(addr(80)),
        async {
            let feed = h.next_watch(addr(80)).await?;
            for chunk in [&line[..7], &line[7..30], &line[30..]] {
                settle().await;
                send(&feed, chunk)?;
            }
            Ok::<_, Box<dyn std::error::Error>>(feed)
        }
    );
    let _feed = fed?;
    assert_eq!([who(&a), who(&b), who(&c)], ["web", "web", "web"]);
    assert_eq!(start.elapsed(), Duration::ZERO, "waited only for the line");
    assert_eq!(h.fake.opens.load(Ordering::SeqCst), 1, "one watch");
    assert_eq!(h.metrics.watches(), 1);
    assert_eq!(h.metrics.updates(), 0, "a first answer is not an update");
    let resolution = a.map_err(|e| e.to_string())?;
    assert_eq!(
        &resolution.labels[..],
        &[("dst_pod".to_owned(), "web-0".to_owned())]
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn each_line_replaces_the_answer_the_moment_it_arrives() -> TestResult {
    let mut h = harness(S);
    let (first, feed) = h.first(addr(80), &meshed("web")).await?;
    assert_eq!(who(&first), "web");
    let start = Instant::now();
    // The pod IP changes hands: another workload, then nobody meshed.
    send(&feed, &meshed("billing"))?;
    settle().await;
    assert_eq!(who(&h.cache.get(addr(80)).await), "billing");
    assert_eq!(h.metrics.updates(), 1);
    send(&feed, UNMESHED)?;
    settle().await;
    assert_eq!(who(&h.cache.get(addr(80)).await), "plaintext");
    assert_eq!(h.metrics.updates(), 2);
    assert_eq!(start.elapsed(), Duration::ZERO, "no TTL to wait out");
    assert_eq!(h.fake.opens.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_a_quiet_watch_open_and_silence_reopens_it() -> TestResult {
    let mut h = harness(S);
    let (_, feed) = h.first(addr(80), &meshed("web")).await?;
    // Ten minutes of heartbeats (and lookups, so the address stays in use).
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_secs(15)).await;
        send(&feed, "{}\n")?;
        assert_eq!(who(&h.cache.get(addr(80)).await), "web");
    }
    assert_eq!(
        h.fake.opens.load(Ordering::SeqCst),
        1,
        "heartbeats are life"
    );
    assert_eq!(h.metrics.updates(), 0, "heartbeats are not updates");

    // Destination falls silent: the stream is dropped after `silence`
    // and reopened; the answer serves meanwhile.
    let silent_from = Instant::now();
    let again = h.next_watch(addr(80)).await?;
    let took = silent_from.elapsed();
    assert!(feed.is_closed(), "the silent stream was dropped");
    assert!(
        took >= S.silence && took <= S.silence + S.backoff.base,
        "reopened after {took:?}"
    );
    assert_eq!(who(&h.cache.get(addr(80)).await), "web");
    send(&again, &meshed("billing"))?;
    settle().await;
    assert_eq!(who(&h.cache.get(addr(80)).await), "billing");
    assert_eq!(h.metrics.updates(), 1, "a change after a reopen");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn unreadable_lines_are_skipped_and_change_nothing() -> TestResult {
    let mut h = harness(S);
    let overlong = format!("{{\"x\":\"{}\"}}\n", "y".repeat(MAX_LINE));
    let garbage = ["not json\n", "{\"meshed\":\"yes\"}\n", "[1,2]\n", &overlong];
    let cache = h.cache.clone();
    let (first, fed) = tokio::join!(cache.get(addr(80)), async {
        let feed = h.next_watch(addr(80)).await?;
        for line in garbage {
            send(&feed, line)?;
        }
        settle().await;
        send(&feed, &meshed("web"))?;
        Ok::<_, Box<dyn std::error::Error>>(feed)
    });
    let feed = fed?;
    assert_eq!(who(&first), "web");
    for line in garbage {
        send(&feed, line)?;
    }
    settle().await;
    assert_eq!(who(&h.cache.get(addr(80)).await), "web");
    assert_eq!(h.metrics.updates(), 0);
    assert_eq!(h.fake.opens.load(Ordering::SeqCst), 1, "the stream stays");

    // Unreadable lines are no sign of life: a stream sending only those
    // is reopened when the silence runs out.
    let start = Instant::now();
    let talker = {
        let feed = feed.clone();
        tokio::spawn(async move {
            while send(&feed, "garbage\n").is_ok() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let _again = h.next_watch(addr(80)).await?;
    assert!(start.elapsed() >= S.silence);
    talker.abort();
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_ends_is_reopened_and_its_answer_kept_meanwhile() -> TestResult {
    let mut h = harness(S);
    let (_, feed) = h.first(addr(80), &meshed("web")).await?;
    drop(feed);
    settle().await;
    assert_eq!(h.metrics.watches(), 0);
    assert_eq!(
        who(&h.cache.get(addr(80)).await),
        "web",
        "the last answer serves"
    );
    let ended = Instant::now();
    let again = h.next_watch(addr(80)).await?;
    let took = ended.elapsed();
    assert!(
        took >= S.backoff.base / 2 && took <= S.backoff.base,
        "reopened after {took:?}"
    );
    assert_eq!(h.metrics.watches(), 1);
    send(&again, UNMESHED)?;
    settle().await;
    assert_eq!(who(&h.cache.get(addr(80)).await), "plaintext");
    assert_eq!(h.metrics.updates(), 1);

    // A stream that breaks is reopened the same way; the same answer
    // again is no update.
    again
        .send(Err(WatchError::Read("connection reset".to_owned())))
        .map_err(|_| "the watch was closed")?;
    let third = h.next_watch(addr(80)).await?;
    assert_eq!(h.fake.opens.load(Ordering::SeqCst), 3);
    send(&third, UNMESHED)?;
    settle().await;
    assert_eq!(who(&h.cache.get(addr(80)).await), "plaintext");
    assert_eq!(h.metrics.updates(), 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn while_destination_is_down_the_last_answer_serves_for_the_stale_bound() -> TestResult {
    let mut h = harness(S);
    let (_, feed) = h.first(addr(80), &meshed("web")).await?;
    h.fake.refuse(Some(WatchError::Refused {
        status: 503,
        body: "restarting".to_owned(),
    }));
    drop(feed);
    settle().await;
    let died = Instant::now();
    // Lookups keep the address in use while destination is down.
    while died.elapsed() + Duration::from_secs(10) < S.stale {
        assert_eq!(who(&h.cache.get(addr(80)).await), "web");
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    tokio::time::sleep_until(died + S.stale).await;
    assert_eq!(
        who(&h.cache.get(addr(80)).await),
        "failed",
        "past the bound"
    );
    let attempts = h.fake.opens.load(Ordering::SeqCst) - 1;
    // Backed off: 0.5 s doubling to 30 s is about 15 attempts in 5 min.
    assert!(
        (5..=20).contains(&attempts),
        "{attempts} attempts while down"
    );

    // Destination is back: the next attempt's answer serves again.
    h.fake.refuse(None);
    let back = h.next_watch(addr(80)).await?;
    send(&back, &meshed("web"))?;
    settle().await;
    assert_eq!(who(&h.cache.get(addr(80)).await), "web");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_new_address_fails_at_once_when_refused_and_after_first_answer_when_silent() -> TestResult
{
    let mut h = harness(S);
    h.fake
        .refuse(Some(WatchError::Open("connection refused".to_owned())));
    let start = Instant::now();
    assert_eq!(who(&h.cache.get(addr(80)).await), "failed");
    assert_eq!(who(&h.cache.get(addr(80)).await), "failed");
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no wait on a known failure"
    );
    assert_eq!(h.fake.opens.load(Ordering::SeqCst), 1, "not hammered");

    // Accepted but silent: the lookup gives up after `first_answer`, and
    // the watch lives on for the next one.
    h.fake.refuse(None);
    let cache = h.cache.clone();
    let (outcome, fed) = tokio::join!(cache.get(addr(81)), h.next_watch(addr(81)));
    let feed = fed?;
    assert_eq!(who(&outcome), "failed");
    assert_eq!(start.elapsed(), S.first_answer);
    send(&feed, &meshed("web"))?;
    settle().await;
    assert_eq!(who(&h.cache.get(addr(81)).await), "web");
    assert_eq!(h.metrics.updates(), 0, "first answers, however late");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_unusable_answer_fails_lookups_until_the_next_answer() -> TestResult {
    let mut h = harness(S);
    let foreign = "{\"meshed\":true,\"identity\":\"spiffe://elsewhere/ns/a/sa/b\"}\n";
    let (first, feed) = h.first(addr(80), foreign).await?;
    assert_eq!(who(&first), "failed");
    send(&feed, &meshed("web"))?;
    settle().await;
    assert_eq!(who(&h.cache.get(addr(80)).await), "web");
    send(&feed, "{\"meshed\":true}\n")?;
    settle().await;
    assert_eq!(who(&h.cache.get(addr(80)).await), "failed");
    assert_eq!(h.metrics.updates(), 2, "unusable answers change too");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_idle_address_loses_its_watch_and_entry() -> TestResult {
    let mut h = harness(S);
    let (_, feed) = h.first(addr(80), &meshed("web")).await?;
    // Heartbeats keep the stream alive; a lookup half-way keeps it in use.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(15)).await;
        send(&feed, "{}\n")?;
    }
    assert_eq!(who(&h.cache.get(addr(80)).await), "web");
    let last_used = Instant::now();
    // Nobody asks any more.
    while !feed.is_closed() {
        tokio::time::sleep(Duration::from_secs(15)).await;
        let _ = send(&feed, "{}\n");
    }
    let closed_after = last_used.elapsed();
    assert!(
        closed_after >= S.idle && closed_after <= S.idle + Duration::from_secs(15),
        "closed after {closed_after:?}"
    );
    assert!(h.cache.is_empty());
    assert_eq!(h.metrics.watches(), 0);
    // Asked again: a new watch.
    let (again, _feed) = h.first(addr(80), UNMESHED).await?;
    assert_eq!(who(&again), "plaintext");
    assert_eq!(h.fake.opens.load(Ordering::SeqCst), 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_cache_stays_bounded_evicting_the_least_recently_used() -> TestResult {
    let mut h = harness(Settings {
        max_entries: 3,
        ..S
    });
    let mut feeds = Vec::new();
    for port in 1..=3 {
        let (_, feed) = h.first(addr(port), UNMESHED).await?;
        feeds.push(feed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Port 1 is used again, so port 2 is the least recently used.
    assert_eq!(who(&h.cache.get(addr(1)).await), "plaintext");
    let (_, _feed4) = h.first(addr(4), UNMESHED).await?;
    settle().await;
    assert_eq!(h.cache.len(), 3);
    let closed: Vec<bool> = feeds.iter().map(|f| f.is_closed()).collect();
    assert_eq!(closed, [false, true, false]);
    assert_eq!(h.metrics.watches(), 3);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn dropping_the_cache_closes_its_watches() -> TestResult {
    let mut h = harness(S);
    let (_, a) = h.first(addr(80), UNMESHED).await?;
    let (_, b) = h.first(addr(81), UNMESHED).await?;
    drop(h.cache);
    settle().await;
    assert!(a.is_closed() && b.is_closed());
    assert_eq!(h.metrics.watches(), 0);
    Ok(())
}
