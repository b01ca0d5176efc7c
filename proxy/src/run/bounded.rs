//! A cap on the distinct values a metric label may take.
//!
//! Label values that come from traffic (authorities, destination ports) are
//! unbounded; each new one is a new time series in the proxy's memory and in
//! Prometheus. The first `cap` distinct values keep their own series, later
//! ones share the label value `other`.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::RwLock;

/// The first `cap` distinct values seen, and nothing more.
#[derive(Debug)]
pub struct Bounded<T> {
    cap: usize,
    seen: RwLock<HashSet<T>>,
}

impl<T: Hash + Eq> Bounded<T> {
    /// Admits at most `cap` distinct values.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            seen: RwLock::new(HashSet::new()),
        }
    }

    /// Whether `value` has (or now gets) its own label value.
    pub fn admit<Q>(&self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = T> + ?Sized,
    {
        // A poisoned lock only means another thread panicked mid-insert of a
        // HashSet, which leaves it valid; keep counting rather than crash.
        {
            let seen = self.seen.read().unwrap_or_else(|e| e.into_inner());
            if seen.contains(value) {
                return true;
            }
            if seen.len() >= self.cap {
                return false;
            }
        }
        let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= self.cap && !seen.contains(value) {
            return false;
        }
        seen.insert(value.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_first_cap_values_only() {
        let bounded: Bounded<String> = Bounded::new(2);
        assert!(bounded.admit("a"));
        assert!(bounded.admit("b"));
        assert!(bounded.admit("a"));
        assert!(!bounded.admit("c"));
        assert!(bounded.admit("b"));
        assert!(!bounded.admit("d"));
    }
}
