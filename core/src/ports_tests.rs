//! Unit tests of `ports`: canonical form, every malformed entry, name
//! resolution, and never panicking on any input.

use super::*;
use k8s_openapi::api::core::v1::{Container, ContainerPort};

fn canonical(input: &str) -> Result<String, PortListError> {
    PortList::parse(input, None).map(|l| l.to_string())
}

fn port(name: &str, number: i32, protocol: Option<&str>) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: number,
        protocol: protocol.map(str::to_string),
        ..ContainerPort::default()
    }
}

fn grpc_pod_ports() -> NamedPorts {
    let spec = PodSpec {
        containers: vec![
            Container {
                name: "app".into(),
                ports: Some(vec![
                    port("grpc", 8080, None),
                    port("admin-http", 9000, Some("TCP")),
                    port("dns", 53, Some("UDP")),
                ]),
                ..Container::default()
            },
            Container {
                name: "other".into(),
                ports: Some(vec![port("grpc", 8081, None)]),
                ..Container::default()
            },
        ],
        init_containers: Some(vec![Container {
            name: "sidecar".into(),
            ports: Some(vec![port("metrics", 9090, None), port("bad", 70000, None)]),
            ..Container::default()
        }]),
        ..PodSpec::default()
    };
    NamedPorts::from_spec(&spec)
}

#[test]
fn canonical_form_is_sorted_and_merged() {
    assert_eq!(
        canonical("25, 443,8000-8100").as_deref(),
        Ok("25,443,8000-8100")
    );
    assert_eq!(canonical("443,25").as_deref(), Ok("25,443"));
    assert_eq!(canonical("80,81,82").as_deref(), Ok("80-82"));
    assert_eq!(canonical("8000-8100,8050-8200").as_deref(), Ok("8000-8200"));
    assert_eq!(canonical("8000-8100,8101").as_deref(), Ok("8000-8101"));
    assert_eq!(canonical("1-65535,22").as_deref(), Ok("1-65535"));
    assert_eq!(canonical("22,22").as_deref(), Ok("22"));
    assert_eq!(canonical("7-7").as_deref(), Ok("7"));
    assert_eq!(canonical("0080").as_deref(), Ok("80"));
    assert_eq!(canonical(" 8000 - 8100 ").as_deref(), Ok("8000-8100"));
    assert_eq!(canonical("65535").as_deref(), Ok("65535"));
}

#[test]
fn empty_value_is_an_empty_list() {
    assert_eq!(PortList::parse("", None), Ok(PortList::default()));
    assert_eq!(PortList::parse("  ", None).map(|l| l.is_empty()), Ok(true));
}

#[test]
fn contains_checks_every_range() {
    let list = PortList::parse("25,8000-8100", None).unwrap_or_default();
    assert!(list.contains(25) && list.contains(8000) && list.contains(8100));
    assert!(!list.contains(26) && !list.contains(8101));
    assert_eq!(list.ranges(), &[(25, 25), (8000, 8100)]);
}

#[test]
fn malformed_lists_say_what_is_wrong() {
    let err = |s| PortList::parse(s, None).err();
    assert_eq!(
        err("25,,443"),
        Some(PortListError::EmptyEntry { position: 2 })
    );
    assert_eq!(err("25,"), Some(PortListError::EmptyEntry { position: 2 }));
    assert_eq!(err(",25"), Some(PortListError::EmptyEntry { position: 1 }));
    assert_eq!(
        err("0"),
        Some(PortListError::NotAPort { entry: "0".into() })
    );
    assert_eq!(
        err("65536"),
        Some(PortListError::NotAPort {
            entry: "65536".into()
        })
    );
    assert_eq!(
        err("99999999999999999999999"),
        Some(PortListError::NotAPort {
            entry: "99999999999999999999999".into()
        })
    );
    assert_eq!(
        err("1-70000"),
        Some(PortListError::NotAPort {
            entry: "1-70000".into()
        })
    );
    assert_eq!(
        err("8100-8000"),
        Some(PortListError::InvertedRange {
            entry: "8100-8000".into()
        })
    );
    assert_eq!(
        err("-5"),
        Some(PortListError::Invalid { entry: "-5".into() })
    );
    assert_eq!(
        err("5-"),
        Some(PortListError::Invalid { entry: "5-".into() })
    );
    assert_eq!(
        err("1-2-3"),
        Some(PortListError::Invalid {
            entry: "1-2-3".into()
        })
    );
    assert_eq!(
        err("80;443"),
        Some(PortListError::Invalid {
            entry: "80;443".into()
        })
    );
    assert_eq!(
        err("HTTP"),
        Some(PortListError::Invalid {
            entry: "HTTP".into()
        })
    );
    assert_eq!(
        err("grpc"),
        Some(PortListError::NameNotAllowed {
            entry: "grpc".into()
        })
    );
    let long = "x".repeat(100);
    let shown = format!("{}...", "x".repeat(MAX_ENTRY_SHOWN));
    assert_eq!(err(&long), Some(PortListError::Invalid { entry: shown }));
}

#[test]
fn names_resolve_to_tcp_container_ports() {
    let names = grpc_pod_ports();
    let list = |s| PortList::parse(s, Some(&names)).map(|l| l.to_string());
    assert_eq!(list("grpc").as_deref(), Ok("8080-8081"));
    assert_eq!(list("admin-http, 25").as_deref(), Ok("25,9000"));
    assert_eq!(list("metrics").as_deref(), Ok("9090"));
    assert_eq!(
        list("dns"),
        Err(PortListError::UnknownName {
            name: "dns".into(),
            known: vec!["admin-http".into(), "grpc".into(), "metrics".into()],
        })
    );
    // A port outside 1-65535 gives its name nothing to resolve to.
    assert!(list("bad").is_err());
}

#[test]
fn unknown_name_message_lists_the_known_ones() {
    let names = grpc_pod_ports();
    let msg = PortList::parse("grcp", Some(&names))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        msg.as_deref(),
        Some(
            "no TCP container port of the pod is named \"grcp\" (named ports: admin-http, grpc, metrics)"
        )
    );
    let none = NamedPorts::default();
    let msg = PortList::parse("grpc", Some(&none))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        msg.as_deref(),
        Some("no TCP container port of the pod is named \"grpc\" (the pod has no named TCP ports)")
    );
}

#[test]
fn port_name_syntax() {
    assert!(is_port_name("http"));
    assert!(is_port_name("http-2"));
    assert!(is_port_name("h2c"));
    assert!(!is_port_name("8080"));
    assert!(!is_port_name("-http"));
    assert!(!is_port_name("http-"));
    assert!(!is_port_name("ht--tp"));
    assert!(!is_port_name("Http"));
    assert!(!is_port_name("a_b"));
    assert!(!is_port_name("abcdefghijklmnop"));
}

proptest::proptest! {
    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,64}") {
        let names = grpc_pod_ports();
        let _ = PortList::parse(&s, None);
        let _ = PortList::parse(&s, Some(&names));
    }

    #[test]
    fn port_like_strings_never_panic(s in "[0-9a-z, -]{0,40}") {
        let names = grpc_pod_ports();
        let _ = PortList::parse(&s, Some(&names));
    }

    #[test]
    fn canonical_text_round_trips(ranges in proptest::collection::vec((1u16.., 1u16..), 0..20)) {
        let ranges: Vec<(u16, u16)> = ranges.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect();
        let list = PortList::from_ranges(ranges.clone());
        let reparsed = PortList::parse(&list.to_string(), None);
        proptest::prop_assert_eq!(reparsed.as_ref(), Ok(&list));
        // The canonical list holds exactly the ports of its inputs.
        for (start, end) in &ranges {
            proptest::prop_assert!(list.contains(*start) && list.contains(*end));
        }
        for pair in list.ranges().windows(2) {
            proptest::prop_assert!(u32::from(pair[0].1) + 1 < u32::from(pair[1].0));
        }
    }
}
