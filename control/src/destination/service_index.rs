//! The Service half of the index: ClusterIP → Service, Service → its
//! EndpointSlices, and endpoint IP → the slices listing it, kept up to date
//! one watch event at a time.
//!
//! Views are derived when asked for, not stored: only ClusterIPs somebody
//! resolves or watches ever need one, and a stored view would have to be
//! derived again on every change of every pod behind it. Each update
//! returns the ClusterIPs whose answer may have changed, and
//! [`ServiceIndex::fronting`] turns a pod's changed IPs into the ClusterIPs
//! of the Services it is an endpoint of, so their subscribers hear of it.
//! Pure: no I/O, no clock.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use super::endpoint::Endpoint;
use super::index::Changed;
use super::service::{MAX_SERVICE_ENDPOINTS, ServiceInfo, ServiceKey, ServiceView};
use super::slice::{SliceInfo, SliceKey};

/// Services with a ClusterIP, their slices, and who lists which IP.
#[derive(Debug, Default)]
pub struct ServiceIndex {
    /// Only Services with at least one ClusterIP: the others have no
    /// address to answer for.
    services: HashMap<ServiceKey, ServiceInfo>,
    /// A set only so a relist that briefly holds an old and a new Service
    /// on one IP answers with one of them, the same one every time.
    by_cluster_ip: HashMap<IpAddr, BTreeSet<ServiceKey>>,
    /// Every slice of a Service, known or not yet: a slice can arrive
    /// before its Service.
    slices: HashMap<SliceKey, SliceInfo>,
    slices_of: HashMap<ServiceKey, BTreeSet<SliceKey>>,
    by_endpoint: HashMap<IpAddr, BTreeSet<SliceKey>>,
}

impl ServiceIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many Services with a ClusterIP are indexed.
    pub fn services(&self) -> usize {
        self.services.len()
    }

    /// The Service whose ClusterIP `ip` is.
    pub fn service_at(&self, ip: IpAddr) -> Option<&ServiceInfo> {
        let key = self.by_cluster_ip.get(&ip.to_canonical())?.first()?;
        self.services.get(key)
    }

    /// The view for ClusterIP `ip`, with `pod` answering for endpoint IPs;
    /// `None` when `ip` is no Service's ClusterIP.
    pub fn view(
        &self,
        ip: IpAddr,
        pod: impl Fn(IpAddr) -> Option<Arc<Endpoint>>,
    ) -> Option<ServiceView> {
        let service = self.service_at(ip)?;
        Some(ServiceView::derive(
            service,
            &self.slices_of(&service.key),
            pod,
        ))
    }

    /// How many endpoints of `key`'s ports the cap leaves out (for a log).
    pub fn cut(&self, key: &ServiceKey) -> usize {
        let Some(service) = self.services.get(key) else {
            return 0;
        };
        let slices = self.slices_of(key);
        // Deriving a view costs a sort; almost every Service is far below
        // the cap, which a sum shows without one.
        let listed: usize = slices.iter().map(|s| s.addresses.len()).sum();
        if listed <= MAX_SERVICE_ENDPOINTS {
            return 0;
        }
        ServiceView::derive(service, &slices, |_| None).cut
    }

    /// The ClusterIPs of the Services that have an endpoint at one of `ips`.
    pub fn fronting(&self, ips: &Changed) -> Changed {
        ips.iter()
            .filter_map(|ip| self.by_endpoint.get(ip))
            .flatten()
            .filter_map(|slice| self.slices.get(slice))
            .flat_map(|slice| self.cluster_ips(&slice.service))
            .copied()
            .collect()
    }

    /// Adds or updates a Service; one without a ClusterIP is removed.
    pub fn apply_service(&mut self, info: ServiceInfo) -> Changed {
        if info.cluster_ips.is_empty() {
            return self.delete_service(&info.key);
        }
        if self.services.get(&info.key) == Some(&info) {
            return Changed::new();
        }
        let mut changed = self.delete_service(&info.key);
        for ip in &info.cluster_ips {
            self.by_cluster_ip
                .entry(*ip)
                .or_default()
                .insert(info.key.clone());
        }
        changed.extend(info.cluster_ips.iter().copied());
        self.services.insert(info.key.clone(), info);
        changed
    }

    /// Removes a Service (its slices stay until their own delete events).
    pub fn delete_service(&mut self, key: &ServiceKey) -> Changed {
        let Some(old) = self.services.remove(key) else {
            return Changed::new();
        };
        for ip in &old.cluster_ips {
            if let Some(keys) = self.by_cluster_ip.get_mut(ip) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_cluster_ip.remove(ip);
                }
            }
        }
        old.cluster_ips.into_iter().collect()
    }

    /// Removes every Service not in `keep`.
    pub fn retain_services(&mut self, keep: impl Fn(&ServiceKey) -> bool) -> Changed {
        let gone: Vec<ServiceKey> = self.services.keys().filter(|k| !keep(k)).cloned().collect();
        gone.iter().flat_map(|k| self.delete_service(k)).collect()
    }

    /// Adds or updates an EndpointSlice.
    pub fn apply_slice(&mut self, info: SliceInfo) -> Changed {
        if self.slices.get(&info.key) == Some(&info) {
            return Changed::new();
        }
        let mut changed = self.delete_slice(&info.key);
        for ip in &info.addresses {
            self.by_endpoint
                .entry(*ip)
                .or_default()
                .insert(info.key.clone());
        }
        self.slices_of
            .entry(info.service.clone())
            .or_default()
            .insert(info.key.clone());
        changed.extend(self.cluster_ips(&info.service).iter().copied());
        self.slices.insert(info.key.clone(), info);
        changed
    }

    /// Removes an EndpointSlice.
    pub fn delete_slice(&mut self, key: &SliceKey) -> Changed {
        let Some(old) = self.slices.remove(key) else {
            return Changed::new();
        };
        for ip in &old.addresses {
            if let Some(keys) = self.by_endpoint.get_mut(ip) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_endpoint.remove(ip);
                }
            }
        }
        if let Some(keys) = self.slices_of.get_mut(&old.service) {
            keys.remove(key);
            if keys.is_empty() {
                self.slices_of.remove(&old.service);
            }
        }
        self.cluster_ips(&old.service).iter().copied().collect()
    }

    /// Removes every EndpointSlice not in `keep`.
    pub fn retain_slices(&mut self, keep: impl Fn(&SliceKey) -> bool) -> Changed {
        let gone: Vec<SliceKey> = self.slices.keys().filter(|k| !keep(k)).cloned().collect();
        gone.iter().flat_map(|k| self.delete_slice(k)).collect()
    }

    fn cluster_ips(&self, key: &ServiceKey) -> &[IpAddr] {
        self.services
            .get(key)
            .map(|s| s.cluster_ips.as_slice())
            .unwrap_or_default()
    }

    fn slices_of(&self, key: &ServiceKey) -> Vec<&SliceInfo> {
        self.slices_of
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|k| self.slices.get(k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{
        Endpoint as SliceEndpoint, EndpointConditions, EndpointPort, EndpointSlice,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::{Value, json};
    use weft_core::ports::NamedPorts;

    use crate::destination::answer;
    use crate::destination::endpoint::{PodInfo, PodKey, PortAnnotations};
    use crate::destination::index::{Index, Target};
    use crate::destination::slice::SERVICE_NAME_LABEL;

    use super::*;

    const NS: &str = "emojivoto";

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test IP")
    }

    fn set(ips: &[&str]) -> Changed {
        ips.iter().map(|t| ip(t)).collect()
    }

    fn service_key(name: &str) -> ServiceKey {
        ServiceKey {
            namespace: NS.to_string(),
            name: name.to_string(),
        }
    }

    fn slice_key(name: &str) -> SliceKey {
        SliceKey {
            namespace: NS.to_string(),
            name: name.to_string(),
        }
    }

    /// `voting-svc` on `cluster_ips`, port 80 named `http` (target port the
    /// name `http`, which only the slices resolve) and port 8801 unnamed.
    fn voting_svc(cluster_ips: &[&str]) -> ServiceInfo {
        let service = Service {
            metadata: ObjectMeta {
                name: Some("voting-svc".to_string()),
                namespace: Some(NS.to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: cluster_ips.first().map(|s| s.to_string()),
                cluster_ips: Some(cluster_ips.iter().map(|s| s.to_string()).collect()),
                ports: Some(vec![
                    ServicePort {
                        name: Some("http".to_string()),
                        port: 80,
                        target_port: Some(IntOrString::String("http".to_string())),
                        ..ServicePort::default()
                    },
                    ServicePort {
                        port: 8801,
                        protocol: Some("TCP".to_string()),
                        ..ServicePort::default()
                    },
                ]),
                ..ServiceSpec::default()
            }),
            status: None,
        };
        ServiceInfo::from_service(&service).expect("named service")
    }

    /// An endpoint: its addresses and `conditions.ready`.
    type Ep<'a> = (&'a [&'a str], Option<bool>);

    fn slice_of(
        address_type: &str,
        name: &str,
        ports: &[(Option<&str>, i32)],
        endpoints: &[Ep<'_>],
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(NS.to_string()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), "voting-svc".to_string())].into()),
                ..ObjectMeta::default()
            },
            address_type: address_type.to_string(),
            endpoints: endpoints
                .iter()
                .map(|(addresses, ready)| SliceEndpoint {
                    addresses: addresses.iter().map(|a| a.to_string()).collect(),
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        ..EndpointConditions::default()
                    }),
                    ..SliceEndpoint::default()
                })
                .collect(),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port)| EndpointPort {
                        name: name.map(str::to_string),
                        port: Some(*port),
                        protocol: Some("TCP".to_string()),
                        ..EndpointPort::default()
                    })
                    .collect(),
            ),
        }
    }

    fn slice(name: &str, ports: &[(Option<&str>, i32)], endpoints: &[Ep<'_>]) -> SliceInfo {
        SliceInfo::from_slice(&slice_of("IPv4", name, ports, endpoints)).expect("an IP slice")
    }

    fn pod(name: &str, pod_ip: &str, has_proxy: bool) -> PodInfo {
        PodInfo {
            key: PodKey {
                namespace: NS.to_string(),
                name: name.to_string(),
            },
            ips: vec![ip(pod_ip)],
            terminated: false,
            deleting: false,
            created: None,
            service_account: "voting".to_string(),
            has_proxy,
            controller: None,
            pod_template_hash: None,
            ports: PortAnnotations::default(),
            named_ports: NamedPorts::default(),
        }
    }

    fn answer(index: &Index, addr: &str) -> Value {
        let addr: SocketAddr = addr.parse().expect("test addr");
        let answer = answer::for_target(addr, index.target(addr.ip()).as_ref(), 4143);
        serde_json::to_value(answer).expect("json")
    }

    fn endpoint_addrs(index: &Index, addr: &str) -> Vec<String> {
        answer(index, addr)["endpoints"]
            .as_array()
            .expect("a service answer")
            .iter()
            .map(|e| e["addr"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn a_service_port_answers_with_each_ready_endpoint_on_its_slice_port() {
        let mut index = Index::new("cluster.local");
        assert_eq!(
            index.apply_service(voting_svc(&["10.96.0.20"])),
            set(&["10.96.0.20"])
        );
        assert_eq!(index.services(), 1);
        assert_eq!(
            index.apply_slice(slice(
                "voting-svc-1",
                &[(Some("http"), 8080), (None, 9901)],
                &[
                    (&["10.89.0.7"], Some(true)),
                    (&["10.89.0.8"], None),
                    (&["10.89.0.9"], Some(false)),
                ],
            )),
            set(&["10.96.0.20"])
        );
        index.apply_pod(pod("voting-1", "10.89.0.7", true));

        assert_eq!(
            answer(&index, "10.96.0.20:80"),
            json!({
                "addr": "10.96.0.20:80",
                "meshed": false,
                "service": {"name": "voting-svc", "namespace": NS},
                "labels": {"dst_namespace": NS, "dst_service": "voting-svc"},
                "endpoints": [
                    {
                        "addr": "10.89.0.7:8080",
                        "meshed": true,
                        "identity": "spiffe://cluster.local/ns/emojivoto/sa/voting",
                        "opaque": false,
                        "proxy_port": 4143,
                        "labels": {
                            "dst_namespace": NS,
                            "dst_pod": "voting-1",
                            "dst_serviceaccount": "voting",
                        },
                    },
                    // No pod has this IP (yet): plaintext, no labels.
                    {"addr": "10.89.0.8:8080", "meshed": false},
                ],
            })
        );
        // The unnamed service port meets the unnamed slice port.
        assert_eq!(
            endpoint_addrs(&index, "10.96.0.20:8801"),
            ["10.89.0.7:9901", "10.89.0.8:9901"]
        );
        // A port the Service does not have: the Service, no endpoints.
        let other = answer(&index, "10.96.0.20:443");
        assert_eq!(other["endpoints"], json!([]));
        assert_eq!(other["service"]["name"], "voting-svc");
    }

    #[test]
    fn slices_merge_and_their_deletion_or_the_services_is_heard() {
        let mut index = Index::new("cluster.local");
        // A slice may come before its Service: it waits for it.
        assert!(
            index
                .apply_slice(slice(
                    "a",
                    &[(Some("http"), 8080)],
                    &[(&["10.89.0.8"], None)]
                ))
                .is_empty()
        );
        index.apply_service(voting_svc(&["10.96.0.20"]));
        index.apply_slice(slice(
            "b",
            &[(Some("http"), 8080)],
            &[(&["10.89.0.7", "10.89.0.8"], None)],
        ));
        assert_eq!(
            endpoint_addrs(&index, "10.96.0.20:80"),
            ["10.89.0.7:8080", "10.89.0.8:8080"]
        );
        // The same slice again changes nothing.
        assert!(
            index
                .apply_slice(slice(
                    "a",
                    &[(Some("http"), 8080)],
                    &[(&["10.89.0.8"], None)]
                ))
                .is_empty()
        );

        assert_eq!(index.delete_slice(&slice_key("b")), set(&["10.96.0.20"]));
        assert_eq!(endpoint_addrs(&index, "10.96.0.20:80"), ["10.89.0.8:8080"]);
        assert_eq!(index.delete_slice(&slice_key("a")), set(&["10.96.0.20"]));
        assert!(endpoint_addrs(&index, "10.96.0.20:80").is_empty());
        assert!(index.delete_slice(&slice_key("a")).is_empty());

        assert_eq!(
            index.delete_service(&service_key("voting-svc")),
            set(&["10.96.0.20"])
        );
        assert_eq!(
            answer(&index, "10.96.0.20:80"),
            json!({"addr": "10.96.0.20:80", "meshed": false})
        );
        assert_eq!(index.services(), 0);
    }

    #[test]
    fn a_pods_change_names_the_cluster_ips_of_its_services() {
        let mut index = Index::new("cluster.local");
        index.apply_service(voting_svc(&["10.96.0.20", "fd00:96::20"]));
        index.apply_slice(slice(
            "a",
            &[(Some("http"), 8080)],
            &[(&["10.89.0.7"], None)],
        ));

        assert_eq!(
            index.apply_pod(pod("voting-1", "10.89.0.7", false)),
            set(&["10.89.0.7", "10.96.0.20", "fd00:96::20"])
        );
        let before = index.target(ip("10.96.0.20"));
        assert_eq!(
            index.apply_pod(pod("voting-1", "10.89.0.7", true)),
            set(&["10.89.0.7", "10.96.0.20", "fd00:96::20"])
        );
        assert_ne!(index.target(ip("10.96.0.20")), before);
        assert_eq!(
            answer(&index, "10.96.0.20:80")["endpoints"][0]["meshed"],
            true
        );
        // Both ClusterIPs of a dual-stack Service answer alike.
        assert_eq!(
            answer(&index, "[fd00:96::20]:80")["endpoints"],
            answer(&index, "10.96.0.20:80")["endpoints"]
        );
        // A pod nobody fronts names only its own IP.
        assert_eq!(
            index.apply_pod(pod("other", "10.89.0.99", true)),
            set(&["10.89.0.99"])
        );
        assert_eq!(
            index.delete_pod(&PodKey {
                namespace: NS.to_string(),
                name: "voting-1".to_string(),
            }),
            set(&["10.89.0.7", "10.96.0.20", "fd00:96::20"])
        );
        assert_eq!(
            answer(&index, "10.96.0.20:80")["endpoints"],
            json!([{"addr": "10.89.0.7:8080", "meshed": false}])
        );
    }

    #[test]
    fn ipv6_slices_count_and_fqdn_slices_do_not() {
        let mut index = Index::new("cluster.local");
        index.apply_service(voting_svc(&["10.96.0.20", "fd00:96::20"]));
        let v6 = slice_of(
            "IPv6",
            "v6",
            &[(Some("http"), 8080)],
            &[(&["fd00:89::7"], None)],
        );
        let fqdn = slice_of(
            "FQDN",
            "fqdn",
            &[(Some("http"), 8080)],
            &[(&["voting.example.com"], None)],
        );
        assert_eq!(SliceInfo::from_slice(&fqdn), None);
        index.apply_slice(SliceInfo::from_slice(&v6).expect("an IP slice"));
        index.apply_slice(slice(
            "v4",
            &[(Some("http"), 8080)],
            &[(&["10.89.0.7"], None)],
        ));
        assert_eq!(
            endpoint_addrs(&index, "[fd00:96::20]:80"),
            ["10.89.0.7:8080", "[fd00:89::7]:8080"]
        );
    }

    #[test]
    fn a_service_answers_with_at_most_the_cap() {
        let mut index = Index::new("cluster.local");
        index.apply_service(voting_svc(&["10.96.0.20"]));
        let addresses: Vec<String> = (0..1_100u32)
            .map(|i| IpAddr::from([10, 89, (i / 250) as u8, (i % 250) as u8]).to_string())
            .collect();
        let half = addresses.len() / 2;
        for (name, part) in [("a", &addresses[..half]), ("b", &addresses[half..])] {
            let part: Vec<&str> = part.iter().map(String::as_str).collect();
            index.apply_slice(slice(name, &[(Some("http"), 8080)], &[(&part, None)]));
        }
        let listed = endpoint_addrs(&index, "10.96.0.20:80");
        assert_eq!(listed.len(), MAX_SERVICE_ENDPOINTS);
        // The lowest addresses are kept, in order.
        assert_eq!(listed[0], "10.89.0.0:8080");
        assert_eq!(listed[999], "10.89.3.249:8080");
        assert_eq!(index.service_cut(&service_key("voting-svc")), 100);
        // Port 8801 has no slice port: nothing to cut there.
        assert!(endpoint_addrs(&index, "10.96.0.20:8801").is_empty());
    }

    #[test]
    fn pod_ips_answer_as_before_and_a_cluster_ip_wins_over_a_pod() {
        let mut index = Index::new("cluster.local");
        index.apply_pod(pod("voting-1", "10.89.0.7", true));
        let alone = answer(&index, "10.89.0.7:8080");
        index.apply_service(voting_svc(&["10.96.0.20"]));
        index.apply_slice(slice(
            "a",
            &[(Some("http"), 8080)],
            &[(&["10.89.0.7"], None)],
        ));
        // Being an endpoint does not change a pod address's own answer.
        assert_eq!(answer(&index, "10.89.0.7:8080"), alone);
        assert!(matches!(
            index.target(ip("10.89.0.7")),
            Some(Target::Pod(_))
        ));
        assert!(alone.get("service").is_none() && alone.get("endpoints").is_none());

        // A broken cluster: a pod on the ClusterIP. The Service answers.
        index.apply_pod(pod("squatter", "10.96.0.20", true));
        assert_eq!(
            answer(&index, "10.96.0.20:80")["service"]["name"],
            "voting-svc"
        );
        assert_eq!(
            index.delete_service(&service_key("voting-svc")),
            set(&["10.96.0.20"])
        );
        assert_eq!(
            answer(&index, "10.96.0.20:80")["labels"]["dst_pod"],
            "squatter"
        );
    }

    #[test]
    fn a_headless_service_is_not_indexed_and_a_relist_drops_the_deleted() {
        let mut index = Index::new("cluster.local");
        assert!(index.apply_service(voting_svc(&["None"])).is_empty());
        assert_eq!(index.services(), 0);

        index.apply_service(voting_svc(&["10.96.0.20"]));
        index.apply_slice(slice(
            "a",
            &[(Some("http"), 8080)],
            &[(&["10.89.0.7"], None)],
        ));
        index.apply_slice(slice(
            "b",
            &[(Some("http"), 8080)],
            &[(&["10.89.0.8"], None)],
        ));
        assert_eq!(index.retain_slices(|k| k.name == "b"), set(&["10.96.0.20"]));
        assert_eq!(endpoint_addrs(&index, "10.96.0.20:80"), ["10.89.0.8:8080"]);
        assert!(index.retain_services(|k| k.name == "voting-svc").is_empty());
        assert_eq!(index.retain_services(|_| false), set(&["10.96.0.20"]));
        assert_eq!(index.target(ip("10.96.0.20")), None);
    }
}
