//! Unit tests of `plan`: the patch's shape for each layout of the pod, the
//! review annotations, skips, and `prefix_patch`.

use super::*;

fn enabled_ns() -> BTreeMap<String, String> {
    BTreeMap::from([(INJECT_ANNOTATION.to_string(), "enabled".to_string())])
}

fn plan_ok(pod: &Value) -> Plan {
    match plan(pod, "shop", &enabled_ns(), &InjectorConfig::default()) {
        Ok(plan) => plan,
        Err(e) => panic!("should plan: {e}"),
    }
}

fn paths(plan: &Plan) -> Vec<String> {
    plan.patch.iter().map(|op| op.path().to_string()).collect()
}

fn applied(pod: &Value, plan: &Plan) -> Value {
    let mut doc = pod.clone();
    if let Err(e) = json_patch::patch(&mut doc, &plan.patch) {
        panic!("patch should apply: {e}");
    }
    doc
}

fn bare_pod() -> Value {
    json!({"spec": {"containers": [{"name": "app", "image": "app:1"}]}})
}

#[test]
fn bare_pod_gets_whole_maps_and_lists() {
    let plan = plan_ok(&bare_pod());
    assert!(plan.is_injected());
    assert_eq!(
        paths(&plan),
        ["/metadata", "/spec/initContainers", "/spec/volumes"]
    );
    let pod = applied(&bare_pod(), &plan);
    assert_eq!(pod["spec"]["initContainers"][0]["name"], json!("weft-init"));
    assert_eq!(
        pod["spec"]["initContainers"][1]["name"],
        json!("weft-proxy")
    );
    assert_eq!(
        pod["metadata"]["labels"]["weft.dev/control-plane-ns"],
        json!("weft")
    );
    assert_eq!(
        pod["metadata"]["annotations"]["weft.dev/proxy-version"],
        json!(crate::config::PROXY_VERSION)
    );
}

#[test]
fn existing_maps_and_lists_are_extended_not_replaced() {
    let pod = json!({
        "metadata": {"name": "web", "annotations": {"team": "a"}, "labels": {"app": "web"}},
        "spec": {
            "initContainers": [{"name": "migrate", "image": "m:1"}],
            "containers": [{"name": "app", "image": "app:1"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    });
    let plan = plan_ok(&pod);
    assert_eq!(
        paths(&plan),
        [
            "/metadata/annotations/weft.dev~1proxy-version",
            "/metadata/annotations/weft.dev~1injected-by",
            "/metadata/annotations/weft.dev~1inject-digest",
            "/metadata/labels/weft.dev~1control-plane-ns",
            "/spec/initContainers/0",
            "/spec/initContainers/1",
            "/spec/volumes/-",
        ]
    );
    let patched = applied(&pod, &plan);
    let init: Vec<&str> = patched["spec"]["initContainers"]
        .as_array()
        .map(|l| l.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(init, ["weft-init", "weft-proxy", "migrate"]);
    assert_eq!(
        patched["spec"]["volumes"][1]["name"],
        json!("weft-identity-token")
    );
    assert_eq!(patched["metadata"]["annotations"]["team"], json!("a"));
}

#[test]
fn classic_mode_appends_init_and_puts_proxy_first() {
    let pod = json!({
        "metadata": {"annotations": {"config.weft.dev/native-sidecar": "false"}},
        "spec": {
            "initContainers": [{"name": "migrate", "image": "m:1"}],
            "containers": [{"name": "app", "image": "app:1"}],
        },
    });
    let plan = plan_ok(&pod);
    assert!(paths(&plan).ends_with(&[
        "/spec/initContainers/-".to_string(),
        "/spec/containers/0".to_string(),
        "/spec/volumes".to_string(),
    ]));
    let patched = applied(&pod, &plan);
    assert_eq!(
        patched["spec"]["initContainers"][1]["name"],
        json!("weft-init")
    );
    assert_eq!(
        patched["spec"]["containers"][0]["name"],
        json!("weft-proxy")
    );
    assert_eq!(patched["spec"]["containers"][1]["name"], json!("app"));
    assert_eq!(
        plan.audit.get("sidecar").map(String::as_str),
        Some("classic")
    );
}

#[test]
fn classic_mode_without_init_containers_adds_the_list() {
    let mut pod = bare_pod();
    pod["metadata"] = json!({"annotations": {"config.weft.dev/native-sidecar": "false"}});
    let plan = plan_ok(&pod);
    assert!(paths(&plan).contains(&"/spec/initContainers".to_string()));
    let patched = applied(&pod, &plan);
    assert_eq!(
        patched["spec"]["initContainers"],
        json!([init_container(
            plan.settings.as_ref().unwrap_or_else(|| unreachable!())
        )])
    );
}

#[test]
fn null_maps_and_lists_count_as_missing() {
    let pod = json!({
        "metadata": {"annotations": null, "labels": null},
        "spec": {"containers": [{"name": "app"}], "initContainers": null, "volumes": null},
    });
    let plan = plan_ok(&pod);
    assert_eq!(
        paths(&plan),
        [
            "/metadata/annotations",
            "/metadata/labels",
            "/spec/initContainers",
            "/spec/volumes"
        ]
    );
    assert!(json_patch::patch(&mut pod.clone(), &plan.patch).is_ok());
}

#[test]
fn keys_with_slash_and_tilde_are_escaped() {
    let config = InjectorConfig {
        control_plane_namespace: "weft".into(),
        ..InjectorConfig::default()
    };
    let pod = json!({"metadata": {"annotations": {"a/b~c": "x"}, "labels": {}}, "spec": {"containers": []}});
    let plan = match plan(&pod, "shop", &enabled_ns(), &config) {
        Ok(plan) => plan,
        Err(e) => panic!("{e}"),
    };
    let patched = applied(&pod, &plan);
    assert_eq!(patched["metadata"]["annotations"]["a/b~c"], json!("x"));
    assert_eq!(
        patched["metadata"]["labels"]["weft.dev/control-plane-ns"],
        json!("weft")
    );
    let encoded = PointerBuf::from_tokens(["metadata", "annotations", "a/b~c"].map(Token::new));
    assert_eq!(encoded.as_str(), "/metadata/annotations/a~1b~0c");
}

#[test]
fn preset_review_keys_are_kept_with_a_warning() {
    let pod = json!({
        "metadata": {
            "annotations": {"weft.dev/proxy-version": "v9", "weft.dev/injected-by": format!("weft-injector {}", crate::config::PROXY_VERSION)},
            "labels": {"weft.dev/control-plane-ns": "other"},
        },
        "spec": {"containers": [{"name": "app"}]},
    });
    let plan = plan_ok(&pod);
    assert!(!paths(&plan).iter().any(|p| p.ends_with("proxy-version")
        || p.ends_with("injected-by")
        || p.ends_with("control-plane-ns")));
    assert_eq!(
        plan.warnings,
        [
            "weft: annotation weft.dev/proxy-version was already set to \"v9\" before injection and is left as it is",
            "weft: label weft.dev/control-plane-ns was already set to \"other\" before injection and is left as it is",
        ]
    );
    let patched = applied(&pod, &plan);
    assert_eq!(
        patched["metadata"]["annotations"]["weft.dev/proxy-version"],
        json!("v9")
    );
}

#[test]
fn replanning_an_injected_pod_is_empty() {
    for native in ["true", "false"] {
        let mut pod = bare_pod();
        pod["metadata"] = json!({"annotations": {"config.weft.dev/native-sidecar": native}});
        let first = plan_ok(&pod);
        let second = plan_ok(&applied(&pod, &first));
        assert_eq!(second.decision, Decision::Skip(SkipReason::AlreadyInjected));
        assert!(second.patch.is_empty());
        assert!(second.warnings.is_empty());
    }
}

#[test]
fn skips_have_empty_patches_and_warn_only_when_asked_wrongly() {
    let mut pod = bare_pod();
    pod["spec"]["hostNetwork"] = json!(true);
    let host = plan_ok(&pod);
    assert_eq!(host.decision, Decision::Skip(SkipReason::HostNetwork));
    assert!(host.patch.is_empty() && host.warnings.is_empty());
    assert_eq!(
        host.audit.get("skip").map(String::as_str),
        Some("host-network")
    );
    assert_eq!(
        host.audit.get("injected").map(String::as_str),
        Some("false")
    );

    let mut pod = bare_pod();
    pod["metadata"] = json!({"annotations": {"config.weft.dev/proxy-cpu-limit": "lots", "config.weft.dev/typo": "1"}});
    let bad = plan_ok(&pod);
    assert!(bad.patch.is_empty());
    let reason = bad
        .decision
        .skip_reason()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert_eq!(bad.warnings[0], format!("weft: pod not injected: {reason}"));
    assert!(bad.warnings[1].contains("config.weft.dev/typo"));
}

#[test]
fn namespace_comes_from_the_argument_then_the_pod_then_default() {
    let config = InjectorConfig::default();
    let mut pod = bare_pod();
    pod["metadata"] = json!({"name": "p", "namespace": "kube-system"});
    let none = BTreeMap::new();
    let from_pod = plan(&pod, "", &none, &config).map(|p| p.decision).ok();
    assert_eq!(from_pod, Some(Decision::Skip(SkipReason::KubeSystem)));
    let from_arg = plan(&pod, "shop", &none, &config).map(|p| p.decision).ok();
    assert_eq!(from_arg, Some(Decision::Skip(SkipReason::NotEnabled)));
    let default = plan(&bare_pod(), "", &none, &config).map(|p| p.pod).ok();
    assert_eq!(default.as_deref(), Some("default/(unnamed)"));
}

#[test]
fn pod_names_for_reports() {
    assert_eq!(pod_label("ns", Some("web"), Some("web-")), "ns/web");
    assert_eq!(pod_label("ns", None, Some("web-7d9f-")), "ns/web-7d9f-*");
    assert_eq!(pod_label("ns", Some(""), None), "ns/(unnamed)");
}

#[test]
fn things_that_are_not_pods_are_errors() {
    let config = InjectorConfig::default();
    let none = BTreeMap::new();
    let err = |v: Value| {
        plan(&v, "shop", &none, &config)
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(
        err(json!([1])).as_deref(),
        Some("the object is not a valid Pod: expected a JSON object, got an array")
    );
    assert_eq!(
        err(json!("pod")).as_deref(),
        Some("the object is not a valid Pod: expected a JSON object, got a string")
    );
    assert!(err(json!({"kind": "Service", "spec": {}})).is_some_and(|e| e.contains("Service")));
    assert!(
        err(json!({"spec": {"containers": "app"}})).is_some_and(|e| e.contains("invalid type"))
    );
    assert_eq!(
        err(json!({"metadata": {}})).as_deref(),
        Some("the object is not a valid Pod: the pod has no spec")
    );
}

#[test]
fn uid_2102_in_the_app_is_a_warning() {
    let pod = json!({"spec": {
        "securityContext": {"runAsUser": 2102},
        "containers": [{"name": "app"}, {"name": "other", "securityContext": {"runAsUser": 1000}}],
    }});
    let plan = plan_ok(&pod);
    assert!(plan.is_injected());
    assert_eq!(
        plan.warnings,
        [
            "weft: container \"app\" runs as UID 2102, the proxy's own UID, so its traffic bypasses the proxy"
        ]
    );
}

#[test]
fn audit_summarises_the_injection() {
    let mut pod = bare_pod();
    pod["metadata"] = json!({"annotations": {"config.weft.dev/opaque-ports": "5432"}});
    let plan = plan_ok(&pod);
    let audit = &plan.audit;
    assert_eq!(audit.get("injected").map(String::as_str), Some("true"));
    assert_eq!(
        audit.get("reason").map(String::as_str),
        Some("namespace \"shop\" is annotated weft.dev/inject=enabled")
    );
    assert_eq!(
        audit.get("added").map(String::as_str),
        Some(
            "annotations: weft.dev/inject-digest, weft.dev/injected-by, weft.dev/proxy-version; \
             labels: weft.dev/control-plane-ns; initContainers: weft-init, weft-proxy; volumes: weft-identity-token"
        )
    );
    assert_eq!(
        audit.get("overrides").map(String::as_str),
        Some("opaque-ports=pod")
    );
    assert_eq!(audit.get("digest"), plan.digest.as_ref());
    assert!(
        audit
            .values()
            .all(|v| v.chars().count() <= crate::report::MAX_AUDIT_VALUE)
    );
}

#[test]
fn prefix_moves_every_path_under_a_template() {
    let plan = plan_ok(&bare_pod());
    let prefixed = prefix_patch(&plan.patch, "/spec/template");
    assert_eq!(prefixed.len(), plan.patch.len());
    assert!(
        prefixed
            .iter()
            .all(|op| op.path().as_str().starts_with("/spec/template/"))
    );
    let mut deployment = json!({"kind": "Deployment", "spec": {"template": bare_pod()}});
    assert!(json_patch::patch(&mut deployment, &prefixed).is_ok());
    assert_eq!(
        deployment["spec"]["template"]["spec"]["initContainers"][1]["name"],
        json!("weft-proxy")
    );

    let cron = prefix_patch(&plan.patch, "spec/jobTemplate/spec/template");
    assert_eq!(
        cron[0].path().as_str(),
        "/spec/jobTemplate/spec/template/metadata"
    );
    let root = prefix_patch(&plan.patch, "");
    assert_eq!(root, plan.patch);
}

#[test]
fn prefix_covers_from_paths_too() {
    let patch: Patch = serde_json::from_value(json!([
        {"op": "move", "from": "/a", "path": "/b"},
        {"op": "copy", "from": "/c", "path": "/d"},
        {"op": "remove", "path": "/e"},
    ]))
    .unwrap_or_default();
    let prefixed = serde_json::to_value(prefix_patch(&patch, "/x")).unwrap_or_default();
    assert_eq!(
        prefixed,
        json!([
            {"op": "move", "from": "/x/a", "path": "/x/b"},
            {"op": "copy", "from": "/x/c", "path": "/x/d"},
            {"op": "remove", "path": "/x/e"},
        ])
    );
}

#[test]
fn report_reads_well() {
    let plan = plan_ok(&bare_pod());
    let report = plan.report();
    assert!(
        report
            .starts_with("pod: shop/(unnamed)\ndecision: inject\nreasons:\n  - namespace \"shop\"")
    );
    assert!(report.contains("warnings: none\n"));
    assert!(report.contains("digest: sha256:"));
}
