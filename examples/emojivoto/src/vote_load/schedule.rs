//! When each call of an open-loop run is due, and the thread that releases
//! them on time.
//!
//! The times are fixed before the run (`i / rate` seconds after the start),
//! so a slow answer never moves a later call. A thread of its own releases
//! them because `std::thread::sleep` wakes within tens of microseconds,
//! where tokio's timer rounds to the millisecond: at 1,000 calls a second
//! that would be a whole period of error in every latency.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// `rate` calls a second for a fixed length of time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    calls: u64,
}

impl Schedule {
    /// `rate` calls a second (above 0) for `length`: `floor(rate × length)`
    /// calls, the first due at the start, each `1/rate` after the last.
    pub fn new(rate: f64, length: Duration) -> Self {
        // A hair above the product, so 3.3/s for 10 s is 33 calls, not 32.
        let calls = (rate * length.as_secs_f64() + 1e-6).floor();
        Schedule {
            rate,
            calls: if calls.is_finite() && calls > 0.0 {
                calls as u64
            } else {
                0
            },
        }
    }

    /// How many calls the schedule holds.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// How long after the start call `i` (from 0) is due. Each offset is
    /// computed from the start, so rounding never accumulates.
    pub fn offset(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }
}

/// Starts the pacing thread: it sends each call's due time (from `start`)
/// at that time, and stops when the schedule ends or the receiver is
/// dropped.
pub fn release(
    schedule: Schedule,
    start: Instant,
) -> std::io::Result<mpsc::UnboundedReceiver<Instant>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("vote-load-pacer".to_string())
        .spawn(move || {
            for i in 0..schedule.calls() {
                let due = start + schedule.offset(i);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if tx.send(due).is_err() {
                    return;
                }
            }
        })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_in_the_length() {
        let calls = |rate, ms| Schedule::new(rate, Duration::from_millis(ms)).calls();
        assert_eq!(calls(1000.0, 20_000), 20_000);
        assert_eq!(calls(100.0, 20_000), 2_000);
        assert_eq!(calls(3.3, 10_000), 33);
        assert_eq!(calls(100.0, 15), 1, "1.5 calls are one");
        assert_eq!(calls(0.5, 1_000), 0, "half a call is none");
        assert_eq!(calls(100.0, 0), 0);
        assert_eq!(calls(f64::NAN, 1_000), 0);
    }

    #[test]
    fn offsets_are_fixed_and_do_not_drift() {
        let s = Schedule::new(1000.0, Duration::from_secs(20));
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(1));
        assert_eq!(s.offset(1000), Duration::from_secs(1));
        assert_eq!(s.offset(19_999), Duration::from_micros(19_999_000));
        let third = Schedule::new(3.0, Duration::from_secs(1));
        // 1/3 s each, not 333 ms added up.
        assert_eq!(third.offset(3), Duration::from_secs(1));
        let gaps: Vec<Duration> = (1..third.calls())
            .map(|i| third.offset(i) - third.offset(i - 1))
            .collect();
        for gap in gaps {
            assert!(gap.abs_diff(Duration::from_secs_f64(1.0 / 3.0)) < Duration::from_nanos(2));
        }
    }

    #[tokio::test]
    async fn releases_every_call_no_earlier_than_due() {
        let schedule = Schedule::new(1000.0, Duration::from_millis(50));
        let start = Instant::now();
        let mut due = release(schedule, start).expect("a thread");
        let mut seen = 0;
        while let Some(at) = due.recv().await {
            assert_eq!(at, start + schedule.offset(seen));
            assert!(Instant::now() >= at);
            seen += 1;
        }
        assert_eq!(seen, 50);
    }
}
