//! A run's latencies and their percentiles: every sample is kept (20,000
//! calls are 160 KB) and sorted once, so the percentiles are exact, not a
//! histogram's bucket bounds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Latencies of the calls of one run, in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u64>,
}

/// The percentiles a report shows, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        self.micros
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// p50, p90, p99, p99.9 and the maximum; `None` without samples.
    pub fn percentiles(mut self) -> Option<Percentiles> {
        self.micros.sort_unstable();
        let sorted = &self.micros;
        Some(Percentiles {
            p50: nearest_rank(sorted, 500)?,
            p90: nearest_rank(sorted, 900)?,
            p99: nearest_rank(sorted, 990)?,
            p999: nearest_rank(sorted, 999)?,
            max: *sorted.last()?,
        })
    }
}

/// The nearest-rank percentile `per_mille`/1000 of `sorted`: the smallest
/// sample with at least that share of all samples at or below it. In
/// integers, so p99 of 100 samples is the 99th, never the 100th by a
/// rounding error.
fn nearest_rank(sorted: &[u64], per_mille: usize) -> Option<u64> {
    let n = sorted.len();
    let rank = (n * per_mille).div_ceil(1000).max(1);
    sorted.get(rank.min(n).checked_sub(1)?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(micros: impl IntoIterator<Item = u64>) -> Option<Percentiles> {
        let mut l = Latencies::default();
        for m in micros {
            l.record(Duration::from_micros(m));
        }
        l.percentiles()
    }

    #[test]
    fn nearest_rank_of_one_to_a_thousand() {
        // Shuffled: the order samples arrive in does not matter.
        let samples = (1..=1000u64).map(|i| (i * 7919) % 1000 + 1);
        assert_eq!(
            of(samples),
            Some(Percentiles {
                p50: 500,
                p90: 900,
                p99: 990,
                p999: 999,
                max: 1000
            })
        );
    }

    #[test]
    fn small_runs() {
        assert_eq!(of([]), None);
        let one = Percentiles {
            p50: 7,
            p90: 7,
            p99: 7,
            p999: 7,
            max: 7,
        };
        assert_eq!(of([7]), Some(one));
        // 100 samples: p99 is the 99th, p99.9 the 100th.
        let p = of(1..=100).expect("samples");
        assert_eq!((p.p50, p.p90, p.p99, p.p999, p.max), (50, 90, 99, 100, 100));
        // 10 samples: p50 is the 5th, every tail the 10th.
        let p = of((1..=10).map(|i| i * 100)).expect("samples");
        assert_eq!((p.p50, p.p90, p.p99, p.p999), (500, 900, 1000, 1000));
    }

    #[test]
    fn sub_microsecond_and_huge() {
        let mut l = Latencies::default();
        l.record(Duration::from_nanos(999));
        l.record(Duration::MAX);
        assert_eq!(l.len(), 2);
        let p = l.percentiles().expect("samples");
        assert_eq!((p.p50, p.max), (0, u64::MAX));
    }
}
