//! The shared, thread-safe face of the [`Index`]: lookups for `/v1/resolve`,
//! per-IP subscriptions for `/v1/watch`, and the one entry point through
//! which the watch events change the index. A subscriber holds the
//! [`Target`] for its IP (a pod or a Service's view) and is woken only when
//! that target is no longer equal to the one it holds.
//!
//! One lock guards the index and the subscribers together, so a subscriber
//! can never miss an update that lands between reading its first answer and
//! registering for the next. Lookups take it shared: a hash lookup for a
//! pod, a view derived from a few maps for a Service; the lock is never
//! held across an await.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use super::index::{Changed, Index, Target};
use super::metrics::Metrics;

/// What answers for an IP, or none.
pub type Current = Option<Target>;

struct State {
    index: Index,
    /// Only IPs somebody watches have a sender; it goes with its last watcher.
    subscribers: HashMap<IpAddr, watch::Sender<Current>>,
}

struct Inner {
    state: RwLock<State>,
    ready: AtomicBool,
    metrics: Metrics,
}

/// The index, shared between the watch events and the API.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.read();
        f.debug_struct("Cache")
            .field("pods", &state.index.pods())
            .field("endpoints", &state.index.endpoints())
            .field("services", &state.index.services())
            .field("subscribed_ips", &state.subscribers.len())
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Cache {
    /// An empty cache, not ready, whose identities use `trust_domain`.
    pub fn new(trust_domain: impl Into<String>, metrics: Metrics) -> Self {
        Cache {
            inner: Arc::new(Inner {
                state: RwLock::new(State {
                    index: Index::new(trust_domain),
                    subscribers: HashMap::new(),
                }),
                ready: AtomicBool::new(false),
                metrics,
            }),
        }
    }

    // A panic while holding the lock can only come from a bug in the index;
    // the data is still a consistent map, so keep serving it.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What answers for `ip` now: the Service whose ClusterIP it is, else
    /// the pod that has it.
    pub fn lookup(&self, ip: IpAddr) -> Current {
        self.read().index.target(ip)
    }

    /// Changes the index with `change` (which returns the IPs it touched)
    /// and tells the subscribers of those IPs whose answer changed.
    pub fn update<F>(&self, change: F)
    where
        F: FnOnce(&mut Index) -> Changed,
    {
        let mut state = self.write();
        let changed = change(&mut state.index);
        let State { index, subscribers } = &mut *state;
        for ip in changed {
            if let Some(sender) = subscribers.get(&ip) {
                let now = index.target(ip);
                // `Arc`'s equality checks the pointer first, then the
                // contents: an update that derives the same answer again
                // wakes nobody.
                sender.send_if_modified(|current| {
                    let same = *current == now;
                    if !same {
                        *current = now;
                    }
                    !same
                });
            }
        }
        self.inner
            .metrics
            .index_size(index.pods(), index.endpoints(), index.services());
    }

    /// Follows the answer for `ip`: the current target now, then each change.
    pub fn subscribe(&self, ip: IpAddr) -> Subscription {
        let ip = ip.to_canonical();
        let mut state = self.write();
        let State { index, subscribers } = &mut *state;
        let receiver = subscribers
            .entry(ip)
            .or_insert_with(|| watch::Sender::new(index.target(ip)))
            .subscribe();
        Subscription {
            cache: self.clone(),
            ip,
            receiver: Some(receiver),
        }
    }

    /// Whether every watch has finished its first list.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Marks the cache as having the cluster's full picture.
    pub fn set_ready(&self) {
        self.inner.ready.store(true, Ordering::Release);
    }

    /// Pods and answerable pod IPs in the index.
    pub fn size(&self) -> (usize, usize) {
        let state = self.read();
        (state.index.pods(), state.index.endpoints())
    }

    /// Services with a ClusterIP in the index.
    pub fn services(&self) -> usize {
        self.read().index.services()
    }

    /// IPs with at least one subscriber.
    pub fn subscribed_ips(&self) -> usize {
        self.read().subscribers.len()
    }

    fn unsubscribe(&self, ip: IpAddr) {
        let mut state = self.write();
        if state
            .subscribers
            .get(&ip)
            .is_some_and(|s| s.receiver_count() == 0)
        {
            state.subscribers.remove(&ip);
        }
    }
}

/// One follower of one IP's answer.
#[derive(Debug)]
pub struct Subscription {
    cache: Cache,
    ip: IpAddr,
    // An Option only so Drop can let go of it before cleaning up.
    receiver: Option<watch::Receiver<Current>>,
}

impl Subscription {
    /// What answers for the IP now; marks it seen.
    pub fn current(&mut self) -> Current {
        self.receiver
            .as_mut()
            .and_then(|r| r.borrow_and_update().clone())
    }

    /// Waits until the target changes from the last one seen. Never
    /// returns while the subscription lives: the sender stays with its
    /// receivers.
    pub async fn changed(&mut self) {
        if let Some(receiver) = self.receiver.as_mut()
            && receiver.changed().await.is_ok()
        {
            return;
        }
        std::future::pending().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.receiver.take());
        self.cache.unsubscribe(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weft_core::ports::NamedPorts;

    use super::*;
    use crate::destination::endpoint::{Endpoint, PodInfo, PodKey, PortAnnotations};
    use crate::destination::service::{ServiceInfo, ServiceKey};
    use crate::destination::slice::{SliceInfo, SliceKey};

    fn pod(name: &str, ip: &str, has_proxy: bool) -> PodInfo {
        PodInfo {
            key: PodKey {
                namespace: "shop".to_string(),
                name: name.to_string(),
            },
            ips: vec![ip.parse().expect("test IP")],
            terminated: false,
            deleting: false,
            created: None,
            service_account: "default".to_string(),
            has_proxy,
            controller: None,
            pod_template_hash: None,
            ports: PortAnnotations::default(),
            named_ports: NamedPorts::default(),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test IP")
    }

    async fn next(sub: &mut Subscription) -> Current {
        tokio::time::timeout(Duration::from_secs(5), sub.changed())
            .await
            .expect("a change arrives");
        sub.current()
    }

    fn pod_of(current: Current) -> Option<Arc<Endpoint>> {
        match current? {
            Target::Pod(endpoint) => Some(endpoint),
            Target::Service(_) => None,
        }
    }

    #[tokio::test]
    async fn a_subscriber_sees_its_ip_come_change_and_go() {
        let cache = Cache::new("cluster.local", Metrics::new());
        let mut sub = cache.subscribe(ip("10.0.0.5"));
        assert_eq!(sub.current(), None);

        cache.update(|i| i.apply_pod(pod("web-1", "10.0.0.5", false)));
        let seen = pod_of(next(&mut sub).await).expect("the pod");
        assert!(!seen.meshed);

        cache.update(|i| i.apply_pod(pod("web-1", "10.0.0.5", true)));
        assert!(pod_of(next(&mut sub).await).is_some_and(|e| e.meshed));

        cache.update(|i| {
            i.delete_pod(&PodKey {
                namespace: "shop".to_string(),
                name: "web-1".to_string(),
            })
        });
        assert_eq!(next(&mut sub).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn other_ips_and_equal_answers_do_not_wake_a_subscriber() {
        let cache = Cache::new("cluster.local", Metrics::new());
        cache.update(|i| i.apply_pod(pod("web-1", "10.0.0.5", true)));
        let mut sub = cache.subscribe(ip("10.0.0.5"));
        assert!(sub.current().is_some());

        cache.update(|i| i.apply_pod(pod("web-2", "10.0.0.6", true)));
        // A newer pod on the same IP but with an identical answer would
        // still be another pod: only a truly identical endpoint is silent.
        cache.update(|i| i.apply_pod(pod("web-1", "10.0.0.5", true)));
        let woke = tokio::time::timeout(Duration::from_secs(60), sub.changed()).await;
        assert!(woke.is_err(), "woken without a change");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cluster_ip_subscriber_hears_its_endpoints_pods_and_only_real_changes() {
        let cache = Cache::new("cluster.local", Metrics::new());
        let service = ServiceKey {
            namespace: "shop".to_string(),
            name: "web-svc".to_string(),
        };
        cache.update(|i| {
            i.apply_service(ServiceInfo {
                key: service.clone(),
                cluster_ips: vec![ip("10.96.0.10")],
                ports: [(80, "http".to_string())].into(),
            })
        });
        cache.update(|i| {
            i.apply_slice(SliceInfo {
                key: SliceKey {
                    namespace: "shop".to_string(),
                    name: "web-svc-1".to_string(),
                },
                service,
                ports: [("http".to_string(), 8080)].into(),
                addresses: vec![ip("10.0.0.5")],
            })
        });
        cache.update(|i| i.apply_pod(pod("web-1", "10.0.0.5", false)));
        let mut sub = cache.subscribe(ip("10.96.0.10"));
        let meshed = |current: &Current| match current {
            Some(Target::Service(view)) => view.endpoints(80)[0].pod.as_ref().map(|e| e.meshed),
            _ => None,
        };
        assert_eq!(meshed(&sub.current()), Some(false));

        // The endpoint's pod gets a proxy: the Service's answer changes.
        cache.update(|i| i.apply_pod(pod("web-1", "10.0.0.5", true)));
        assert_eq!(meshed(&next(&mut sub).await), Some(true));

        // Updates that name the ClusterIP but derive the same view (the pod
        // being deleted keeps its answer; a second slice listing the same
        // endpoint), and a pod elsewhere: nothing to hear.
        let mut deleting = pod("web-1", "10.0.0.5", true);
        deleting.deleting = true;
        let mut changed = Changed::new();
        cache.update(|i| {
            changed = i.apply_pod(deleting);
            changed.clone()
        });
        assert!(changed.contains(&ip("10.96.0.10")), "{changed:?}");
        cache.update(|i| {
            i.apply_slice(SliceInfo {
                key: SliceKey {
                    namespace: "shop".to_string(),
                    name: "web-svc-2".to_string(),
                },
                service: ServiceKey {
                    namespace: "shop".to_string(),
                    name: "web-svc".to_string(),
                },
                ports: [("http".to_string(), 8080)].into(),
                addresses: vec![ip("10.0.0.5")],
            })
        });
        cache.update(|i| i.apply_pod(pod("web-2", "10.0.0.6", true)));
        let woke = tokio::time::timeout(Duration::from_secs(60), sub.changed()).await;
        assert!(woke.is_err(), "woken without a change");
        assert_eq!(cache.services(), 1);
    }

    #[tokio::test]
    async fn the_last_subscriber_takes_the_sender_with_it() {
        let metrics = Metrics::new();
        let cache = Cache::new("cluster.local", metrics.clone());
        let a = cache.subscribe(ip("10.0.0.5"));
        let b = cache.subscribe(ip("::ffff:10.0.0.5"));
        assert_eq!(cache.subscribed_ips(), 1);
        drop(a);
        assert_eq!(cache.subscribed_ips(), 1);
        drop(b);
        assert_eq!(cache.subscribed_ips(), 0);

        cache.update(|i| i.apply_pod(pod("web-1", "10.0.0.5", true)));
        assert_eq!(cache.size(), (1, 1));
        assert!(cache.lookup(ip("10.0.0.5")).is_some());
        assert!(!cache.is_ready());
        cache.set_ready();
        assert!(cache.is_ready());
    }
}
