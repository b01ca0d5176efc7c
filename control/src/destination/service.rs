//! What destination knows about one Service: the few fields it reads
//! ([`ServiceInfo`]: its ClusterIPs and TCP ports), and what it answers for
//! a ClusterIP ([`ServiceView`]: per service port, the ready endpoints of
//! the Service's EndpointSlices, each with the pod behind it).
//!
//! A service port reaches its endpoints by name, as kube-proxy does: the
//! Service port `P` is named `N` (`""` when unnamed), and each slice's TCP
//! port named `N` gives the number to dial on its addresses. The target
//! port of the Service is never read: the endpointslice controller has
//! already resolved it (a named target port differs from pod to pod).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;

use super::endpoint::Endpoint;
use super::slice::SliceInfo;

/// The most endpoints a service port answers with; the rest are cut
/// (lowest addresses first kept) and logged. A client balances over a
/// thousand endpoints as well as over all of them, and a line stays small.
pub const MAX_SERVICE_ENDPOINTS: usize = 1_000;

/// A Service, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
}

/// The fields of a Service that destination reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Namespace and name.
    pub key: ServiceKey,
    /// `spec.clusterIPs` (or `spec.clusterIP`), parsed and canonical.
    /// Empty for a headless (`None`) or `ExternalName` Service: neither
    /// has an address of its own to answer for.
    pub cluster_ips: Vec<IpAddr>,
    /// TCP service ports, each with its name (`""` when unnamed).
    pub ports: BTreeMap<u16, String>,
}

impl ServiceInfo {
    /// Reads a Service; `None` when it has no name or namespace (never the
    /// case for a Service that came from the API server).
    pub fn from_service(service: &Service) -> Option<Self> {
        let meta = &service.metadata;
        let key = ServiceKey {
            namespace: meta.namespace.clone()?,
            name: meta.name.clone()?,
        };
        let spec = service.spec.as_ref();
        let external_name = spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName");
        let mut cluster_ips: Vec<IpAddr> = Vec::new();
        if let Some(spec) = spec.filter(|_| !external_name) {
            let listed = spec.cluster_ips.iter().flatten().map(String::as_str);
            // `None` (headless) and `""` do not parse, so they drop out here.
            for text in listed.chain(spec.cluster_ip.as_deref()) {
                if let Ok(ip) = text.trim().parse::<IpAddr>() {
                    let ip = ip.to_canonical();
                    if !cluster_ips.contains(&ip) {
                        cluster_ips.push(ip);
                    }
                }
            }
        }
        let mut ports = BTreeMap::new();
        for port in spec.and_then(|s| s.ports.as_ref()).into_iter().flatten() {
            if let Ok(number) = u16::try_from(port.port)
                && number != 0
                && is_tcp(port.protocol.as_deref())
            {
                ports
                    .entry(number)
                    .or_insert_with(|| port.name.clone().unwrap_or_default());
            }
        }
        Some(ServiceInfo {
            key,
            cluster_ips,
            ports,
        })
    }
}

/// Whether a Service or slice port's `protocol` is TCP (absent means TCP).
pub(crate) fn is_tcp(protocol: Option<&str>) -> bool {
    protocol.is_none_or(|p| p == "TCP")
}

/// One endpoint of a service port: the address to dial and the pod (if
/// the index knows one) that has its IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEndpoint {
    /// The endpoint's IP and the slice's port number.
    pub addr: SocketAddr,
    /// The pod answering for the IP.
    pub pod: Option<Arc<Endpoint>>,
}

/// What destination answers for a Service's ClusterIP, on every port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    /// The Service.
    pub service: ServiceKey,
    /// Per TCP service port, its ready endpoints, sorted by address,
    /// without duplicates, at most [`MAX_SERVICE_ENDPOINTS`].
    pub ports: BTreeMap<u16, Vec<ServiceEndpoint>>,
    /// Endpoints left out by the cap, over all ports.
    pub cut: usize,
}

impl ServiceView {
    /// The view of `service` given its slices and `pod`, the index's
    /// answer for an endpoint IP.
    pub fn derive(
        service: &ServiceInfo,
        slices: &[&SliceInfo],
        pod: impl Fn(IpAddr) -> Option<Arc<Endpoint>>,
    ) -> Self {
        let mut cut = 0;
        let ports = service
            .ports
            .iter()
            .map(|(number, name)| {
                let mut addrs = endpoint_addrs(name, slices);
                cut += addrs.len().saturating_sub(MAX_SERVICE_ENDPOINTS);
                addrs.truncate(MAX_SERVICE_ENDPOINTS);
                let endpoints = addrs
                    .into_iter()
                    .map(|addr| ServiceEndpoint {
                        addr,
                        pod: pod(addr.ip()),
                    })
                    .collect();
                (*number, endpoints)
            })
            .collect();
        ServiceView {
            service: service.key.clone(),
            ports,
            cut,
        }
    }

    /// The endpoints of service port `port`; none when the Service has no
    /// such TCP port.
    pub fn endpoints(&self, port: u16) -> &[ServiceEndpoint] {
        self.ports.get(&port).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Every slice's addresses on its TCP port named `name`, sorted and
/// without duplicates (a slice being replaced can list an address too).
fn endpoint_addrs(name: &str, slices: &[&SliceInfo]) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = slices
        .iter()
        .filter_map(|slice| Some((slice.ports.get(name)?, &slice.addresses)))
        .flat_map(|(port, ips)| ips.iter().map(|ip| SocketAddr::new(*ip, *port)))
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::*;
    use crate::destination::slice::SliceKey;

    fn service(spec: ServiceSpec) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("voting-svc".to_string()),
                namespace: Some("emojivoto".to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn port(name: Option<&str>, number: i32, protocol: Option<&str>) -> ServicePort {
        ServicePort {
            name: name.map(str::to_string),
            port: number,
            protocol: protocol.map(str::to_string),
            target_port: Some(IntOrString::String("http".to_string())),
            ..ServicePort::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test IP")
    }

    #[test]
    fn reads_cluster_ips_and_tcp_ports() {
        let read = ServiceInfo::from_service(&service(ServiceSpec {
            cluster_ip: Some("10.0.0.20".to_string()),
            cluster_ips: Some(vec!["10.0.0.20".to_string(), "fd00::20".to_string()]),
            ports: Some(vec![
                port(Some("http"), 80, None),
                port(Some("dns"), 53, Some("UDP")),
                port(None, 8801, Some("TCP")),
                port(Some("bad"), 70_000, None),
            ]),
            ..ServiceSpec::default()
        }))
        .expect("named");
        assert_eq!(read.cluster_ips, [ip("10.0.0.20"), ip("fd00::20")]);
        assert_eq!(
            read.ports,
            BTreeMap::from([(80, "http".to_string()), (8801, String::new())])
        );
    }

    #[test]
    fn headless_and_external_name_services_have_no_cluster_ip() {
        let headless = service(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            cluster_ips: Some(vec!["None".to_string()]),
            ..ServiceSpec::default()
        });
        let external = service(ServiceSpec {
            type_: Some("ExternalName".to_string()),
            external_name: Some("db.example.com".to_string()),
            cluster_ip: Some("10.0.0.21".to_string()),
            ..ServiceSpec::default()
        });
        for svc in [headless, external] {
            let read = ServiceInfo::from_service(&svc).expect("named");
            assert!(read.cluster_ips.is_empty(), "{read:?}");
        }
    }

    fn slice(name: &str, ports: &[(&str, u16)], addresses: &[&str]) -> SliceInfo {
        SliceInfo {
            key: SliceKey {
                namespace: "emojivoto".to_string(),
                name: name.to_string(),
            },
            service: ServiceKey {
                namespace: "emojivoto".to_string(),
                name: "voting-svc".to_string(),
            },
            ports: ports.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            addresses: addresses.iter().map(|a| ip(a)).collect(),
        }
    }

    fn addrs(view: &ServiceView, port: u16) -> Vec<String> {
        view.endpoints(port)
            .iter()
            .map(|e| e.addr.to_string())
            .collect()
    }

    #[test]
    fn a_service_port_maps_by_name_to_each_slices_port() {
        let svc = ServiceInfo {
            key: ServiceKey {
                namespace: "emojivoto".to_string(),
                name: "voting-svc".to_string(),
            },
            cluster_ips: vec![ip("10.0.0.20")],
            ports: BTreeMap::from([(80, "http".to_string()), (9090, String::new())]),
        };
        // Two slices can resolve the same named port to different numbers.
        let a = slice("a", &[("http", 8080)], &["10.0.0.7", "10.0.0.10"]);
        let b = slice(
            "b",
            &[("http", 8081), ("", 9091)],
            &["10.0.0.8", "10.0.0.7"],
        );
        let view = ServiceView::derive(&svc, &[&a, &b], |_| None);
        assert_eq!(
            addrs(&view, 80),
            [
                "10.0.0.7:8080",
                "10.0.0.7:8081",
                "10.0.0.8:8081",
                "10.0.0.10:8080"
            ]
        );
        assert_eq!(addrs(&view, 9090), ["10.0.0.7:9091", "10.0.0.8:9091"]);
        assert!(view.endpoints(81).is_empty());
        assert_eq!(view.cut, 0);
    }
}
