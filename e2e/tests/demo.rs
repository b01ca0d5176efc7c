//! `make demo` end to end: the demo flow run against a fresh cluster folder
//! with its node, as `weft-e2e demo` runs it. weft is installed in the
//! cluster by `weft install | kubectl apply`, the restarted pods must reach
//! READY 2/2, the report must come from the real path — the pod the
//! controller created, the API server's audit record of our webhook's
//! answer and the patch it applied — and `down` must stop it all.

mod common;

use serde_json::Value;
use weft_e2e::demo::{self, Decision, DemoOptions};
use weft_e2e::process::alive;
use weft_e2e::{ports, state};

/// Stops whatever the demo left running in `dir`, even when the test fails:
/// the demo's processes are detached, so nothing else would.
struct Down(std::path::PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        if let Err(e) = state::down(&self.0) {
            eprintln!("weft-e2e demo test: cleaning up {}: {e}", self.0.display());
        }
    }
}

/// Whether `value` holds, at any depth, an object named `name`.
fn names(value: &Value, name: &str) -> bool {
    match value {
        Value::Object(map) => {
            map.get("name") == Some(&Value::from(name)) || map.values().any(|v| names(v, name))
        }
        Value::Array(items) => items.iter().any(|v| names(v, name)),
        _ => false,
    }
}

#[tokio::test]
async fn the_demo_injects_the_restarted_pods_and_reports_from_the_audit_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cluster");
    let _down = Down(dir.clone());
    let mut out = Vec::new();
    let outcome = demo::run(&DemoOptions::new(&dir), &mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let outcome = outcome.unwrap_or_else(|e| panic!("the demo failed: {e}\n{text}"));
    assert!(
        !outcome.reused_cluster,
        "a fresh folder gets a fresh cluster"
    );

    // Every Deployment of emojivoto got a new, injected, running pod.
    let mut deployments: Vec<&str> = outcome
        .new_pods
        .iter()
        .map(|n| n.deployment.as_str())
        .collect();
    deployments.sort_unstable();
    assert_eq!(
        deployments,
        ["emoji", "vote-bot", "voting", "web"],
        "{text}"
    );
    for n in &outcome.new_pods {
        assert!(n.injected, "{} was not injected:\n{text}", n.pod);
    }
    // `kubectl get pods`: every pod READY 2/2 and Running.
    let rows: Vec<&str> = outcome.pods_table.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{}", outcome.pods_table);
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.get(1..3), Some(&["2/2", "Running"][..]), "{row}");
    }
    assert!(
        text.contains(outcome.pods_table.lines().next().unwrap_or("NAME")),
        "{text}"
    );

    // The report names the injected containers, as the pod was stored.
    let report = &outcome.report;
    assert_eq!(report.decision, Decision::Injected);
    let init: Vec<&str> = report
        .init_containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(init, ["weft-init", "weft-proxy"]);
    let apps: Vec<&str> = report.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(apps, ["web-svc"]);
    assert!(text.contains("decision     injected"), "{text}");
    assert!(
        text.contains("weft-init    runs `weft-proxy init --proxy-uid=2102"),
        "{text}"
    );
    assert!(
        text.contains("weft-proxy   runs `weft-proxy run`") && text.contains("native sidecar"),
        "{text}"
    );
    assert!(
        text.contains("why          namespace \"emojivoto\" is annotated weft.dev/inject=enabled"),
        "{text}"
    );
    assert_eq!(
        report.audit(&outcome.webhook, "injected"),
        Some("true"),
        "the webhook's own audit annotation"
    );
    let digest = report
        .pod_annotations
        .get("weft.dev/inject-digest")
        .expect("digest on the pod");
    assert_eq!(
        report.audit(&outcome.webhook, "digest"),
        Some(digest.as_str())
    );

    // The patch is the API server's record: a JSON patch of `add`s that
    // carries weft-proxy and, applied to the pod as the ReplicaSet asked for
    // it, gives the injected containers.
    let patch = report
        .patch
        .as_ref()
        .expect("the audit log records the patch");
    assert!(
        patch
            .key
            .starts_with("patch.webhook.admission.k8s.io/round_0_"),
        "{}",
        patch.key
    );
    let ops = patch
        .operations
        .as_array()
        .expect("a JSON patch is an array");
    assert!(!ops.is_empty());
    for op in ops {
        assert_eq!(op["op"], "add", "{op}");
        assert!(
            op["path"].as_str().is_some_and(|p| p.starts_with('/')),
            "{op}"
        );
    }
    assert!(
        ops.iter().any(|op| names(&op["value"], "weft-proxy")),
        "{}",
        patch.operations
    );
    // The webhook's input was the request after the API server's own
    // admission plugins (which add the token volume), so the recorded patch
    // is checked against the stored pod: everything it adds is there, with
    // the API server's defaults on top.
    serde_json::from_value::<json_patch::Patch>(patch.operations.clone())
        .expect("an RFC 6902 patch");
    assert!(
        !names(&outcome.requested_pod["spec"], "weft-proxy"),
        "the ReplicaSet asked for no proxy"
    );
    for op in ops {
        let path = op["path"].as_str().unwrap_or_default();
        let (parent, last) = path.rsplit_once('/').expect("a JSON pointer");
        let stored = &outcome.stored_pod;
        let found = if last == "-" {
            let list = stored.pointer(parent).and_then(Value::as_array);
            list.is_some_and(|items| {
                items
                    .iter()
                    .any(|item| common::contains(&op["value"], item, path).is_ok())
            })
        } else {
            stored
                .pointer(path)
                .is_some_and(|v| common::contains(&op["value"], v, path).is_ok())
        };
        assert!(found, "the stored pod lacks {op}");
    }
    // The printed patch is that patch.
    let pretty = serde_json::to_string_pretty(&patch.operations).expect("json");
    assert!(text.contains(&pretty), "the patch is printed:\n{text}");

    // The way out is printed, and works.
    let kubeconfig = dir.canonicalize().expect("dir").join("kubeconfig");
    assert!(
        text.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{text}"
    );
    assert!(
        text.contains("make cluster-down E2E_CLUSTER_DIR="),
        "{text}"
    );
    assert!(
        text.contains("weft install --registry localhost/weft"),
        "{text}"
    );
    assert!(
        outcome.state.injector.is_none(),
        "no local injector any more"
    );

    assert!(
        state::down(&dir).expect("down"),
        "there was a cluster to stop"
    );
    for port in &outcome.state.ports {
        assert!(!ports::listening(*port), "port {port} still listening");
    }
    for c in &outcome.state.components {
        assert!(!alive(c.pid), "{} survived down", c.name);
    }
    assert!(
        weft_e2e::node::host::leftover_chains().is_empty(),
        "down left iptables chains"
    );
    assert!(!weft_e2e::node::host::link_exists(
        weft_e2e::node::config::BRIDGE
    ));
}
