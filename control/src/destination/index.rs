//! The index behind every answer: pod IP → [`Endpoint`], and a Service's
//! ClusterIP → its [`ServiceView`], kept up to date one watch event at a
//! time.
//!
//! It holds a summary of each pod ([`PodInfo`]), the port annotations of
//! each namespace, and the controllers of ReplicaSets and Jobs, and derives
//! each pod's endpoint when any of them changes; Services and their
//! EndpointSlices are kept by [`ServiceIndex`]. Every update returns the
//! IPs whose answer may have changed, so subscribers of other IPs are not
//! woken: a pod's change also names the ClusterIPs of the Services it is
//! an endpoint of. Pure: no I/O, no clock; the watch plumbing lives in
//! `cache`.
//!
//! Pod IPs and ClusterIPs come from disjoint ranges in a sane cluster; if
//! one IP is both, the Service answers for it, since a client dialling a
//! ClusterIP means the Service.
//!
//! Pod IPs are unique among running pods, but a finished pod keeps its IP in
//! its status while the node hands the IP to a new pod, and a terminating
//! pod's IP can be reused before the pod object is gone. Each IP therefore
//! keeps all its claimants and answers with the best one
//! ([`PodInfo::claim_rank`]); when that pod goes, the next one answers.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use super::endpoint::{Endpoint, PodInfo, PodKey, PortAnnotations};
use super::service::{ServiceInfo, ServiceKey, ServiceView};
use super::service_index::ServiceIndex;
use super::slice::{SliceInfo, SliceKey};
use super::workload::{Controller, ParentKey, ParentKind, Workload, top_workload};

/// The IPs whose answer may have changed after an update.
pub type Changed = BTreeSet<IpAddr>;

/// What answers for an IP: the pod that has it, or the Service whose
/// ClusterIP it is. Equal targets give equal answers on every port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A pod's address.
    Pod(Arc<Endpoint>),
    /// A Service's ClusterIP.
    Service(Arc<ServiceView>),
}

/// A pod and the endpoint derived from it.
#[derive(Debug)]
struct Entry {
    info: PodInfo,
    endpoint: Arc<Endpoint>,
}

/// Pod IPs to endpoints, and what the endpoints are derived from.
#[derive(Debug)]
pub struct Index {
    trust_domain: String,
    pods: HashMap<PodKey, Entry>,
    by_ip: HashMap<IpAddr, Vec<PodKey>>,
    namespaces: HashMap<String, PortAnnotations>,
    parents: HashMap<ParentKey, Option<Controller>>,
    services: ServiceIndex,
}

impl Index {
    /// An empty index whose identities use `trust_domain`.
    pub fn new(trust_domain: impl Into<String>) -> Self {
        Index {
            trust_domain: trust_domain.into(),
            pods: HashMap::new(),
            by_ip: HashMap::new(),
            namespaces: HashMap::new(),
            parents: HashMap::new(),
            services: ServiceIndex::new(),
        }
    }

    /// What answers for `ip`: the Service whose ClusterIP it is, else the
    /// pod that has it.
    pub fn target(&self, ip: IpAddr) -> Option<Target> {
        let ip = ip.to_canonical();
        let pod = |ip: IpAddr| self.lookup(ip).cloned();
        if let Some(view) = self.services.view(ip, pod) {
            return Some(Target::Service(Arc::new(view)));
        }
        self.lookup(ip).cloned().map(Target::Pod)
    }

    /// The endpoint answering for `ip`, if a pod has it (whether or not it
    /// is also a ClusterIP).
    pub fn lookup(&self, ip: IpAddr) -> Option<&Arc<Endpoint>> {
        let claimants = self.by_ip.get(&ip.to_canonical())?;
        claimants
            .iter()
            .filter_map(|key| self.pods.get(key))
            // Ties (same rank) go to the greater name, so the answer does not
            // depend on the order events arrived in.
            .max_by(|a, b| {
                (a.info.claim_rank(), &a.info.key).cmp(&(b.info.claim_rank(), &b.info.key))
            })
            .map(|entry| &entry.endpoint)
    }

    /// The endpoint derived for one pod (whichever IP it answers for).
    pub fn pod_endpoint(&self, key: &PodKey) -> Option<&Arc<Endpoint>> {
        self.pods.get(key).map(|entry| &entry.endpoint)
    }

    /// How many IPs have an answer.
    pub fn endpoints(&self) -> usize {
        self.by_ip.len()
    }

    /// How many pods are indexed (with or without an IP).
    pub fn pods(&self) -> usize {
        self.pods.len()
    }

    /// How many Services with a ClusterIP are indexed.
    pub fn services(&self) -> usize {
        self.services.services()
    }

    /// How many endpoints of `key`'s ports the cap leaves out.
    pub fn service_cut(&self, key: &ServiceKey) -> usize {
        self.services.cut(key)
    }

    /// Adds or updates a pod.
    pub fn apply_pod(&mut self, info: PodInfo) -> Changed {
        let mut changed = Changed::new();
        let endpoint = Arc::new(self.derive(&info));
        if let Some(old) = self.pods.get(&info.key) {
            if old.info == info && *old.endpoint == *endpoint {
                return changed;
            }
            changed.extend(old.info.ips.iter().copied());
            if old.info.ips != info.ips {
                let (key, old_ips) = (info.key.clone(), old.info.ips.clone());
                self.unclaim(&key, &old_ips);
                self.claim(&key, &info.ips);
            }
        } else {
            self.claim(&info.key, &info.ips);
        }
        changed.extend(info.ips.iter().copied());
        self.pods.insert(info.key.clone(), Entry { info, endpoint });
        self.and_fronting(changed)
    }

    /// Removes a pod.
    pub fn delete_pod(&mut self, key: &PodKey) -> Changed {
        let Some(old) = self.pods.remove(key) else {
            return Changed::new();
        };
        self.unclaim(key, &old.info.ips);
        self.and_fronting(old.info.ips.into_iter().collect())
    }

    /// Removes every pod not in `keep` (after a relist: those were deleted
    /// while the watch was down).
    pub fn retain_pods(&mut self, keep: impl Fn(&PodKey) -> bool) -> Changed {
        let gone: Vec<PodKey> = self.pods.keys().filter(|k| !keep(k)).cloned().collect();
        gone.iter().flat_map(|key| self.delete_pod(key)).collect()
    }

    /// Sets a namespace's port annotations.
    pub fn apply_namespace(&mut self, name: &str, ports: PortAnnotations) -> Changed {
        if self.namespaces.get(name) == Some(&ports) {
            return Changed::new();
        }
        self.namespaces.insert(name.to_string(), ports);
        self.rederive(|info| info.key.namespace == name)
    }

    /// Forgets a namespace (its pods go with their own delete events).
    pub fn delete_namespace(&mut self, name: &str) -> Changed {
        if self.namespaces.remove(name).is_none() {
            return Changed::new();
        }
        self.rederive(|info| info.key.namespace == name)
    }

    /// Forgets every namespace not in `keep`.
    pub fn retain_namespaces(&mut self, keep: impl Fn(&str) -> bool) -> Changed {
        let gone: Vec<String> = self
            .namespaces
            .keys()
            .filter(|n| !keep(n))
            .cloned()
            .collect();
        gone.iter().flat_map(|n| self.delete_namespace(n)).collect()
    }

    /// Sets the controller of a ReplicaSet or Job.
    pub fn apply_parent(&mut self, key: ParentKey, controller: Option<Controller>) -> Changed {
        // ReplicaSets change status all the time; only their controller matters.
        if self.parents.get(&key) == Some(&controller) {
            return Changed::new();
        }
        self.parents.insert(key.clone(), controller);
        self.rederive_children(&key)
    }

    /// Forgets a ReplicaSet or Job.
    pub fn delete_parent(&mut self, key: &ParentKey) -> Changed {
        if self.parents.remove(key).is_none() {
            return Changed::new();
        }
        self.rederive_children(key)
    }

    /// Forgets every ReplicaSet (or Job) not in `keep`.
    pub fn retain_parents(
        &mut self,
        kind: ParentKind,
        keep: impl Fn(&ParentKey) -> bool,
    ) -> Changed {
        let gone: Vec<ParentKey> = self
            .parents
            .keys()
            .filter(|k| k.kind == kind && !keep(k))
            .cloned()
            .collect();
        gone.iter().flat_map(|k| self.delete_parent(k)).collect()
    }

    /// Adds or updates a Service (one without a ClusterIP is removed).
    pub fn apply_service(&mut self, info: ServiceInfo) -> Changed {
        self.services.apply_service(info)
    }

    /// Removes a Service.
    pub fn delete_service(&mut self, key: &ServiceKey) -> Changed {
        self.services.delete_service(key)
    }

    /// Removes every Service not in `keep`.
    pub fn retain_services(&mut self, keep: impl Fn(&ServiceKey) -> bool) -> Changed {
        self.services.retain_services(keep)
    }

    /// Adds or updates an EndpointSlice.
    pub fn apply_slice(&mut self, info: SliceInfo) -> Changed {
        self.services.apply_slice(info)
    }

    /// Removes an EndpointSlice.
    pub fn delete_slice(&mut self, key: &SliceKey) -> Changed {
        self.services.delete_slice(key)
    }

    /// Removes every EndpointSlice not in `keep`.
    pub fn retain_slices(&mut self, keep: impl Fn(&SliceKey) -> bool) -> Changed {
        self.services.retain_slices(keep)
    }

    fn rederive_children(&mut self, parent: &ParentKey) -> Changed {
        self.rederive(|info| {
            info.key.namespace == parent.namespace
                && info
                    .controller
                    .as_ref()
                    .is_some_and(|c| c.name == parent.name && c.parent_kind() == Some(parent.kind))
        })
    }

    /// Derives again the endpoints of the pods `which` selects; returns the
    /// IPs of those whose endpoint changed.
    fn rederive(&mut self, which: impl Fn(&PodInfo) -> bool) -> Changed {
        let keys: Vec<PodKey> = self
            .pods
            .values()
            .filter(|e| which(&e.info))
            .map(|e| e.info.key.clone())
            .collect();
        let mut changed = Changed::new();
        for key in keys {
            let Some(entry) = self.pods.get(&key) else {
                continue;
            };
            let endpoint = self.derive(&entry.info);
            if let Some(entry) = self.pods.get_mut(&key)
                && *entry.endpoint != endpoint
            {
                entry.endpoint = Arc::new(endpoint);
                changed.extend(entry.info.ips.iter().copied());
            }
        }
        self.and_fronting(changed)
    }

    /// `changed` (pod IPs) and the ClusterIPs of the Services with an
    /// endpoint among them: those answers carry the pods' answers.
    fn and_fronting(&self, mut changed: Changed) -> Changed {
        let fronting = self.services.fronting(&changed);
        changed.extend(fronting);
        changed
    }

    fn derive(&self, info: &PodInfo) -> Endpoint {
        let workload = self.workload(info);
        Endpoint::derive(
            info,
            self.namespaces.get(&info.key.namespace),
            workload.as_ref(),
            &self.trust_domain,
        )
    }

    fn workload(&self, info: &PodInfo) -> Option<Workload> {
        let direct = info.controller.as_ref()?;
        Some(top_workload(
            &info.key.namespace,
            direct,
            info.pod_template_hash.as_deref(),
            |key| self.parents.get(key).cloned(),
        ))
    }

    fn claim(&mut self, key: &PodKey, ips: &[IpAddr]) {
        for ip in ips {
            let claimants = self.by_ip.entry(*ip).or_default();
            if !claimants.contains(key) {
                claimants.push(key.clone());
            }
        }
    }

    fn unclaim(&mut self, key: &PodKey, ips: &[IpAddr]) {
        for ip in ips {
            if let Some(claimants) = self.by_ip.get_mut(ip) {
                claimants.retain(|k| k != key);
                if claimants.is_empty() {
                    self.by_ip.remove(ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use weft_core::ports::NamedPorts;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test IP")
    }

    fn key(name: &str) -> PodKey {
        PodKey {
            namespace: "shop".to_string(),
            name: name.to_string(),
        }
    }

    fn pod(name: &str, ips: &[&str]) -> PodInfo {
        PodInfo {
            key: key(name),
            ips: ips.iter().map(|t| ip(t)).collect(),
            terminated: false,
            deleting: false,
            created: None,
            service_account: "web".to_string(),
            has_proxy: true,
            controller: Some(Controller {
                api_version: "apps/v1".to_string(),
                kind: "ReplicaSet".to_string(),
                name: "web-abc".to_string(),
            }),
            pod_template_hash: Some("abc".to_string()),
            ports: PortAnnotations::default(),
            named_ports: NamedPorts::default(),
        }
    }

    fn created(mut info: PodInfo, secs: i64) -> PodInfo {
        info.created = Some(Time(Timestamp::from_second(secs).expect("valid time")));
        info
    }

    fn answer(index: &Index, text: &str) -> Option<String> {
        index.lookup(ip(text)).map(|e| e.pod.name.clone())
    }

    fn set(ips: &[&str]) -> Changed {
        ips.iter().map(|t| ip(t)).collect()
    }

    fn rs_key() -> ParentKey {
        ParentKey {
            kind: ParentKind::ReplicaSet,
            namespace: "shop".to_string(),
            name: "web-abc".to_string(),
        }
    }

    #[test]
    fn a_pod_answers_for_each_of_its_ips_until_deleted() {
        let mut index = Index::new("cluster.local");
        let changed = index.apply_pod(pod("web-1", &["10.0.0.5", "fd00::5"]));
        assert_eq!(changed, set(&["10.0.0.5", "fd00::5"]));
        assert_eq!(answer(&index, "10.0.0.5").as_deref(), Some("web-1"));
        assert_eq!(answer(&index, "fd00::5").as_deref(), Some("web-1"));
        // An IPv4-mapped IPv6 address is the IPv4 address.
        assert_eq!(answer(&index, "::ffff:10.0.0.5").as_deref(), Some("web-1"));
        assert_eq!(answer(&index, "10.0.0.6"), None);
        assert_eq!((index.pods(), index.endpoints()), (1, 2));

        assert_eq!(
            index.delete_pod(&key("web-1")),
            set(&["10.0.0.5", "fd00::5"])
        );
        assert_eq!(answer(&index, "10.0.0.5"), None);
        assert_eq!((index.pods(), index.endpoints()), (0, 0));
        assert!(index.delete_pod(&key("web-1")).is_empty());
    }

    #[test]
    fn an_unchanged_pod_changes_nothing_and_a_new_ip_moves_the_answer() {
        let mut index = Index::new("cluster.local");
        index.apply_pod(pod("web-1", &[]));
        assert_eq!((index.pods(), index.endpoints()), (1, 0));
        assert_eq!(
            index.apply_pod(pod("web-1", &["10.0.0.5"])),
            set(&["10.0.0.5"])
        );
        assert!(index.apply_pod(pod("web-1", &["10.0.0.5"])).is_empty());
        assert_eq!(
            index.apply_pod(pod("web-1", &["10.0.0.9"])),
            set(&["10.0.0.5", "10.0.0.9"])
        );
        assert_eq!(answer(&index, "10.0.0.5"), None);
        assert_eq!(answer(&index, "10.0.0.9").as_deref(), Some("web-1"));
    }

    #[test]
    fn a_reused_ip_answers_with_the_live_pod_then_falls_back() {
        let mut index = Index::new("cluster.local");
        let mut finished = created(pod("job-1", &["10.0.0.5"]), 100);
        finished.terminated = true;
        let fresh = created(pod("web-2", &["10.0.0.5"]), 50);
        // Whatever the order of events, the running pod answers.
        index.apply_pod(fresh.clone());
        index.apply_pod(finished.clone());
        assert_eq!(answer(&index, "10.0.0.5").as_deref(), Some("web-2"));
        let mut other_order = Index::new("cluster.local");
        other_order.apply_pod(finished);
        other_order.apply_pod(fresh);
        assert_eq!(answer(&other_order, "10.0.0.5").as_deref(), Some("web-2"));

        // When the running pod goes, the finished one still has the IP.
        assert_eq!(index.delete_pod(&key("web-2")), set(&["10.0.0.5"]));
        let endpoint = index.lookup(ip("10.0.0.5")).expect("job-1 answers");
        assert_eq!(endpoint.pod.name, "job-1");
        assert!(!endpoint.meshed);
    }

    #[test]
    fn among_live_pods_the_newest_claim_wins() {
        let mut index = Index::new("cluster.local");
        let mut old = created(pod("old", &["10.0.0.5"]), 100);
        old.deleting = true;
        index.apply_pod(old);
        index.apply_pod(created(pod("new", &["10.0.0.5"]), 50));
        assert_eq!(answer(&index, "10.0.0.5").as_deref(), Some("new"));
        index.apply_pod(created(pod("newer", &["10.0.0.5"]), 200));
        assert_eq!(answer(&index, "10.0.0.5").as_deref(), Some("newer"));
        assert_eq!(index.endpoints(), 1);
    }

    #[test]
    fn namespace_annotations_rederive_only_their_pods() {
        let mut index = Index::new("cluster.local");
        index.apply_pod(pod("web-1", &["10.0.0.5"]));
        let mut elsewhere = pod("api-1", &["10.0.1.5"]);
        elsewhere.key.namespace = "other".to_string();
        index.apply_pod(elsewhere);

        let opaque = PortAnnotations {
            opaque_ports: Some("3306".to_string()),
            skip_inbound_ports: None,
        };
        assert_eq!(
            index.apply_namespace("shop", opaque.clone()),
            set(&["10.0.0.5"])
        );
        assert!(
            index
                .lookup(ip("10.0.0.5"))
                .is_some_and(|e| e.opaque_on(3306))
        );
        assert!(
            index
                .lookup(ip("10.0.1.5"))
                .is_some_and(|e| !e.opaque_on(3306))
        );
        // The same annotations again, or unrelated namespace changes: nothing.
        assert!(index.apply_namespace("shop", opaque).is_empty());
        assert!(
            index
                .apply_namespace("empty", PortAnnotations::default())
                .is_empty()
        );

        assert_eq!(index.delete_namespace("shop"), set(&["10.0.0.5"]));
        assert!(
            index
                .lookup(ip("10.0.0.5"))
                .is_some_and(|e| !e.opaque_on(3306))
        );
    }

    #[test]
    fn a_replica_sets_controller_names_the_workload() {
        let mut index = Index::new("cluster.local");
        let mut bare = pod("web-1", &["10.0.0.5"]);
        bare.pod_template_hash = None;
        index.apply_pod(bare);
        let label = |index: &Index| {
            index
                .lookup(ip("10.0.0.5"))
                .map(|e| {
                    e.labels
                        .iter()
                        .filter(|(k, _)| {
                            !matches!(
                                k.as_str(),
                                "dst_namespace" | "dst_pod" | "dst_serviceaccount"
                            )
                        })
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        assert_eq!(label(&index), ["dst_replicaset=web-abc"]);

        let deployment = Controller {
            api_version: "apps/v1".to_string(),
            kind: "Deployment".to_string(),
            name: "web".to_string(),
        };
        assert_eq!(
            index.apply_parent(rs_key(), Some(deployment.clone())),
            set(&["10.0.0.5"])
        );
        assert_eq!(label(&index), ["dst_deployment=web"]);
        // Status updates of the ReplicaSet repeat the same controller.
        assert!(index.apply_parent(rs_key(), Some(deployment)).is_empty());
        // Another namespace's ReplicaSet of the same name is not this one.
        let elsewhere = ParentKey {
            namespace: "other".to_string(),
            ..rs_key()
        };
        assert!(index.apply_parent(elsewhere, None).is_empty());

        assert_eq!(index.delete_parent(&rs_key()), set(&["10.0.0.5"]));
        assert_eq!(label(&index), ["dst_replicaset=web-abc"]);
    }

    #[test]
    fn a_relist_drops_what_was_deleted_meanwhile() {
        let mut index = Index::new("cluster.local");
        index.apply_pod(pod("web-1", &["10.0.0.5"]));
        index.apply_pod(pod("web-2", &["10.0.0.6"]));
        index.apply_namespace(
            "gone",
            PortAnnotations {
                opaque_ports: Some("1".to_string()),
                skip_inbound_ports: None,
            },
        );
        index.apply_parent(rs_key(), None);

        assert_eq!(index.retain_pods(|k| k.name == "web-2"), set(&["10.0.0.5"]));
        assert_eq!(answer(&index, "10.0.0.6").as_deref(), Some("web-2"));
        assert!(index.retain_namespaces(|n| n == "shop").is_empty());
        assert!(index.retain_parents(ParentKind::Job, |_| false).is_empty());
        // The ReplicaSet's removal falls back to the hash heuristic.
        assert_eq!(
            index.retain_parents(ParentKind::ReplicaSet, |_| false),
            set(&["10.0.0.6"])
        );
        assert!(
            index.lookup(ip("10.0.0.6")).is_some_and(|e| e
                .labels
                .get("dst_deployment")
                .map(String::as_str)
                == Some("web"))
        );
    }
}
