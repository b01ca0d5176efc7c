//! The injection policy through the real API server: what is injected,
//! exactly as planned, and what never is. Each test has its own cluster and
//! `weft-injector`, registered through the rendered webhook configuration.

mod common;

use std::collections::BTreeMap;

use common::{DEPLOYMENT, Env, container_names, contains, controller, injected, pod_yaml};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::Api;
use serde_json::{Value, json};
use weft_core::InjectorConfig;
use weft_e2e::webhook::FailurePolicy;

/// 1. An annotated namespace: a Deployment's pods are injected exactly as
/// the pure planner plans them for the pod the ReplicaSet asked for.
#[tokio::test]
async fn deployment_pods_are_injected_as_the_planner_plans() {
    let env = Env::start(FailurePolicy::Ignore).await;
    env.namespace("meshed", Some("enabled")).await;
    env.kubectl_stdin(&["apply", "-f", "-"], &DEPLOYMENT.replace("NS", "meshed"))
        .await;
    let pods = env.pods_owned("meshed", "app=web", 2, |_| true).await;

    let rs_name = controller(&pods[0].metadata, "ReplicaSet").expect("owned by a ReplicaSet");
    let rs = Api::<ReplicaSet>::namespaced(env.cluster.client(), "meshed")
        .get(rs_name)
        .await
        .expect("replicaset");
    // What the ReplicaSet controller submits: its template as a pod.
    let template = serde_json::to_value(rs.spec.and_then(|s| s.template)).expect("template");
    let mut submitted = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": template["metadata"],
        "spec": template["spec"],
    });
    submitted["metadata"]["namespace"] = json!("meshed");
    submitted["metadata"]["generateName"] = json!(format!("{rs_name}-"));

    let ns_annotations = BTreeMap::from([("weft.dev/inject".to_string(), "enabled".to_string())]);
    let plan = weft_core::plan(
        &submitted,
        "meshed",
        &ns_annotations,
        &InjectorConfig::default(),
    )
    .expect("plan");
    assert!(plan.is_injected(), "{:?}", plan.reasons());
    let mut expected = submitted.clone();
    json_patch::patch(&mut expected, &plan.patch).expect("the planned patch applies");

    for pod in &pods {
        let stored = serde_json::to_value(pod).expect("pod json");
        if let Err(diff) = contains(&expected["spec"], &stored["spec"], "spec") {
            panic!(
                "stored pod differs from the plan: {diff}\nplanned: {}\nstored: {}",
                serde_json::to_string_pretty(&expected["spec"]).unwrap_or_default(),
                serde_json::to_string_pretty(&stored["spec"]).unwrap_or_default()
            );
        }
        // Exactly the planned containers, in the planned order.
        assert_eq!(container_names(&stored), container_names(&expected));
        // Every weft annotation and label is the planned one, digest included.
        for field in ["annotations", "labels"] {
            let planned = weft_keys(&expected["metadata"][field]);
            assert!(!planned.is_empty(), "the plan writes {field}");
            assert_eq!(weft_keys(&stored["metadata"][field]), planned, "{field}");
        }
        // Volumes: the planned ones plus only what ServiceAccount admission added.
        let extra: Vec<String> = names(&stored["spec"]["volumes"])
            .into_iter()
            .filter(|v| !names(&expected["spec"]["volumes"]).contains(v))
            .collect();
        assert!(
            extra.iter().all(|v| v.starts_with("kube-api-access-")),
            "unplanned volumes {extra:?}"
        );
    }
}

/// The `weft.dev/` and `config.weft.dev/` entries of a map.
fn weft_keys(map: &Value) -> BTreeMap<String, Value> {
    map.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("weft.dev/") || k.starts_with("config.weft.dev/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str().map(str::to_string))
        .collect()
}

/// 2. The pod's annotation wins over its namespace's, both ways.
#[tokio::test]
async fn the_pod_annotation_wins_over_the_namespace() {
    let env = Env::start(FailurePolicy::Ignore).await;
    env.namespace("enabled-ns", Some("enabled")).await;
    env.namespace("plain-ns", None).await;
    let opted_out = pod_yaml(
        "enabled-ns",
        "opted-out",
        &[("weft.dev/inject", "disabled")],
        "",
    );
    let opted_in = pod_yaml(
        "plain-ns",
        "opted-in",
        &[("weft.dev/inject", "enabled")],
        "",
    );
    let plain = pod_yaml("plain-ns", "plain", &[], "");
    for yaml in [&opted_out, &opted_in, &plain] {
        env.kubectl_stdin(&["create", "-f", "-"], yaml).await;
    }
    assert!(!injected(&env.pod("enabled-ns", "opted-out").await));
    assert!(injected(&env.pod("plain-ns", "opted-in").await));
    assert!(!injected(&env.pod("plain-ns", "plain").await));
}

/// 4. hostNetwork pods, and pods in `weft` and `kube-system`, are never
/// injected, even when everything about them says `enabled`.
#[tokio::test]
async fn host_network_and_system_namespaces_are_never_injected() {
    let env = Env::start(FailurePolicy::Ignore).await;
    env.namespace("enabled-ns", Some("enabled")).await;
    env.namespace("weft", Some("enabled")).await;
    env.kubectl(&[
        "annotate",
        "namespace",
        "kube-system",
        "weft.dev/inject=enabled",
    ])
    .await;
    let enabled = [("weft.dev/inject", "enabled")];
    let cases = [
        (
            "enabled-ns",
            "host",
            pod_yaml("enabled-ns", "host", &enabled, "  hostNetwork: true\n"),
        ),
        ("weft", "control", pod_yaml("weft", "control", &enabled, "")),
        (
            "kube-system",
            "system",
            pod_yaml("kube-system", "system", &enabled, ""),
        ),
        // The control: the same pod without hostNetwork is injected.
        (
            "enabled-ns",
            "guest",
            pod_yaml("enabled-ns", "guest", &enabled, ""),
        ),
    ];
    for (_, _, yaml) in &cases {
        env.kubectl_stdin(&["create", "-f", "-"], yaml).await;
    }
    for (ns, name, _) in &cases {
        let pod = env.pod(ns, name).await;
        assert_eq!(injected(&pod), *name == "guest", "{ns}/{name}");
    }
}

/// 8. An invalid weft annotation value: the pod is created as written, and
/// kubectl shows a warning that names the annotation and the value.
#[tokio::test]
async fn an_invalid_value_creates_the_pod_uninjected_with_a_warning() {
    let env = Env::start(FailurePolicy::Ignore).await;
    env.namespace("meshed", Some("enabled")).await;
    let yaml = pod_yaml(
        "meshed",
        "typo",
        &[("config.weft.dev/proxy-cpu-request", "lots")],
        "",
    );
    let out = env.kubectl_stdin(&["create", "-f", "-"], &yaml).await;
    assert!(
        !injected(&env.pod("meshed", "typo").await),
        "the pod is created uninjected"
    );
    assert!(
        out.stderr.contains("Warning:")
            && out.stderr.contains("config.weft.dev/proxy-cpu-request")
            && out.stderr.contains("lots"),
        "kubectl shows the warning: {}",
        out.stderr
    );
}
