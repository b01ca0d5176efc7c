//! What the vote bot votes for, as a deterministic sequence: a fixed share
//! of `:doughnut:` (15 % by default, as the sample's bot), spread evenly,
//! and the other emoji in turn, in a scrambled but fixed order.
//!
//! Deterministic so that a run of N votes has exactly
//! `floor(N * share)` doughnuts: tests and dashboards can count on it.

use crate::emoji::{self, DOUGHNUT};

/// Shares are kept in millionths, so the sequence is exact integer math.
const MILLION: u64 = 1_000_000;

/// An endless sequence of shortcodes.
#[derive(Debug, Clone)]
pub struct Choices {
    share_ppm: u64,
    /// Votes chosen so far.
    votes: u64,
    /// Non-doughnut votes chosen so far.
    others_chosen: u64,
    others: Vec<&'static str>,
    stride: usize,
}

impl Choices {
    /// `doughnut_share` is clamped to [0, 1].
    pub fn new(doughnut_share: f64) -> Self {
        let share = if doughnut_share.is_nan() {
            0.0
        } else {
            doughnut_share.clamp(0.0, 1.0)
        };
        let others: Vec<_> = emoji::ALL
            .iter()
            .map(|e| e.shortcode)
            .filter(|s| *s != DOUGHNUT)
            .collect();
        let stride = coprime_stride(others.len());
        Choices {
            share_ppm: (share * MILLION as f64).round() as u64,
            votes: 0,
            others_chosen: 0,
            others,
            stride,
        }
    }

    /// Doughnuts among the first `n` votes: `floor(n * share)`.
    fn doughnuts_within(&self, n: u64) -> u64 {
        (u128::from(n) * u128::from(self.share_ppm) / u128::from(MILLION)) as u64
    }
}

impl Iterator for Choices {
    type Item = &'static str;

    fn next(&mut self) -> Option<&'static str> {
        let before = self.doughnuts_within(self.votes);
        self.votes += 1;
        if self.doughnuts_within(self.votes) > before {
            return Some(DOUGHNUT);
        }
        // Stepping by a stride coprime with the length visits every other
        // emoji once per round, neighbours far apart.
        let len = self.others.len() as u64;
        let index = (self.others_chosen % len) * self.stride as u64 % len;
        self.others_chosen += 1;
        Some(self.others[index as usize])
    }
}

/// A step near a third of `len` that shares no factor with it.
fn coprime_stride(len: usize) -> usize {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    (len / 3 + 1..len).find(|s| gcd(*s, len) == 1).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn doughnuts(share: f64, n: usize) -> usize {
        Choices::new(share)
            .take(n)
            .filter(|s| *s == DOUGHNUT)
            .count()
    }

    #[test]
    fn fifteen_percent_exactly() {
        assert_eq!(doughnuts(0.15, 20), 3);
        assert_eq!(doughnuts(0.15, 100), 15);
        assert_eq!(doughnuts(0.15, 1000), 150);
        assert_eq!(doughnuts(0.15, 6), 0);
        assert_eq!(doughnuts(0.15, 7), 1);
    }

    #[test]
    fn edge_shares() {
        assert_eq!(doughnuts(0.0, 50), 0);
        assert_eq!(doughnuts(1.0, 50), 50);
        assert_eq!(doughnuts(7.0, 10), 10, "clamped");
        assert_eq!(doughnuts(f64::NAN, 10), 0);
    }

    #[test]
    fn the_others_take_turns() {
        let others: Vec<_> = Choices::new(0.0).take(98).collect();
        let unique: HashSet<_> = others.iter().collect();
        assert_eq!(unique.len(), 98, "each non-doughnut emoji once per round");
        assert!(!unique.contains(&DOUGHNUT));
        assert_ne!(others[1], emoji::ALL[1].shortcode, "not in catalogue order");
    }

    #[test]
    fn strides() {
        assert_eq!(coprime_stride(98), 33);
        assert_eq!(coprime_stride(1), 1);
        for len in 1..200 {
            let s = coprime_stride(len);
            let visited: HashSet<_> = (0..len).map(|k| k * s % len).collect();
            assert_eq!(visited.len(), len, "{len}");
        }
    }
}
