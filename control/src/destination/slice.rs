//! What destination reads from one EndpointSlice ([`SliceInfo`]): the
//! Service it belongs to, its TCP ports by name, and the addresses of its
//! ready endpoints. Everything else (topology, hints, target references)
//! is dropped, so the index holds a few IPs per endpoint.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::service::{ServiceKey, is_tcp};

/// The label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// An EndpointSlice, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SliceKey {
    /// The slice's namespace (also its Service's).
    pub namespace: String,
    /// The slice's name.
    pub name: String,
}

/// The fields of an EndpointSlice that destination reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    /// Namespace and name.
    pub key: SliceKey,
    /// The Service named by [`SERVICE_NAME_LABEL`], in the slice's namespace.
    pub service: ServiceKey,
    /// TCP ports by name (`""` for an unnamed port). A slice port without
    /// a number is left out: nothing can be dialled through it.
    pub ports: BTreeMap<String, u16>,
    /// The addresses of the endpoints that are ready, canonical, sorted and
    /// without duplicates; addresses that do not parse are dropped.
    pub addresses: Vec<IpAddr>,
}

impl SliceInfo {
    /// Reads an EndpointSlice; `None` when destination has no use for it:
    /// no name or namespace, no Service label, or an `FQDN` slice (its
    /// addresses are host names, and a proxy dials IPs).
    pub fn from_slice(slice: &EndpointSlice) -> Option<Self> {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            return None;
        }
        let meta = &slice.metadata;
        let namespace = meta.namespace.clone()?;
        let service = meta
            .labels
            .as_ref()?
            .get(SERVICE_NAME_LABEL)
            .filter(|name| !name.is_empty())?
            .clone();
        let mut ports = BTreeMap::new();
        for port in slice.ports.iter().flatten() {
            let number = port.port.and_then(|p| u16::try_from(p).ok());
            if let Some(number) = number.filter(|p| *p != 0)
                && is_tcp(port.protocol.as_deref())
            {
                // Names are unique within a slice; if not, the first counts.
                ports
                    .entry(port.name.clone().unwrap_or_default())
                    .or_insert(number);
            }
        }
        let mut addresses: Vec<IpAddr> = slice
            .endpoints
            .iter()
            // An absent `ready` means ready: that is how Kubernetes reads it.
            .filter(|endpoint| endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .flat_map(|endpoint| &endpoint.addresses)
            .filter_map(|text| text.trim().parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical())
            .collect();
        addresses.sort();
        addresses.dedup();
        Some(SliceInfo {
            key: SliceKey {
                namespace: namespace.clone(),
                name: meta.name.clone()?,
            },
            service: ServiceKey {
                namespace,
                name: service,
            },
            ports,
            addresses,
        })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn endpoint(addresses: &[&str], ready: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            conditions: Some(EndpointConditions {
                ready,
                ..EndpointConditions::default()
            }),
            ..Endpoint::default()
        }
    }

    fn port(name: Option<&str>, number: Option<i32>, protocol: Option<&str>) -> EndpointPort {
        EndpointPort {
            name: name.map(str::to_string),
            port: number,
            protocol: protocol.map(str::to_string),
            ..EndpointPort::default()
        }
    }

    fn slice(
        address_type: &str,
        endpoints: Vec<Endpoint>,
        ports: Vec<EndpointPort>,
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some("voting-svc-abc".to_string()),
                namespace: Some("emojivoto".to_string()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), "voting-svc".to_string())].into()),
                ..ObjectMeta::default()
            },
            address_type: address_type.to_string(),
            endpoints,
            ports: Some(ports),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test IP")
    }

    #[test]
    fn reads_ready_addresses_and_tcp_ports_by_name() {
        let read = SliceInfo::from_slice(&slice(
            "IPv4",
            vec![
                endpoint(&["10.0.0.9", "10.0.0.7"], None),
                endpoint(&["10.0.0.8"], Some(true)),
                endpoint(&["10.0.0.6"], Some(false)),
                endpoint(&["not-an-ip", "10.0.0.7", "::ffff:10.0.0.5"], None),
            ],
            vec![
                port(Some("http"), Some(8080), None),
                port(Some("dns"), Some(53), Some("UDP")),
                port(None, Some(9090), Some("TCP")),
                port(Some("any"), None, None),
                port(Some("http"), Some(8081), None),
            ],
        ))
        .expect("a service's slice");
        assert_eq!(
            read.key,
            SliceKey {
                namespace: "emojivoto".to_string(),
                name: "voting-svc-abc".to_string(),
            }
        );
        assert_eq!(
            read.service,
            ServiceKey {
                namespace: "emojivoto".to_string(),
                name: "voting-svc".to_string(),
            }
        );
        assert_eq!(
            read.ports,
            BTreeMap::from([("".to_string(), 9090), ("http".to_string(), 8080)])
        );
        assert_eq!(
            read.addresses,
            [
                ip("10.0.0.5"),
                ip("10.0.0.7"),
                ip("10.0.0.8"),
                ip("10.0.0.9")
            ]
        );
    }

    #[test]
    fn fqdn_slices_and_slices_of_no_service_are_ignored() {
        let fqdn = slice(
            "FQDN",
            vec![endpoint(&["db.example.com"], None)],
            Vec::new(),
        );
        assert_eq!(SliceInfo::from_slice(&fqdn), None);

        let mut orphan = slice("IPv6", vec![endpoint(&["fd00::7"], None)], Vec::new());
        assert!(SliceInfo::from_slice(&orphan).is_some());
        orphan.metadata.labels = None;
        assert_eq!(SliceInfo::from_slice(&orphan), None);
    }
}
