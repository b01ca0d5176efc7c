//! Client-side load balancing over a Service's endpoints, as Linkerd's
//! proxy does it: power of two choices ([`p2c`]) over each endpoint's
//! peak-EWMA latency times its requests in flight ([`ewma`], [`load`]).
//!
//! A [`Balancer`] is one snapshot of a Service's endpoints, rebuilt when
//! destination's answer changes; the loads outlive snapshots, so an
//! endpoint keeps its estimate when another one comes or goes. HTTP/2 and
//! HTTP/1 pick an endpoint per request, opaque TCP per connection
//! (`run::http::balanced`, `run::conn`).

pub mod ewma;
pub mod load;
pub mod p2c;

use std::hash::BuildHasher as _;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;

pub use load::{InFlight, Load, Loads};

use crate::tls::connect::MeshConnect;
use crate::tls::labels::PeerLabels;

/// One endpoint, ready to be dialled.
#[derive(Clone, Debug)]
pub struct Target {
    /// The pod address.
    pub addr: SocketAddr,
    /// Mesh TLS to it, or `None` for plaintext.
    pub tls: Option<MeshConnect>,
    /// Whether its port skips protocol detection.
    pub opaque: bool,
    /// Its load, shared by the whole proxy.
    pub load: Arc<Load>,
    /// The metric labels of requests sent to it: `server_id` when meshed,
    /// `dst_service` and the workload labels every endpoint shares.
    pub labels: PeerLabels,
}

/// One snapshot of a Service's endpoints.
#[derive(Debug)]
pub struct Balancer {
    targets: Vec<Target>,
    random: p2c::SplitMix,
}

impl Balancer {
    /// Balances over `targets` (at least one, or every pick is `None`).
    pub fn new(targets: Vec<Target>) -> Self {
        // A fresh seed per snapshot: proxies do not all pick alike.
        let seed = std::collections::hash_map::RandomState::new().hash_one(targets.len());
        Self {
            targets,
            random: p2c::SplitMix::new(seed),
        }
    }

    /// The endpoints.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Whether `addr` is one of the endpoints.
    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.targets.iter().any(|t| t.addr == addr)
    }

    /// The endpoint for the next request, leaving out those in `tried`
    /// (they just failed this request); `None` when none is left.
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<&Target> {
        self.pick_index(tried).and_then(|i| self.targets.get(i))
    }

    /// [`Self::pick`], as an index into [`Self::targets`].
    pub fn pick_index(&self, tried: &[SocketAddr]) -> Option<usize> {
        let now = Instant::now();
        if tried.is_empty() {
            return p2c::pick(self.targets.len(), &mut || self.random.next(), |i| {
                self.targets[i].load.cost(now)
            });
        }
        let left: Vec<usize> = (0..self.targets.len())
            .filter(|&i| !tried.contains(&self.targets[i].addr))
            .collect();
        let i = p2c::pick(left.len(), &mut || self.random.next(), |i| {
            self.targets[left[i]].load.cost(now)
        })?;
        left.get(i).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(loads: &Loads, n: u8) -> Balancer {
        Balancer::new(
            (1..=n)
                .map(|i| {
                    let addr = SocketAddr::from(([10, 89, 0, i], 8080));
                    Target {
                        addr,
                        tls: None,
                        opaque: false,
                        load: loads.get(addr),
                        labels: PeerLabels::none(),
                    }
                })
                .collect(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_endpoint_gets_less_and_a_failed_one_is_skipped() {
        let loads = Loads::default();
        let b = balancer(&loads, 3);
        // Endpoint 3 answers in 50 ms, the others in 1 ms.
        for t in b.targets() {
            let flight = t.load.start();
            let rtt = if t.addr.ip().to_string().ends_with(".3") {
                50
            } else {
                1
            };
            tokio::time::advance(std::time::Duration::from_millis(rtt)).await;
            flight.responded();
        }
        let mut counts = std::collections::HashMap::new();
        for _ in 0..3_000 {
            let t = b.pick(&[]).expect("endpoints");
            *counts.entry(t.addr).or_insert(0u32) += 1;
        }
        let slow = SocketAddr::from(([10, 89, 0, 3], 8080));
        assert_eq!(counts.get(&slow), None, "{counts:?}");

        let first = SocketAddr::from(([10, 89, 0, 1], 8080));
        let second = SocketAddr::from(([10, 89, 0, 2], 8080));
        let left = b.pick(&[first, second]).expect("one left");
        assert_eq!(left.addr, slow);
        assert!(b.pick(&[first, second, slow]).is_none());
        assert!(b.contains(first));
    }

    #[test]
    fn equal_endpoints_share_evenly() {
        let loads = Loads::default();
        let b = balancer(&loads, 3);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..9_000 {
            let t = b.pick(&[]).expect("endpoints");
            *counts.entry(t.addr).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 3);
        for c in counts.values() {
            assert!((2_500..3_500).contains(c), "{counts:?}");
        }
    }
}
