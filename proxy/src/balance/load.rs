//! What the balancer knows of each endpoint's load: requests (or opaque
//! connections) in flight and the latency estimate. One [`Load`] per
//! endpoint address for the whole proxy, so every client connection sees
//! the load all the others put on it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::ewma::PeakEwma;

/// The latency charged per request in flight on an endpoint that has not
/// answered yet: an idle new endpoint costs nothing, so it is tried at
/// once, but a burst does not all land on it before its first response.
pub const UNMEASURED_RTT: Duration = Duration::from_millis(30);

/// One endpoint's load.
#[derive(Debug)]
pub struct Load {
    pending: AtomicUsize,
    ewma: Mutex<PeakEwma>,
}

impl Load {
    fn new(now: Instant) -> Self {
        Self {
            pending: AtomicUsize::new(0),
            ewma: Mutex::new(PeakEwma::new(now)),
        }
    }

    fn ewma(&self) -> MutexGuard<'_, PeakEwma> {
        self.ewma.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What sending one more request here costs: the latency estimate
    /// times the requests that would then be in flight.
    pub fn cost(&self, now: Instant) -> f64 {
        let pending = self.pending.load(Ordering::Relaxed) as f64;
        match self.ewma().estimate(now) {
            Some(estimate) => estimate * (pending + 1.0),
            None => UNMEASURED_RTT.as_nanos() as f64 * pending,
        }
    }

    /// Requests or connections in flight now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Counts one request (or opaque connection) in flight until the
    /// returned guard is dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.pending.fetch_add(1, Ordering::Relaxed);
        InFlight {
            load: self.clone(),
            started: Instant::now(),
        }
    }
}

/// One request in flight on an endpoint.
#[derive(Debug)]
pub struct InFlight {
    load: Arc<Load>,
    started: Instant,
}

impl InFlight {
    /// The response head arrived: its latency goes into the estimate.
    pub fn responded(self) {
        let now = Instant::now();
        self.load.ewma().observe(now - self.started, now);
    }

    /// The endpoint could not take the request (connect or handshake
    /// failed): it is penalized so the next picks avoid it.
    pub fn failed(self) {
        self.load.ewma().penalize(Instant::now());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.load.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every endpoint's [`Load`], by address; an address nobody balances over
/// any more is forgotten.
#[derive(Debug, Default)]
pub struct Loads {
    by_addr: Mutex<HashMap<SocketAddr, Weak<Load>>>,
}

impl Loads {
    /// The load of `addr`, shared with everyone else balancing over it.
    pub fn get(&self, addr: SocketAddr) -> Arc<Load> {
        let mut by_addr = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(load) = by_addr.get(&addr).and_then(Weak::upgrade) {
            return load;
        }
        // Sweep the forgotten ones now and then: the map stays within
        // twice the endpoints in use.
        if by_addr.len() >= 64 && by_addr.len().is_power_of_two() {
            by_addr.retain(|_, load| load.strong_count() > 0);
        }
        let load = Arc::new(Load::new(Instant::now()));
        by_addr.insert(addr, Arc::downgrade(&load));
        load
    }

    /// Addresses remembered (some may be unused and not swept yet).
    pub fn len(&self) -> usize {
        self.by_addr.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 89, 0, n], 8080))
    }

    #[tokio::test(start_paused = true)]
    async fn pending_requests_raise_the_cost_and_responses_set_the_latency() {
        let loads = Loads::default();
        let load = loads.get(addr(1));
        let now = Instant::now();
        assert_eq!(load.cost(now), 0.0, "an idle new endpoint is free");
        let first = load.start();
        let second = load.start();
        assert_eq!(load.pending(), 2);
        assert_eq!(load.cost(now), 2.0 * UNMEASURED_RTT.as_nanos() as f64);
        tokio::time::advance(Duration::from_millis(5)).await;
        first.responded();
        assert_eq!(load.pending(), 1);
        // 5 ms estimated, one still in flight: 5 ms × 2.
        let cost = load.cost(Instant::now());
        assert!((cost - 10e6).abs() < 1.0, "{cost}");
        second.failed();
        assert_eq!(load.pending(), 0);
        assert!(load.cost(Instant::now()) >= super::super::ewma::FAILURE_RTT.as_nanos() as f64);
    }

    #[test]
    fn one_load_per_address_while_someone_holds_it() {
        let loads = Loads::default();
        let a = loads.get(addr(1));
        let again = loads.get(addr(1));
        assert!(Arc::ptr_eq(&a, &again));
        drop((a, again));
        let fresh = loads.get(addr(1));
        assert_eq!(fresh.pending(), 0);
        assert_eq!(loads.len(), 1);
    }
}
