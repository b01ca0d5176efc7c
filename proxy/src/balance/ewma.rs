//! Peak-EWMA: a latency estimate that jumps up to a slow response at once
//! and comes down gradually, so one slow endpoint is avoided right away and
//! trusted again only after it has been fast for a while.
//!
//! Pure: every call takes the time it happens at.

use std::time::Duration;

use tokio::time::Instant;

/// How fast old observations fade: after `DECAY` without a response an
/// estimate is at 1/e of its value, and a new response weighs
/// `1 - e^(-elapsed/DECAY)` against it (Linkerd's proxy uses 10 s too).
pub const DECAY: Duration = Duration::from_secs(10);

/// The estimate given to an endpoint that failed to connect: far above any
/// healthy endpoint's, and fading like any other estimate so the endpoint
/// is tried again later.
pub const FAILURE_RTT: Duration = Duration::from_secs(1);

/// One endpoint's latency estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeakEwma {
    /// Nanoseconds as of `stamp`; `None` until the first observation.
    estimate: Option<f64>,
    stamp: Instant,
}

impl PeakEwma {
    /// No observation yet.
    pub fn new(now: Instant) -> Self {
        Self {
            estimate: None,
            stamp: now,
        }
    }

    /// Whether a response has been seen.
    pub fn is_measured(&self) -> bool {
        self.estimate.is_some()
    }

    /// The estimate at `now`, in nanoseconds: the last value faded by the
    /// time since, so an endpoint nobody has heard from for a while is
    /// tried again. `None` before the first observation.
    pub fn estimate(&self, now: Instant) -> Option<f64> {
        self.estimate
            .map(|e| e * fade(now.saturating_duration_since(self.stamp)))
    }

    /// Takes in one response's latency.
    pub fn observe(&mut self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_nanos() as f64;
        let next = match self.estimate {
            None => rtt,
            // Peak: a slower response than the estimate is believed at once.
            Some(current) if rtt > current => rtt,
            Some(current) => {
                let keep = fade(now.saturating_duration_since(self.stamp));
                current * keep + rtt * (1.0 - keep)
            }
        };
        self.estimate = Some(next);
        self.stamp = now;
    }

    /// Marks a failure: the estimate is at least [`FAILURE_RTT`].
    pub fn penalize(&mut self, now: Instant) {
        let floor = FAILURE_RTT.as_nanos() as f64;
        let current = self.estimate(now).unwrap_or(0.0);
        self.estimate = Some(current.max(floor));
        self.stamp = now;
    }
}

fn fade(elapsed: Duration) -> f64 {
    (-elapsed.as_secs_f64() / DECAY.as_secs_f64()).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_response_sets_the_estimate() {
        let t = Instant::now();
        let mut e = PeakEwma::new(t);
        assert!(!e.is_measured());
        assert_eq!(e.estimate(t), None);
        e.observe(ms(4), t);
        assert_eq!(e.estimate(t), Some(4e6));
    }

    #[test]
    fn a_slower_response_is_believed_at_once_a_faster_one_slowly() {
        let t = Instant::now();
        let mut e = PeakEwma::new(t);
        e.observe(ms(2), t);
        e.observe(ms(50), t + ms(10));
        assert_eq!(e.estimate(t + ms(10)), Some(50e6));
        // 10 ms later a 1 ms response weighs 1 - e^-0.001: barely anything.
        e.observe(ms(1), t + ms(20));
        let now = e.estimate(t + ms(20)).expect("measured");
        assert!(now > 49e6 && now < 50e6, "{now}");
        // A second later it weighs about 10 %.
        e.observe(ms(1), t + ms(1020));
        let later = e.estimate(t + ms(1020)).expect("measured");
        assert!(later > 44e6 && later < 46e6, "{later}");
    }

    #[test]
    fn an_estimate_fades_without_responses() {
        let t = Instant::now();
        let mut e = PeakEwma::new(t);
        e.observe(ms(100), t);
        let faded = e.estimate(t + DECAY).expect("measured");
        assert!((faded - 100e6 / std::f64::consts::E).abs() < 1e3, "{faded}");
    }

    #[test]
    fn a_failure_costs_at_least_the_failure_rtt() {
        let t = Instant::now();
        let mut e = PeakEwma::new(t);
        e.penalize(t);
        assert_eq!(e.estimate(t), Some(FAILURE_RTT.as_nanos() as f64));
        let mut slow = PeakEwma::new(t);
        slow.observe(Duration::from_secs(3), t);
        slow.penalize(t);
        assert_eq!(slow.estimate(t), Some(3e9));
    }
}
