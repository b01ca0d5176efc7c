//! What destination knows about one pod: the few fields of a Pod it reads
//! ([`PodInfo`]), and what it answers for the pod's addresses
//! ([`Endpoint`]): mesh membership, identity, workload labels and the
//! opaque and skipped inbound ports.
//!
//! Port annotations use the injector's grammar and precedence
//! (`weft_core::ports`, the pod's value over its namespace's), so the
//! destination's idea of a pod matches what its proxy was injected with.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use weft_core::config::PROXY_CONTAINER_NAME;
use weft_core::overrides::CONFIG_PREFIX;
use weft_core::ports::{NamedPorts, PortList};

use super::workload::{Controller, POD_TEMPLATE_HASH_LABEL, Workload};

/// The annotation key (after [`CONFIG_PREFIX`]) listing opaque ports.
pub const OPAQUE_PORTS_KEY: &str = "opaque-ports";
/// The annotation key (after [`CONFIG_PREFIX`]) listing ports the pod's
/// iptables rules do not send to its proxy.
pub const SKIP_INBOUND_PORTS_KEY: &str = "skip-inbound-ports";

/// A pod, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
}

/// The port annotations of a pod or a namespace, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortAnnotations {
    /// `config.weft.dev/opaque-ports`.
    pub opaque_ports: Option<String>,
    /// `config.weft.dev/skip-inbound-ports`.
    pub skip_inbound_ports: Option<String>,
}

impl PortAnnotations {
    /// Reads the two annotations from an object's annotations.
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Self {
        let read = |key: &str| {
            annotations
                .and_then(|a| a.get(&format!("{CONFIG_PREFIX}{key}")))
                .cloned()
        };
        PortAnnotations {
            opaque_ports: read(OPAQUE_PORTS_KEY),
            skip_inbound_ports: read(SKIP_INBOUND_PORTS_KEY),
        }
    }
}

/// The fields of a Pod that destination reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace and name.
    pub key: PodKey,
    /// `status.podIPs` (and `status.podIP`), parsed; unparsable entries are
    /// dropped. Empty for host-network pods: those share their node's IP
    /// with every other host-network pod, so the IP names none of them.
    pub ips: Vec<IpAddr>,
    /// `Succeeded` or `Failed`: its IP may already belong to a new pod.
    pub terminated: bool,
    /// Being deleted (`metadata.deletionTimestamp` set).
    pub deleting: bool,
    /// `metadata.creationTimestamp`.
    pub created: Option<Time>,
    /// `spec.serviceAccountName`, `default` when unset.
    pub service_account: String,
    /// A container or init container (native sidecar) named `weft-proxy`.
    pub has_proxy: bool,
    /// The controlling owner reference.
    pub controller: Option<Controller>,
    /// The `pod-template-hash` label.
    pub pod_template_hash: Option<String>,
    /// The pod's own port annotations.
    pub ports: PortAnnotations,
    /// Named TCP container ports, for port names in annotations.
    pub named_ports: NamedPorts,
}

impl PodInfo {
    /// Reads a Pod; `None` when it has no name or namespace (never the case
    /// for a Pod that came from the API server).
    pub fn from_pod(pod: &Pod) -> Option<Self> {
        let meta = &pod.metadata;
        let key = PodKey {
            namespace: meta.namespace.clone()?,
            name: meta.name.clone()?,
        };
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        let ips = if host_network {
            Vec::new()
        } else {
            status.map(pod_ips).unwrap_or_default()
        };
        let phase = status.and_then(|s| s.phase.as_deref());
        let has_proxy = spec.is_some_and(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .any(|c| c.name == PROXY_CONTAINER_NAME)
        });
        let service_account = spec
            .and_then(|s| s.service_account_name.as_deref())
            .filter(|sa| !sa.is_empty())
            .unwrap_or("default")
            .to_string();
        Some(PodInfo {
            key,
            ips,
            terminated: matches!(phase, Some("Succeeded" | "Failed")),
            deleting: meta.deletion_timestamp.is_some(),
            created: meta.creation_timestamp.clone(),
            service_account,
            has_proxy,
            controller: Controller::of(meta),
            pod_template_hash: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
                .cloned(),
            ports: PortAnnotations::from_annotations(meta.annotations.as_ref()),
            named_ports: spec.map(NamedPorts::from_spec).unwrap_or_default(),
        })
    }

    /// The order in which pods sharing an IP claim it: a running pod over a
    /// finished one, a live one over one being deleted, then the newest.
    pub fn claim_rank(&self) -> (bool, bool, Option<&Time>) {
        (!self.terminated, !self.deleting, self.created.as_ref())
    }
}

/// `status.podIPs`, falling back to `status.podIP`, without duplicates.
fn pod_ips(status: &k8s_openapi::api::core::v1::PodStatus) -> Vec<IpAddr> {
    let listed = status.pod_ips.iter().flatten().map(|p| p.ip.as_str());
    let mut ips: Vec<IpAddr> = Vec::new();
    for text in listed.chain(status.pod_ip.as_deref()) {
        if let Ok(ip) = text.trim().parse::<IpAddr>() {
            let ip = ip.to_canonical();
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    ips
}

/// What destination answers for one pod's addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The pod.
    pub pod: PodKey,
    /// The pod has a proxy and has not finished.
    pub meshed: bool,
    /// `spiffe://<trust-domain>/ns/<ns>/sa/<sa>` when meshed.
    pub identity: Option<String>,
    /// Ports whose traffic skips protocol detection.
    pub opaque_ports: PortList,
    /// Ports the pod's iptables rules keep from its proxy: a client must
    /// not originate mesh TLS to them, nobody would terminate it.
    pub skip_inbound_ports: PortList,
    /// `dst_namespace`, `dst_pod`, `dst_serviceaccount` and the workload's
    /// `dst_<kind>`.
    pub labels: BTreeMap<String, String>,
    /// Port annotations that did not parse (each counted as an empty list).
    pub problems: Vec<String>,
}

impl Endpoint {
    /// What to answer for `pod`, given its namespace's port annotations and
    /// its top-level workload.
    pub fn derive(
        pod: &PodInfo,
        namespace: Option<&PortAnnotations>,
        workload: Option<&Workload>,
        trust_domain: &str,
    ) -> Self {
        let meshed = pod.has_proxy && !pod.terminated;
        let identity = meshed.then(|| {
            format!(
                "spiffe://{trust_domain}/ns/{}/sa/{}",
                pod.key.namespace, pod.service_account
            )
        });
        let mut problems = Vec::new();
        let mut ports = |key: &str, own: &Option<String>, inherited: Option<&String>| {
            // Per key, the pod's value wins over its namespace's, even an
            // empty one (a pod can clear its namespace's list).
            let Some(value) = own.as_ref().or(inherited) else {
                return PortList::default();
            };
            PortList::parse(value, Some(&pod.named_ports)).unwrap_or_else(|error| {
                problems.push(format!("{CONFIG_PREFIX}{key}={value:?}: {error}"));
                PortList::default()
            })
        };
        let opaque_ports = ports(
            OPAQUE_PORTS_KEY,
            &pod.ports.opaque_ports,
            namespace.and_then(|n| n.opaque_ports.as_ref()),
        );
        let skip_inbound_ports = ports(
            SKIP_INBOUND_PORTS_KEY,
            &pod.ports.skip_inbound_ports,
            namespace.and_then(|n| n.skip_inbound_ports.as_ref()),
        );

        let mut labels = BTreeMap::new();
        if let Some(workload) = workload {
            labels.insert(workload.label.clone(), workload.name.clone());
        }
        // Inserted last so an owner kind called `Pod` or `Namespace` cannot
        // overwrite them.
        labels.insert("dst_namespace".to_string(), pod.key.namespace.clone());
        labels.insert("dst_pod".to_string(), pod.key.name.clone());
        labels.insert(
            "dst_serviceaccount".to_string(),
            pod.service_account.clone(),
        );

        Endpoint {
            pod: pod.key.clone(),
            meshed,
            identity,
            opaque_ports,
            skip_inbound_ports,
            labels,
            problems,
        }
    }

    /// Whether a client should originate mesh TLS to this pod on `port`.
    pub fn meshed_on(&self, port: u16) -> bool {
        self.meshed && !self.skip_inbound_ports.contains(port)
    }

    /// Whether traffic to `port` skips protocol detection.
    pub fn opaque_on(&self, port: u16) -> bool {
        self.opaque_ports.contains(port)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodIP, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    const TD: &str = "cluster.local";

    fn pod(name: &str, ip: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("shop".to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                service_account_name: Some("web".to_string()),
                containers: vec![
                    Container {
                        name: "app".to_string(),
                        ports: Some(vec![ContainerPort {
                            name: Some("grpc".to_string()),
                            container_port: 9090,
                            ..ContainerPort::default()
                        }]),
                        ..Container::default()
                    },
                    Container {
                        name: "weft-proxy".to_string(),
                        ..Container::default()
                    },
                ],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".to_string()),
                pod_ip: Some(ip.to_string()),
                pod_ips: Some(vec![PodIP { ip: ip.to_string() }]),
                ..PodStatus::default()
            }),
        }
    }

    fn annotate(mut pod: Pod, key: &str, value: &str) -> Pod {
        pod.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(format!("{CONFIG_PREFIX}{key}"), value.to_string());
        pod
    }

    fn info(pod: &Pod) -> PodInfo {
        PodInfo::from_pod(pod).expect("named pod")
    }

    #[test]
    fn a_running_pod_with_a_proxy_is_meshed_with_its_identity_and_labels() {
        let workload = Workload {
            label: "dst_deployment".to_string(),
            name: "web".to_string(),
        };
        let endpoint =
            Endpoint::derive(&info(&pod("web-1", "10.0.0.5")), None, Some(&workload), TD);
        assert!(endpoint.meshed_on(8080));
        assert_eq!(
            endpoint.identity.as_deref(),
            Some("spiffe://cluster.local/ns/shop/sa/web")
        );
        let labels: Vec<(&str, &str)> = endpoint
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("dst_deployment", "web"),
                ("dst_namespace", "shop"),
                ("dst_pod", "web-1"),
                ("dst_serviceaccount", "web"),
            ]
        );
        assert!(endpoint.problems.is_empty());
    }

    #[test]
    fn without_a_proxy_or_after_finishing_a_pod_is_not_meshed() {
        let mut plain = pod("web-1", "10.0.0.5");
        if let Some(spec) = plain.spec.as_mut() {
            spec.containers.retain(|c| c.name != "weft-proxy");
        }
        let endpoint = Endpoint::derive(&info(&plain), None, None, TD);
        assert!(!endpoint.meshed_on(8080));
        assert_eq!(endpoint.identity, None);
        assert_eq!(endpoint.labels["dst_pod"], "web-1");

        for phase in ["Succeeded", "Failed"] {
            let mut done = pod("web-1", "10.0.0.5");
            if let Some(status) = done.status.as_mut() {
                status.phase = Some(phase.to_string());
            }
            let endpoint = Endpoint::derive(&info(&done), None, None, TD);
            assert!(!endpoint.meshed, "{phase}");
            assert_eq!(endpoint.identity, None);
        }
    }

    #[test]
    fn a_native_sidecar_proxy_counts_and_a_pending_pod_with_an_ip_is_meshed() {
        let mut native = pod("web-1", "10.0.0.5");
        if let Some(spec) = native.spec.as_mut() {
            let proxy = spec.containers.pop().expect("proxy container");
            spec.init_containers = Some(vec![proxy]);
        }
        if let Some(status) = native.status.as_mut() {
            status.phase = Some("Pending".to_string());
        }
        assert!(Endpoint::derive(&info(&native), None, None, TD).meshed);
    }

    #[test]
    fn reads_every_ip_and_none_of_a_host_network_pod() {
        let mut dual = pod("web-1", "10.0.0.5");
        if let Some(status) = dual.status.as_mut() {
            status.pod_ips = Some(vec![
                PodIP {
                    ip: "10.0.0.5".to_string(),
                },
                PodIP {
                    ip: "fd00::5".to_string(),
                },
                PodIP {
                    ip: "not an ip".to_string(),
                },
            ]);
        }
        let ips: Vec<String> = info(&dual).ips.iter().map(|ip| ip.to_string()).collect();
        assert_eq!(ips, ["10.0.0.5", "fd00::5"]);

        let mut host = pod("node-agent", "192.168.1.10");
        if let Some(spec) = host.spec.as_mut() {
            spec.host_network = Some(true);
        }
        assert!(info(&host).ips.is_empty());
    }

    #[test]
    fn the_service_account_defaults_and_a_nameless_pod_is_ignored() {
        let mut unnamed_sa = pod("web-1", "10.0.0.5");
        if let Some(spec) = unnamed_sa.spec.as_mut() {
            spec.service_account_name = None;
        }
        let endpoint = Endpoint::derive(&info(&unnamed_sa), None, None, "example.org");
        assert_eq!(
            endpoint.identity.as_deref(),
            Some("spiffe://example.org/ns/shop/sa/default")
        );
        let mut nameless = pod("x", "10.0.0.5");
        nameless.metadata.name = None;
        assert_eq!(PodInfo::from_pod(&nameless), None);
    }

    #[test]
    fn port_annotations_follow_the_injectors_grammar_and_precedence() {
        let namespace = PortAnnotations {
            opaque_ports: Some("3306, 5432".to_string()),
            skip_inbound_ports: Some("25".to_string()),
        };
        // The namespace's lists apply to a pod without its own.
        let plain = info(&pod("web-1", "10.0.0.5"));
        let endpoint = Endpoint::derive(&plain, Some(&namespace), None, TD);
        assert!(endpoint.opaque_on(5432));
        assert!(!endpoint.opaque_on(8080));
        assert!(!endpoint.meshed_on(25));
        assert!(endpoint.meshed_on(26));

        // The pod's value wins per key, port names resolve, and an empty
        // value clears the namespace's list.
        let own = annotate(
            annotate(pod("web-1", "10.0.0.5"), OPAQUE_PORTS_KEY, "grpc,7000-7002"),
            SKIP_INBOUND_PORTS_KEY,
            "",
        );
        let endpoint = Endpoint::derive(&info(&own), Some(&namespace), None, TD);
        assert_eq!(endpoint.opaque_ports.to_string(), "7000-7002,9090");
        assert!(!endpoint.opaque_on(5432));
        assert!(endpoint.meshed_on(25));
    }

    #[test]
    fn a_malformed_port_annotation_is_a_problem_not_a_crash() {
        let bad = annotate(pod("web-1", "10.0.0.5"), OPAQUE_PORTS_KEY, "70000,nope!");
        let endpoint = Endpoint::derive(&info(&bad), None, None, TD);
        assert!(endpoint.opaque_ports.is_empty());
        assert_eq!(endpoint.problems.len(), 1);
        assert!(
            endpoint.problems[0].contains("config.weft.dev/opaque-ports"),
            "{:?}",
            endpoint.problems
        );
        // Still meshed: the annotation only decides detection.
        assert!(endpoint.meshed_on(80));
    }

    #[test]
    fn a_pod_owner_cannot_shadow_the_fixed_labels() {
        let workload = Workload {
            label: "dst_pod".to_string(),
            name: "impostor".to_string(),
        };
        let endpoint =
            Endpoint::derive(&info(&pod("web-1", "10.0.0.5")), None, Some(&workload), TD);
        assert_eq!(endpoint.labels["dst_pod"], "web-1");
    }

    #[test]
    fn claims_prefer_live_then_newest_pods() {
        use k8s_openapi::jiff::Timestamp;
        let at = |secs: i64| Some(Time(Timestamp::from_second(secs).expect("valid time")));
        let mut old = info(&pod("old", "10.0.0.5"));
        old.created = at(100);
        let mut new = info(&pod("new", "10.0.0.5"));
        new.created = at(200);
        assert!(new.claim_rank() > old.claim_rank());
        let mut finished_new = new.clone();
        finished_new.terminated = true;
        assert!(old.claim_rank() > finished_new.claim_rank());
        let mut deleting_new = new.clone();
        deleting_new.deleting = true;
        assert!(old.claim_rank() > deleting_new.claim_rank());
        assert!(deleting_new.claim_rank() > finished_new.claim_rank());
    }
}
