//! `emojivoto vote-load`: an open-loop load generator for voting-svc, to
//! measure what a mesh adds to a gRPC call (docs/benchmarks.md, "Mesh
//! latency in the cluster").
//!
//! Calls leave on a fixed schedule ([`Schedule`]) whether or not earlier
//! ones were answered, all over ONE HTTP/2 connection as web makes them
//! (the app's [`Channel`]), so a mesh that balances per request spreads
//! them over voting's endpoints. Each latency counts from the call's
//! scheduled time, not from when it left: a stall delays every call due
//! during it and all of them are counted late, instead of the stall
//! holding back the calls that would have shown it (coordinated omission).
//!
//! Before the measured run it retries one call until voting-svc answers
//! (the service or the pod's proxy may still be starting), then runs a
//! warm-up at the same rate whose calls are not counted. At the end it
//! prints one JSON line, a [`Report`].

mod latency;
mod schedule;

use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

pub use self::latency::{Latencies, Percentiles};
pub use self::schedule::Schedule;
use crate::grpc::{Channel, Status};
use crate::proto::Empty;
use crate::shutdown::Shutdown;
use crate::voting_svc;

/// How long to wait between tries of the first call.
const RETRY: Duration = Duration::from_millis(200);

/// What to load, how hard and for how long.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// voting-svc's `host:port`.
    pub voting: Authority,
    /// The VotingService method called, e.g. `VoteJoy`.
    pub method: String,
    /// Calls a second, above 0.
    pub rate: f64,
    /// The measured run.
    pub duration: Duration,
    /// The uncounted run before it; zero for none.
    pub warmup: Duration,
    /// The most calls in flight; a call due while this many are waits for
    /// one to end, and the wait is in its latency.
    pub concurrency: usize,
    /// The deadline of each call, connecting included.
    pub timeout: Duration,
    /// How long the first call is retried before the run gives up.
    pub ready_timeout: Duration,
}

/// The line `vote-load` prints: counts of the measured run, and the
/// latencies of its successful calls in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// voting-svc's `host:port`.
    pub target: String,
    /// The method called.
    pub method: String,
    /// The rate asked for, calls a second.
    pub rate: f64,
    /// The length of the measured run asked for, in seconds.
    pub duration_s: f64,
    /// The most calls in flight.
    pub concurrency: usize,
    /// Calls made before the measured run (the first-call retries and the
    /// warm-up); voting's side counts them too.
    pub warmup_calls: u64,
    /// Calls of the measured run that left (all of the schedule, unless
    /// stopped by SIGTERM).
    pub sent: u64,
    /// Answered with grpc-status 0.
    pub succeeded: u64,
    /// Answered with another status, or not within the deadline.
    pub failed: u64,
    /// Successful calls a second, from the first call's due time to the
    /// last answer: below `rate` when voting-svc (or the path) fell behind.
    pub achieved_rps: f64,
    /// Percentiles of the successful calls; `null` when none succeeded.
    pub latency_us: Option<Percentiles>,
    /// The first failure's status, if any call failed.
    pub first_error: Option<String>,
}

impl Report {
    /// The report's JSON line.
    pub fn to_json(&self) -> String {
        // A struct of numbers and strings always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why no run took place.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no successful {method} from {target} in {after:?} ({tries} tries); the last: {last}")]
    NotReady {
        target: Authority,
        method: String,
        after: Duration,
        tries: u64,
        last: Status,
    },
    #[error("stopped before the run began")]
    Stopped,
    #[error("cannot start the pacing thread: {0}")]
    Pacer(#[source] std::io::Error),
}

/// One call of `method` with an empty request (every Vote RPC's).
#[derive(Debug, Clone)]
struct Call {
    channel: Arc<Channel>,
    path: Arc<str>,
}

impl Call {
    async fn once(&self) -> Result<(), Status> {
        self.channel
            .unary::<Empty, Empty>(&self.path, &Empty)
            .await
            .map(|Empty| ())
    }
}

/// Waits until voting-svc answers, warms up, runs the measured schedule,
/// and reports it. SIGTERM stops the schedule early; calls in flight are
/// still waited for and counted.
pub async fn run(config: &LoadConfig, shutdown: Shutdown) -> Result<Report, Error> {
    let call = Call {
        channel: Arc::new(Channel::new(config.voting.clone(), config.timeout)),
        path: format!("/{}/{}", voting_svc::SERVICE, config.method).into(),
    };
    let mut warmup_calls = first_success(config, &call, &shutdown).await?;
    if !config.warmup.is_zero() {
        let warmup = Schedule::new(config.rate, config.warmup);
        warmup_calls += open_loop(&call, warmup, config.concurrency, shutdown.clone())
            .await?
            .sent;
    }
    if shutdown.is_triggered() {
        return Err(Error::Stopped);
    }
    let schedule = Schedule::new(config.rate, config.duration);
    let outcome = open_loop(&call, schedule, config.concurrency, shutdown).await?;
    Ok(outcome.report(config, warmup_calls))
}

/// Retries one call until it succeeds; the number of calls made.
async fn first_success(
    config: &LoadConfig,
    call: &Call,
    shutdown: &Shutdown,
) -> Result<u64, Error> {
    let started = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        let last = match call.once().await {
            Ok(()) => return Ok(tries),
            Err(status) => status,
        };
        if shutdown.is_triggered() {
            return Err(Error::Stopped);
        }
        if started.elapsed() >= config.ready_timeout {
            return Err(Error::NotReady {
                target: config.voting.clone(),
                method: config.method.clone(),
                after: started.elapsed(),
                tries,
                last,
            });
        }
        tracing::info!(%last, "voting-svc not answering yet");
        tokio::time::sleep(RETRY).await;
    }
}

/// What one schedule came to.
#[derive(Debug, Default)]
struct Outcome {
    sent: u64,
    succeeded: u64,
    failed: u64,
    latencies: Latencies,
    first_error: Option<String>,
    /// From the schedule's start to the last answer.
    elapsed: Duration,
}

/// A finished call: its result, when it was due, when it ended.
type Done = (Result<(), Status>, Instant, Instant);

impl Outcome {
    fn record(&mut self, done: Result<Done, JoinError>, start: Instant) {
        match done {
            Ok((result, due, ended)) => {
                self.elapsed = self.elapsed.max(ended - start);
                match result {
                    Ok(()) => {
                        self.succeeded += 1;
                        self.latencies.record(ended - due);
                    }
                    Err(status) => self.fail(status.to_string()),
                }
            }
            Err(err) => self.fail(format!("the call's task failed: {err}")),
        }
    }

    fn fail(&mut self, why: String) {
        self.failed += 1;
        self.first_error.get_or_insert(why);
    }

    fn report(self, config: &LoadConfig, warmup_calls: u64) -> Report {
        let seconds = self.elapsed.as_secs_f64();
        let achieved = if seconds > 0.0 {
            self.succeeded as f64 / seconds
        } else {
            0.0
        };
        Report {
            target: config.voting.to_string(),
            method: config.method.clone(),
            rate: config.rate,
            duration_s: config.duration.as_secs_f64(),
            concurrency: config.concurrency,
            warmup_calls,
            sent: self.sent,
            succeeded: self.succeeded,
            failed: self.failed,
            achieved_rps: (achieved * 100.0).round() / 100.0,
            latency_us: self.latencies.percentiles(),
            first_error: self.first_error,
        }
    }
}

/// Makes the calls of `schedule`, each on its own task as it falls due,
/// at most `concurrency` in flight, and counts their answers.
async fn open_loop(
    call: &Call,
    schedule: Schedule,
    concurrency: usize,
    mut shutdown: Shutdown,
) -> Result<Outcome, Error> {
    let start = Instant::now();
    let mut due_times = schedule::release(schedule, start).map_err(Error::Pacer)?;
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut calls: JoinSet<Done> = JoinSet::new();
    let mut outcome = Outcome::default();
    loop {
        tokio::select! {
            biased;
            () = shutdown.wait() => break,
            // A due call first: its wait would be in its latency; an
            // answer's time is taken on its task.
            due = due_times.recv() => {
                let Some(due) = due else { break };
                outcome.sent += 1;
                let (call, permits) = (call.clone(), Arc::clone(&permits));
                calls.spawn(async move {
                    // The semaphore is never closed: a permit always comes.
                    let _permit = permits.acquire_owned().await;
                    let result = call.once().await;
                    (result, due, Instant::now())
                });
            }
            Some(done) = calls.join_next(), if !calls.is_empty() => outcome.record(done, start),
        }
    }
    // Stops the pacing thread at its next call.
    drop(due_times);
    while let Some(done) = calls.join_next().await {
        outcome.record(done, start);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;
    use crate::shutdown;

    fn config(voting: &str, method: &str) -> LoadConfig {
        LoadConfig {
            voting: voting.parse().expect("an authority"),
            method: method.to_string(),
            rate: 200.0,
            duration: Duration::from_millis(500),
            warmup: Duration::from_millis(100),
            concurrency: 8,
            timeout: Duration::from_secs(2),
            ready_timeout: Duration::from_millis(300),
        }
    }

    async fn voting() -> (shutdown::Trigger, String) {
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = grpc.local_addr().expect("address").to_string();
        let (trigger, stop) = shutdown::channel();
        tokio::spawn(voting_svc::run(
            grpc,
            admin,
            stop,
            Duration::from_millis(100),
        ));
        (trigger, addr)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_the_schedule_against_voting_svc() {
        let (_server, addr) = voting().await;
        let (_keep, shutdown) = shutdown::channel();
        let report = run(&config(&addr, "VoteJoy"), shutdown)
            .await
            .expect("a run");
        assert_eq!(
            (report.sent, report.succeeded, report.failed),
            (100, 100, 0)
        );
        assert_eq!(
            report.warmup_calls,
            1 + 20,
            "the first call, then 100 ms at 200/s"
        );
        assert!(
            report.achieved_rps > 50.0 && report.achieved_rps <= 205.0,
            "{report:?}"
        );
        let p = report.latency_us.expect("latencies");
        assert!(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.p999 && p.p999 <= p.max);
        assert_eq!(report.first_error, None);

        let line = report.to_json();
        assert!(!line.contains('\n'));
        let back: Report = serde_json::from_str(&line).expect("the line parses");
        assert_eq!(back, report);
        let fields: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        for key in ["sent", "succeeded", "failed", "achieved_rps", "latency_us"] {
            assert!(fields.get(key).is_some(), "{key} in {line}");
        }
        for key in ["p50", "p90", "p99", "p999", "max"] {
            assert!(fields["latency_us"][key].is_u64(), "{key} in {line}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_calls_are_counted_with_the_first_error() {
        let (_server, addr) = voting().await;
        let (_keep, shutdown) = shutdown::channel();
        let mut config = config(&addr, "VoteDoughnut");
        // The first call must succeed: a doughnut never does.
        let err = run(&config, shutdown.clone())
            .await
            .expect_err("never ready");
        assert!(
            matches!(err, Error::NotReady { tries, .. } if tries > 1),
            "{err}"
        );
        assert!(err.to_string().contains("VoteDoughnut"), "{err}");

        // Counted as failures once the run is under way.
        let call = Call {
            channel: Arc::new(Channel::new(config.voting.clone(), config.timeout)),
            path: format!("/{}/VoteDoughnut", voting_svc::SERVICE).into(),
        };
        config.duration = Duration::from_millis(100);
        let outcome = open_loop(&call, Schedule::new(200.0, config.duration), 4, shutdown)
            .await
            .expect("a run");
        let report = outcome.report(&config, 0);
        assert_eq!((report.sent, report.succeeded, report.failed), (20, 0, 20));
        assert_eq!(report.latency_us, None);
        assert!(
            report
                .first_error
                .as_deref()
                .is_some_and(|e| e.contains("Unknown")),
            "{report:?}"
        );
    }

    #[tokio::test]
    async fn nobody_listening_is_not_ready() {
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = closed.local_addr().expect("address").to_string();
        drop(closed);
        let (_keep, shutdown) = shutdown::channel();
        let err = run(&config(&addr, "VoteJoy"), shutdown)
            .await
            .expect_err("nothing to call");
        assert!(err.to_string().contains("Unavailable"), "{err}");
    }

    #[tokio::test]
    async fn sigterm_before_the_run_stops_it() {
        let (_server, addr) = voting().await;
        let (trigger, shutdown) = shutdown::channel();
        trigger.trigger();
        let err = run(&config(&addr, "VoteJoy"), shutdown)
            .await
            .expect_err("stopped");
        assert!(matches!(err, Error::Stopped), "{err}");
    }
}
