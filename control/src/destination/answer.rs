//! The wire format of the destination API: the `addr` a proxy asks about,
//! and the JSON [`Answer`] it gets back (one object for `/v1/resolve`, one
//! line per change for `/v1/watch`). A pod's address gets the pod's answer;
//! a Service's ClusterIP gets the Service and, for each of its ready
//! endpoints on the port asked about, the answer that endpoint's address
//! would get itself, so the proxy can balance over them.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::endpoint::Endpoint;
use super::error::DestinationError;
use super::index::Target;
use super::service::ServiceView;

/// Longest `addr` echoed back in an error (an IPv6 address with a zone and
/// port is well under this).
const MAX_ADDR_SHOWN: usize = 64;

/// Parses `IP:PORT` (`[IPv6]:PORT` for IPv6). An IPv4-mapped IPv6 address is
/// taken as the IPv4 address it maps.
pub fn parse_addr(text: Option<&str>) -> Result<SocketAddr, DestinationError> {
    let text = text.ok_or(DestinationError::MissingAddr)?;
    let shown = || shorten(text);
    let addr: SocketAddr = text
        .trim()
        .parse()
        .map_err(|_| DestinationError::BadAddr(shown()))?;
    if addr.port() == 0 {
        return Err(DestinationError::PortZero(shown()));
    }
    Ok(SocketAddr::new(addr.ip().to_canonical(), addr.port()))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_ADDR_SHOWN) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

pub use weft_core::destination::{Answer, ServiceRef};

/// The answer for `addr` given what (if anything) answers for its IP.
pub fn for_target(addr: SocketAddr, target: Option<&Target>, proxy_port: u16) -> Answer {
    match target {
        None => for_pod(addr, None, proxy_port),
        Some(Target::Pod(endpoint)) => for_pod(addr, Some(endpoint), proxy_port),
        Some(Target::Service(view)) => for_service(addr, view, proxy_port),
    }
}

/// The answer for `addr` given the endpoint (if any) that has its IP.
pub fn for_pod(addr: SocketAddr, endpoint: Option<&Endpoint>, proxy_port: u16) -> Answer {
    let Some(endpoint) = endpoint else {
        return Answer {
            addr: addr.to_string(),
            meshed: false,
            identity: None,
            opaque: None,
            proxy_port: None,
            service: None,
            labels: None,
            endpoints: None,
        };
    };
    let meshed = endpoint.meshed_on(addr.port());
    Answer {
        addr: addr.to_string(),
        meshed,
        identity: endpoint.identity.clone().filter(|_| meshed),
        opaque: Some(endpoint.opaque_on(addr.port())),
        proxy_port: meshed.then_some(proxy_port),
        service: None,
        labels: Some(endpoint.labels.clone()),
        endpoints: None,
    }
}

/// The answer for `addr`, a ClusterIP of the Service `view` shows.
pub fn for_service(addr: SocketAddr, view: &ServiceView, proxy_port: u16) -> Answer {
    let service = &view.service;
    let endpoints = view
        .endpoints(addr.port())
        .iter()
        .map(|e| for_pod(e.addr, e.pod.as_deref(), proxy_port))
        .collect();
    Answer {
        addr: addr.to_string(),
        meshed: false,
        identity: None,
        opaque: None,
        proxy_port: None,
        service: Some(ServiceRef {
            name: service.name.clone(),
            namespace: service.namespace.clone(),
        }),
        labels: Some(BTreeMap::from([
            ("dst_namespace".to_string(), service.namespace.clone()),
            ("dst_service".to_string(), service.name.clone()),
        ])),
        endpoints: Some(endpoints),
    }
}

#[cfg(test)]
mod tests {
    use weft_core::ports::PortList;

    use super::*;
    use crate::destination::endpoint::PodKey;

    fn endpoint(meshed: bool) -> Endpoint {
        Endpoint {
            pod: PodKey {
                namespace: "shop".to_string(),
                name: "web-1".to_string(),
            },
            meshed,
            identity: meshed.then(|| "spiffe://cluster.local/ns/shop/sa/web".to_string()),
            opaque_ports: PortList::from_ranges(vec![(3306, 3306)]),
            skip_inbound_ports: PortList::from_ranges(vec![(25, 25)]),
            labels: BTreeMap::from([
                ("dst_namespace".to_string(), "shop".to_string()),
                ("dst_pod".to_string(), "web-1".to_string()),
            ]),
            problems: Vec::new(),
        }
    }

    fn addr(text: &str) -> SocketAddr {
        parse_addr(Some(text)).expect("valid addr")
    }

    #[test]
    fn parses_ipv4_ipv6_and_mapped_addresses() {
        assert_eq!(addr("10.0.0.5:8080").to_string(), "10.0.0.5:8080");
        assert_eq!(addr(" [fd00::5]:443 ").to_string(), "[fd00::5]:443");
        assert_eq!(addr("[::ffff:10.0.0.5]:80").to_string(), "10.0.0.5:80");
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert!(matches!(
            parse_addr(None),
            Err(DestinationError::MissingAddr)
        ));
        for bad in [
            "",
            "10.0.0.5",
            "10.0.0.5:",
            "10.0.0.5:99999",
            "fd00::5:80",
            "web:80",
            "10.0.0.300:80",
        ] {
            assert!(
                matches!(parse_addr(Some(bad)), Err(DestinationError::BadAddr(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_addr(Some("10.0.0.5:0")),
            Err(DestinationError::PortZero(_))
        ));
        let long = "9".repeat(10_000);
        let Err(DestinationError::BadAddr(shown)) = parse_addr(Some(&long)) else {
            panic!("a long addr is bad");
        };
        assert!(shown.len() < 100, "{} chars echoed", shown.len());
    }

    #[test]
    fn an_unknown_address_is_just_unmeshed() {
        let answer = for_pod(addr("10.0.0.9:80"), None, 4143);
        assert_eq!(
            serde_json::to_value(&answer).expect("json"),
            serde_json::json!({"addr": "10.0.0.9:80", "meshed": false})
        );
    }

    #[test]
    fn a_meshed_pod_gives_identity_port_and_labels() {
        let answer = for_pod(addr("10.0.0.5:3306"), Some(&endpoint(true)), 4143);
        assert_eq!(
            serde_json::to_value(&answer).expect("json"),
            serde_json::json!({
                "addr": "10.0.0.5:3306",
                "meshed": true,
                "identity": "spiffe://cluster.local/ns/shop/sa/web",
                "opaque": true,
                "proxy_port": 4143,
                "labels": {"dst_namespace": "shop", "dst_pod": "web-1"},
            })
        );
    }

    #[test]
    fn a_skipped_inbound_port_or_an_unmeshed_pod_gets_no_identity() {
        for (meshed, port) in [(true, 25), (false, 80)] {
            let answer = for_pod(
                addr(&format!("10.0.0.5:{port}")),
                Some(&endpoint(meshed)),
                4143,
            );
            assert!(!answer.meshed);
            assert_eq!(answer.identity, None);
            assert_eq!(answer.proxy_port, None);
            assert_eq!(answer.opaque, Some(false));
            assert!(answer.labels.is_some());
        }
    }

    #[test]
    fn a_cluster_ip_names_its_service_and_answers_for_each_endpoint() {
        use std::sync::Arc;

        use crate::destination::service::{ServiceEndpoint, ServiceKey};

        let view = ServiceView {
            service: ServiceKey {
                namespace: "shop".to_string(),
                name: "web-svc".to_string(),
            },
            ports: [(
                80,
                vec![
                    ServiceEndpoint {
                        addr: addr("10.0.0.5:8080"),
                        pod: Some(Arc::new(endpoint(true))),
                    },
                    ServiceEndpoint {
                        addr: addr("10.0.0.6:8080"),
                        pod: None,
                    },
                ],
            )]
            .into(),
            cut: 0,
        };
        let answer = for_service(addr("10.96.0.10:80"), &view, 4143);
        assert_eq!(
            serde_json::to_string(&answer).expect("json"),
            concat!(
                r#"{"addr":"10.96.0.10:80","meshed":false,"#,
                r#""service":{"name":"web-svc","namespace":"shop"},"#,
                r#""labels":{"dst_namespace":"shop","dst_service":"web-svc"},"#,
                r#""endpoints":["#,
                r#"{"addr":"10.0.0.5:8080","meshed":true,"#,
                r#""identity":"spiffe://cluster.local/ns/shop/sa/web","opaque":false,"#,
                r#""proxy_port":4143,"labels":{"dst_namespace":"shop","dst_pod":"web-1"}},"#,
                r#"{"addr":"10.0.0.6:8080","meshed":false}]}"#,
            )
        );
        let back: Answer =
            serde_json::from_str(&serde_json::to_string(&answer).expect("json")).expect("parses");
        assert_eq!(back, answer);
        // A port the Service does not have: the Service, and no endpoints.
        let other = for_service(addr("10.96.0.10:81"), &view, 4143);
        assert_eq!(other.endpoints, Some(Vec::new()));
        assert!(other.service.is_some());
    }

    #[test]
    fn round_trips_through_json() {
        let answer = for_pod(addr("10.0.0.5:80"), Some(&endpoint(true)), 4143);
        let text = serde_json::to_string(&answer).expect("json");
        let back: Answer = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, answer);
    }
}
