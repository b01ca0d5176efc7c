//! Keeping the proxy certified: the first certificate as soon as possible,
//! then a renewal at about 70 % of each certificate's lifetime.
//!
//! A failed attempt is retried with jittered exponential back-off (1 s
//! doubling to 60 s, each wait between half and all of that), so a fleet
//! of proxies whose identity service comes back does not arrive in
//! lockstep. While renewals fail the proxy keeps presenting its current
//! certificate; once that expires it is dropped (peers would refuse it)
//! and mesh handshakes fail until a renewal succeeds.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ring::rand::{SecureRandom as _, SystemRandom};

use super::certify::Certifier;
use super::store::IdentityStore;
use crate::tls::metrics::MeshMetrics;

/// The share of a certificate's remaining lifetime after which it is
/// renewed, before jitter.
pub const RENEW_AT: f64 = 0.7;
/// Renewal points are spread over `RENEW_AT ± RENEW_JITTER`.
pub const RENEW_JITTER: f64 = 0.05;

/// Back-off after failed attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure (before jitter).
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

/// 1 s, doubling up to 60 s.
pub const DEFAULT_BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    max: Duration::from_secs(60),
};

impl Backoff {
    /// The wait after `failures` consecutive failures (from 1), given a
    /// uniform `random` in [0, 1): between half and all of the doubled base.
    pub fn delay(&self, failures: u32, random: f64) -> Duration {
        let doubled = self
            .base
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)));
        let ceiling = doubled.min(self.max);
        ceiling.mul_f64(0.5 + 0.5 * random.clamp(0.0, 1.0))
    }
}

/// How long after `now` to renew a certificate that expires at `not_after`,
/// given a uniform `random` in [0, 1).
pub fn renew_after(now: SystemTime, not_after: SystemTime, random: f64) -> Duration {
    let left = not_after.duration_since(now).unwrap_or_default();
    let share = RENEW_AT + RENEW_JITTER * (2.0 * random.clamp(0.0, 1.0) - 1.0);
    left.mul_f64(share)
}

/// A uniform random number in [0, 1) for jitter (0.5 if the system's
/// generator fails: no jitter then, but no failure either).
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    match SystemRandom::new().fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

/// Certifies the proxy until the task is dropped.
pub async fn run(
    store: Arc<IdentityStore>,
    certifier: Certifier,
    metrics: Arc<MeshMetrics>,
    backoff: Backoff,
) {
    let mut failures = 0u32;
    loop {
        match certifier.certify().await {
            Ok(issued) => {
                failures = 0;
                metrics.certified("issued");
                let now = SystemTime::now();
                let wait = renew_after(now, issued.not_after, jitter());
                metrics.set_expiration(unix_seconds(issued.not_after));
                store.install(issued.key, issued.not_after);
                tracing::info!(
                    identity = %store.identity(),
                    expires_in = ?issued.not_after.duration_since(now).unwrap_or_default(),
                    renew_in = ?wait,
                    "certificate installed"
                );
                tokio::time::sleep(wait).await;
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                metrics.certified(error.result());
                let mut wait = backoff.delay(failures, jitter());
                if let Some(not_after) = store.not_after() {
                    match not_after.duration_since(SystemTime::now()) {
                        // Wake up at the expiry to drop the certificate.
                        Ok(left) => wait = wait.min(left + Duration::from_millis(1)),
                        Err(_) => {
                            store.clear();
                            metrics.set_expiration(0);
                            tracing::error!(
                                identity = %store.identity(),
                                "certificate expired and not renewed; mesh TLS is down until identity answers"
                            );
                        }
                    }
                }
                tracing::warn!(
                    identity = %store.identity(),
                    %error,
                    attempt = failures,
                    retry_in = ?wait,
                    "certification failed"
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_max_and_stays_jittered() {
        let b = DEFAULT_BACKOFF;
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(b.delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay(3, 1.0), Duration::from_secs(4));
        assert_eq!(b.delay(30, 1.0), Duration::from_secs(60));
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(30));
        for failures in 1..40 {
            let (lo, hi) = (b.delay(failures, 0.0), b.delay(failures, 0.999));
            assert!(
                lo <= hi && hi <= b.max && lo * 2 >= hi,
                "{failures}: {lo:?} {hi:?}"
            );
        }
    }

    #[test]
    fn renewal_comes_at_about_seventy_percent() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(86_400);
        let middle = renew_after(now, now + day, 0.5);
        assert_eq!(middle, day.mul_f64(0.7));
        let (early, late) = (
            renew_after(now, now + day, 0.0),
            renew_after(now, now + day, 1.0),
        );
        assert_eq!(early, day.mul_f64(0.65));
        assert_eq!(late, day.mul_f64(0.75));
        // Already expired: renew at once.
        assert_eq!(renew_after(now, now - day, 0.5), Duration::ZERO);
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let r = jitter();
            assert!((0.0..1.0).contains(&r));
        }
    }
}
