//! Power of two choices: pick two endpoints at random and take the cheaper.
//! Almost as good as asking every endpoint, at the cost of two, and never
//! sends a burst to the one that looked best a moment ago.
//!
//! Pure: the random numbers come from the caller.

/// Picks one of `n` candidates: two distinct ones drawn with `random`,
/// the one with the lower `cost` kept (the first drawn on a tie). `None`
/// when there are none.
pub fn pick(
    n: usize,
    random: &mut impl FnMut() -> u64,
    cost: impl Fn(usize) -> f64,
) -> Option<usize> {
    match n {
        0 => None,
        1 => Some(0),
        _ => {
            let a = index(random(), n);
            // Drawn from the other n - 1, so the two differ.
            let mut b = index(random(), n - 1);
            if b >= a {
                b += 1;
            }
            Some(if cost(b) < cost(a) { b } else { a })
        }
    }
}

fn index(random: u64, n: usize) -> usize {
    // n is at most a few thousand: the modulo bias is negligible.
    (random % n as u64) as usize
}

/// A small, fast generator for the draws (SplitMix64): balancing needs
/// spread, not secrecy.
#[derive(Debug)]
pub struct SplitMix(std::sync::atomic::AtomicU64);

impl SplitMix {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(std::sync::atomic::AtomicU64::new(seed))
    }

    /// The next number; safe to call from many tasks at once.
    pub fn next(&self) -> u64 {
        let step = 0x9E37_79B9_7F4A_7C15;
        let mut z = self
            .0
            .fetch_add(step, std::sync::atomic::Ordering::Relaxed)
            .wrapping_add(step);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_or_one_candidate() {
        let mut r = || 7;
        assert_eq!(pick(0, &mut r, |_| 0.0), None);
        assert_eq!(pick(1, &mut r, |_| 0.0), Some(0));
    }

    #[test]
    fn the_two_drawn_differ_and_the_cheaper_wins() {
        // Draws 1 then 1: the second is moved past the first, to 2.
        let mut draws = [1u64, 1].into_iter();
        let mut r = || draws.next().unwrap_or(0);
        let costs = [5.0, 3.0, 1.0];
        assert_eq!(pick(3, &mut r, |i| costs[i]), Some(2));
        // A tie keeps the first drawn.
        let mut draws = [0u64, 0].into_iter();
        let mut r = || draws.next().unwrap_or(0);
        assert_eq!(pick(2, &mut r, |_| 1.0), Some(0));
    }

    #[test]
    fn the_most_expensive_is_never_picked_and_the_rest_share() {
        let rng = SplitMix::new(42);
        let mut r = || rng.next();
        let costs = [1.0, 1.0, 1.0, 9.0];
        let mut counts = [0u32; 4];
        for _ in 0..30_000 {
            let i = pick(4, &mut r, |i| costs[i]).expect("four candidates");
            counts[i] += 1;
        }
        assert_eq!(counts[3], 0);
        for &c in &counts[..3] {
            // Each of the three equal ones gets about a third.
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }
}
