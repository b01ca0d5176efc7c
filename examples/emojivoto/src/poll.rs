//! The votes voting-svc has counted, in memory (a restart forgets them, as
//! in the sample), and the leaderboard order: most votes first, ties by
//! shortcode so the order is stable between calls.

use std::collections::HashMap;
use std::sync::Mutex;

/// Counted votes, shared by every request of voting-svc.
#[derive(Debug, Default)]
pub struct Poll {
    votes: Mutex<HashMap<&'static str, u32>>,
}

impl Poll {
    /// Counts one vote for `shortcode`; returns its new total.
    pub fn vote(&self, shortcode: &'static str) -> u32 {
        let mut votes = self.votes.lock().unwrap_or_else(|p| p.into_inner());
        let count = votes.entry(shortcode).or_default();
        // Saturating: four billion votes is a demo that ran for 136 years.
        *count = count.saturating_add(1);
        *count
    }

    /// Every shortcode with at least one vote, most votes first.
    pub fn results(&self) -> Vec<(&'static str, u32)> {
        let votes = self.votes.lock().unwrap_or_else(|p| p.into_inner());
        let mut results: Vec<_> = votes.iter().map(|(s, n)| (*s, *n)).collect();
        drop(votes);
        results.sort_by(|(sa, na), (sb, nb)| nb.cmp(na).then_with(|| sa.cmp(sb)));
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_orders() {
        let poll = Poll::default();
        assert!(poll.results().is_empty());
        assert_eq!(poll.vote(":joy:"), 1);
        assert_eq!(poll.vote(":beer:"), 1);
        assert_eq!(poll.vote(":joy:"), 2);
        poll.vote(":ant:");
        assert_eq!(
            poll.results(),
            [(":joy:", 2), (":ant:", 1), (":beer:", 1)],
            "most votes first, ties by shortcode"
        );
    }
}
