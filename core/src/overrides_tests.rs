//! Unit tests of `overrides`: every key, where its value comes from, and
//! every kind of malformed value.

use super::*;

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (format!("{CONFIG_PREFIX}{k}"), v.to_string()))
        .collect()
}

fn resolve_with(pod: &[(&str, &str)], ns: &[(&str, &str)]) -> Result<Resolved, SkipReason> {
    resolve(
        &annotations(pod),
        "shop",
        &annotations(ns),
        &NamedPorts::default(),
        &InjectorConfig::default(),
    )
}

fn settings(pod: &[(&str, &str)], ns: &[(&str, &str)]) -> Settings {
    match resolve_with(pod, ns) {
        Ok(resolved) => resolved.settings,
        Err(reason) => panic!("should resolve: {reason}"),
    }
}

fn skip(pod: &[(&str, &str)], ns: &[(&str, &str)]) -> SkipReason {
    match resolve_with(pod, ns) {
        Ok(resolved) => panic!("should skip, got {:?}", resolved.settings),
        Err(reason) => reason,
    }
}

fn q(s: &str) -> Option<Quantity> {
    Quantity::parse(s).ok()
}

fn text(q: &Sourced<Option<Quantity>>) -> (Option<&str>, Source) {
    (q.value.as_ref().map(Quantity::as_str), q.source)
}

#[test]
fn defaults_without_annotations() {
    let s = settings(&[], &[]);
    let config = InjectorConfig::default();
    assert!(s.skip_inbound_ports.value.is_empty());
    assert!(s.skip_outbound_ports.value.is_empty());
    assert!(s.opaque_ports.value.is_empty());
    assert_eq!(text(&s.proxy_cpu_request), (Some("10m"), Source::Default));
    assert_eq!(text(&s.proxy_cpu_limit), (None, Source::Default));
    assert_eq!(
        text(&s.proxy_memory_request),
        (Some("20Mi"), Source::Default)
    );
    assert_eq!(
        text(&s.proxy_memory_limit),
        (Some("250Mi"), Source::Default)
    );
    assert_eq!(s.proxy_log.value, "info");
    assert_eq!(s.proxy_image.value, config.proxy_image);
    assert_eq!(
        s.native_sidecar,
        Sourced {
            value: true,
            source: Source::Default
        }
    );
    let resolved = resolve_with(&[], &[]).ok();
    assert_eq!(
        resolved.map(|r| (r.notes, r.warnings)),
        Some((vec![], vec![]))
    );
}

#[test]
fn every_key_is_read() {
    let s = settings(
        &[
            ("skip-inbound-ports", "25, 443,8000-8100"),
            ("skip-outbound-ports", "3306"),
            ("opaque-ports", "5432,6379"),
            ("proxy-cpu-request", "100m"),
            ("proxy-cpu-limit", "1"),
            ("proxy-memory-request", "64Mi"),
            ("proxy-memory-limit", "1Gi"),
            ("proxy-log-level", "warn,weft_proxy=debug"),
            ("proxy-image", "registry.local/weft-proxy:dev"),
            ("native-sidecar", "false"),
        ],
        &[],
    );
    assert_eq!(s.skip_inbound_ports.value.to_string(), "25,443,8000-8100");
    assert_eq!(s.skip_outbound_ports.value.to_string(), "3306");
    assert_eq!(s.opaque_ports.value.to_string(), "5432,6379");
    assert_eq!(text(&s.proxy_cpu_request), (Some("100m"), Source::Pod));
    assert_eq!(text(&s.proxy_cpu_limit), (Some("1"), Source::Pod));
    assert_eq!(text(&s.proxy_memory_request), (Some("64Mi"), Source::Pod));
    assert_eq!(text(&s.proxy_memory_limit), (Some("1Gi"), Source::Pod));
    assert_eq!(s.proxy_log.value, "warn,weft_proxy=debug");
    assert_eq!(s.proxy_image.value, "registry.local/weft-proxy:dev");
    assert_eq!(
        s.native_sidecar,
        Sourced {
            value: false,
            source: Source::Pod
        }
    );
}

#[test]
fn pod_wins_per_key_over_namespace() {
    let s = settings(
        &[("opaque-ports", "6379")],
        &[("opaque-ports", "5432"), ("proxy-log-level", "debug")],
    );
    assert_eq!(s.opaque_ports.value.to_string(), "6379");
    assert_eq!(s.opaque_ports.source, Source::Pod);
    assert_eq!(
        s.proxy_log,
        Sourced {
            value: "debug".into(),
            source: Source::Namespace
        }
    );
}

#[test]
fn an_empty_pod_value_clears_the_namespace_list() {
    let s = settings(
        &[("skip-outbound-ports", "")],
        &[("skip-outbound-ports", "25")],
    );
    assert!(s.skip_outbound_ports.value.is_empty());
    assert_eq!(s.skip_outbound_ports.source, Source::Pod);
}

#[test]
fn a_bad_namespace_value_is_ignored_when_the_pod_sets_the_key() {
    let s = settings(&[("proxy-cpu-limit", "1")], &[("proxy-cpu-limit", "lots")]);
    assert_eq!(text(&s.proxy_cpu_limit), (Some("1"), Source::Pod));
}

#[test]
fn named_ports_resolve_for_inbound_and_opaque_only() {
    let spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(serde_json::json!({
        "containers": [{"name": "app", "ports": [{"name": "grpc", "containerPort": 8080}]}]
    }))
    .unwrap_or_default();
    let names = NamedPorts::from_spec(&spec);
    let pod = annotations(&[
        ("skip-inbound-ports", "grpc"),
        ("opaque-ports", "grpc,9000"),
    ]);
    let resolved = resolve(
        &pod,
        "shop",
        &BTreeMap::new(),
        &names,
        &InjectorConfig::default(),
    );
    let s = resolved.map(|r| r.settings).ok();
    assert_eq!(
        s.as_ref()
            .map(|s| s.skip_inbound_ports.value.to_string())
            .as_deref(),
        Some("8080")
    );
    assert_eq!(
        s.as_ref()
            .map(|s| s.opaque_ports.value.to_string())
            .as_deref(),
        Some("8080,9000")
    );

    let pod = annotations(&[("skip-outbound-ports", "grpc")]);
    let reason = resolve(
        &pod,
        "shop",
        &BTreeMap::new(),
        &names,
        &InjectorConfig::default(),
    )
    .err();
    assert!(
        matches!(reason, Some(SkipReason::MalformedOverride { ref annotation, .. })
        if annotation == "config.weft.dev/skip-outbound-ports")
    );
}

#[test]
fn every_malformed_value_skips_naming_annotation_value_and_expectation() {
    let cases: &[(&str, &str, &str)] = &[
        ("skip-inbound-ports", "8100-8000", "ends before it starts"),
        (
            "skip-inbound-ports",
            "http",
            "no TCP container port of the pod is named \"http\"",
        ),
        ("skip-outbound-ports", "0", "is not a port number"),
        ("skip-outbound-ports", "25,,26", "entry 2 is empty"),
        ("opaque-ports", "70000", "is not a port number"),
        ("proxy-cpu-request", "ten", "no number before the unit"),
        ("proxy-cpu-limit", "-1", "cannot be negative"),
        ("proxy-memory-request", "64MB", "unknown unit \"MB\""),
        ("proxy-memory-limit", "", "the quantity is empty"),
        (
            "proxy-log-level",
            "verbose",
            "\"verbose\" is not a log level",
        ),
        ("proxy-image", "a b", "whitespace"),
        ("native-sidecar", "yes", "not a boolean"),
    ];
    for (key, value, problem_part) in cases {
        for on_namespace in [false, true] {
            let pairs = [(*key, *value)];
            let reason = if on_namespace {
                skip(&[], &pairs)
            } else {
                skip(&pairs, &[])
            };
            let SkipReason::MalformedOverride {
                annotation,
                value: got,
                object,
                problem,
                expected,
            } = &reason
            else {
                panic!("{key}={value}: expected a malformed override, got {reason:?}");
            };
            assert_eq!(annotation, &format!("{CONFIG_PREFIX}{key}"));
            assert_eq!(got, value);
            let want = if on_namespace {
                Object::Namespace("shop".into())
            } else {
                Object::Pod
            };
            assert_eq!(object, &want);
            assert!(problem.contains(problem_part), "{key}={value}: {problem}");
            assert!(!expected.is_empty());
            let message = reason.to_string();
            assert!(
                message.contains(annotation) && message.contains(&format!("{value:?}")),
                "{message}"
            );
        }
    }
}

#[test]
fn request_above_a_user_limit_is_malformed() {
    let reason = skip(
        &[("proxy-cpu-request", "2")],
        &[("proxy-cpu-limit", "500m")],
    );
    assert_eq!(
        reason.to_string(),
        "annotation config.weft.dev/proxy-cpu-request on the pod is \"2\": the request is above the \
         limit 500m set by config.weft.dev/proxy-cpu-limit on namespace \"shop\"; expected a \
         Kubernetes quantity such as 100m or 0.5, a request no larger than its limit"
    );
    let reason = skip(
        &[
            ("proxy-memory-request", "1Gi"),
            ("proxy-memory-limit", "1000Mi"),
        ],
        &[],
    );
    assert_eq!(reason.code(), "malformed-override");
    // Equal is fine, whatever the spelling.
    let s = settings(
        &[
            ("proxy-memory-request", "1Gi"),
            ("proxy-memory-limit", "1024Mi"),
        ],
        &[],
    );
    assert_eq!(s.proxy_memory_request.value, q("1Gi"));
}

#[test]
fn a_limit_below_the_default_request_lowers_the_request() {
    let resolved = resolve_with(&[("proxy-memory-limit", "16Mi")], &[]).ok();
    let s = resolved.as_ref().map(|r| &r.settings);
    assert_eq!(
        s.map(|s| text(&s.proxy_memory_request)),
        Some((Some("16Mi"), Source::Adjusted))
    );
    assert_eq!(
        s.map(|s| text(&s.proxy_memory_limit)),
        Some((Some("16Mi"), Source::Pod))
    );
    let notes = resolved.map(|r| r.notes).unwrap_or_default();
    assert_eq!(
        notes,
        vec![
            "config.weft.dev/proxy-memory-limit on the pod: 16Mi".to_string(),
            "proxy memory request lowered to 16Mi to fit config.weft.dev/proxy-memory-limit"
                .to_string(),
        ]
    );
    let s = settings(&[("proxy-cpu-limit", "5m")], &[]);
    assert_eq!(text(&s.proxy_cpu_request), (Some("5m"), Source::Adjusted));
}

#[test]
fn a_request_above_the_default_limit_raises_the_limit() {
    let resolved = resolve_with(&[], &[("proxy-memory-request", "512Mi")]).ok();
    let s = resolved.as_ref().map(|r| &r.settings);
    assert_eq!(
        s.map(|s| text(&s.proxy_memory_limit)),
        Some((Some("512Mi"), Source::Adjusted))
    );
    assert_eq!(
        s.map(|s| text(&s.proxy_memory_request)),
        Some((Some("512Mi"), Source::Namespace))
    );
    let notes = resolved.map(|r| r.notes).unwrap_or_default();
    assert_eq!(
        notes.last().map(String::as_str),
        Some("proxy memory limit raised to 512Mi to fit config.weft.dev/proxy-memory-request")
    );
    // No default cpu limit: nothing to raise.
    let s = settings(&[("proxy-cpu-request", "4")], &[]);
    assert_eq!(text(&s.proxy_cpu_limit), (None, Source::Default));
}

#[test]
fn unknown_keys_warn_but_do_not_skip() {
    let resolved = resolve_with(&[("opaque-port", "25")], &[("proxy-cpu", "1")]);
    let warnings = resolved.map(|r| r.warnings).unwrap_or_default();
    assert_eq!(warnings.len(), 2);
    assert!(warnings[0].starts_with(
        "weft: annotation \"config.weft.dev/opaque-port\" on the pod is not a weft setting"
    ));
    assert!(warnings[0].contains("opaque-ports"));
    assert!(warnings[1].contains("on namespace \"shop\""));
}

#[test]
fn notes_show_each_override_and_its_origin() {
    let resolved = resolve_with(
        &[("opaque-ports", "6379,5432")],
        &[("native-sidecar", "false")],
    );
    assert_eq!(
        resolved.map(|r| r.notes).unwrap_or_default(),
        vec![
            "config.weft.dev/opaque-ports on the pod: 5432,6379".to_string(),
            "config.weft.dev/native-sidecar on namespace \"shop\": false".to_string(),
        ]
    );
}

#[test]
fn settings_serialize_with_their_sources() {
    let s = settings(&[("proxy-cpu-limit", "1")], &[]);
    let json = serde_json::to_value(&s).unwrap_or_default();
    assert_eq!(
        json["proxy_cpu_limit"],
        serde_json::json!({"value": "1", "source": "pod"})
    );
    assert_eq!(
        json["skip_inbound_ports"],
        serde_json::json!({"value": "", "source": "default"})
    );
}

fn resolve_with_anchors(pod: &[(&str, &str)], ns: &[(&str, &str)]) -> Result<Resolved, SkipReason> {
    resolve(
        &annotations(pod),
        "shop",
        &annotations(ns),
        &NamedPorts::default(),
        &InjectorConfig::default().with_trust_anchors("-----BEGIN CERTIFICATE-----"),
    )
}

#[test]
fn require_identity_is_read_from_pod_or_namespace() -> Result<(), SkipReason> {
    let unset = resolve_with_anchors(&[], &[])?.settings.require_identity;
    assert_eq!((unset.value, unset.source), (false, Source::Default));
    let from_ns = resolve_with_anchors(&[], &[("require-identity", "true")])?;
    let flag = &from_ns.settings.require_identity;
    assert_eq!((flag.value, flag.source), (true, Source::Namespace));
    assert_eq!(
        from_ns.notes,
        vec!["config.weft.dev/require-identity on namespace \"shop\": true".to_string()]
    );
    let pod_wins = resolve_with_anchors(
        &[("require-identity", "false")],
        &[("require-identity", "true")],
    )?;
    let flag = &pod_wins.settings.require_identity;
    assert_eq!((flag.value, flag.source), (false, Source::Pod));
    Ok(())
}

#[test]
fn require_identity_without_mesh_tls_or_as_garbage_skips_the_pod() {
    // The default config has no trust anchors: the proxy could not start.
    let reason = skip(&[("require-identity", "true")], &[]);
    assert!(reason.to_string().contains("trust anchors"), "{reason}");
    // "false" needs nothing.
    assert!(
        !settings(&[("require-identity", "false")], &[])
            .require_identity
            .value
    );
    let reason = resolve_with_anchors(&[("require-identity", "yes")], &[])
        .err()
        .map(|r| r.to_string())
        .unwrap_or_default();
    assert!(
        reason.contains("config.weft.dev/require-identity"),
        "{reason}"
    );
}

#[test]
fn an_unset_require_identity_stays_out_of_the_digest_input() -> Result<(), serde_json::Error> {
    let unset = serde_json::to_value(settings(&[], &[]))?;
    assert!(unset.get("require_identity").is_none());
    let set = serde_json::to_value(settings(&[("require-identity", "false")], &[]))?;
    assert_eq!(set["require_identity"]["source"], "pod");
    Ok(())
}
