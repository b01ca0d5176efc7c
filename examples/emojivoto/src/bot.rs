//! `emojivoto vote-bot`: load for the demo. It calls web's
//! `/api/vote?choice=...` at a steady rate (one a second by default), a
//! fixed share of them for `:doughnut:`, whose votes always fail, and
//! prints one line per vote and a summary.
//!
//! A failed vote (a 500 for the doughnut, a refused connection while web
//! starts) is counted, not fatal: the bot only reports failure when not one
//! vote got an answer.

mod choices;
mod client;

use std::fmt;
use std::io::Write;
use std::time::Duration;

use http::uri::Authority;
use tokio::time::MissedTickBehavior;

pub use self::choices::Choices;
use self::client::WebClient;
use crate::emoji::DOUGHNUT;
use crate::query;
use crate::shutdown::Shutdown;

/// What the bot does.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// web's `host:port`.
    pub web: Authority,
    /// Votes a second.
    pub rate: f64,
    /// The share of votes for `:doughnut:`, in [0, 1].
    pub doughnut_share: f64,
    /// Stop after this many votes; `None` runs until shutdown.
    pub count: Option<u64>,
    /// How long one vote may take, connecting included.
    pub timeout: Duration,
}

/// What the votes came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Votes tried.
    pub votes: u64,
    /// Answered 2xx.
    pub ok: u64,
    /// Answered with another status (the doughnut's 500 among them).
    pub http_errors: u64,
    /// No answer: no connection, or a timeout.
    pub not_sent: u64,
    /// Votes tried for `:doughnut:`.
    pub doughnuts: u64,
}

impl Summary {
    /// Whether the run did its job: some vote was answered, or none was
    /// tried (stopped before the first).
    pub fn reached_web(&self) -> bool {
        self.votes == 0 || self.ok + self.http_errors > 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} votes: {} ok, {} failed with an HTTP error, {} not sent; {} for {DOUGHNUT}",
            self.votes, self.ok, self.http_errors, self.not_sent, self.doughnuts
        )
    }
}

/// Votes until `config.count` is reached or `shutdown`, writing a line per
/// vote to `out`.
pub async fn run(
    config: &BotConfig,
    mut shutdown: Shutdown,
    out: &mut (dyn Write + Send),
) -> Summary {
    let mut summary = Summary::default();
    let mut choices = Choices::new(config.doughnut_share);
    let mut client = WebClient::new(config.web.clone(), config.timeout);
    let mut ticks = tokio::time::interval(period(config.rate));
    // A slow answer delays the next vote rather than bunching them up.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while config.count.is_none_or(|n| summary.votes < n) {
        tokio::select! {
            biased;
            () = shutdown.wait() => break,
            _ = ticks.tick() => {}
        }
        let Some(choice) = choices.next() else { break };
        summary.votes += 1;
        if choice == DOUGHNUT {
            summary.doughnuts += 1;
        }
        // A vote in flight at shutdown finishes (within the timeout).
        let answer = client
            .get(&format!("/api/vote?choice={}", query::encode(choice)))
            .await;
        let line = match answer {
            Ok(status) if status.is_success() => {
                summary.ok += 1;
                status.to_string()
            }
            Ok(status) => {
                summary.http_errors += 1;
                status.to_string()
            }
            Err(why) => {
                summary.not_sent += 1;
                format!("not sent: {why}")
            }
        };
        // A closed stdout must not stop the load.
        let _ = writeln!(out, "vote {}: {choice} -> {line}", summary.votes);
    }
    let _ = out.flush();
    summary
}

/// The time between votes for `rate` votes a second (validated by the
/// flags; anything odd here falls back to one a second).
fn period(rate: f64) -> Duration {
    Duration::try_from_secs_f64(1.0 / rate)
        .ok()
        .filter(|p| !p.is_zero())
        .unwrap_or(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(period(1.0), Duration::from_secs(1));
        assert_eq!(period(50.0), Duration::from_millis(20));
        assert_eq!(period(0.0), Duration::from_secs(1));
        assert_eq!(period(-1.0), Duration::from_secs(1));
        assert_eq!(period(f64::NAN), Duration::from_secs(1));
    }

    #[test]
    fn summary_line_and_verdict() {
        let mut summary = Summary::default();
        assert!(summary.reached_web());
        summary.votes = 3;
        summary.not_sent = 3;
        assert!(!summary.reached_web());
        summary.http_errors = 1;
        summary.not_sent = 2;
        summary.doughnuts = 1;
        assert!(summary.reached_web());
        assert_eq!(
            summary.to_string(),
            "3 votes: 0 ok, 1 failed with an HTTP error, 2 not sent; 1 for :doughnut:"
        );
    }
}
