//! Kubernetes Events from the injector, through the real API server: a
//! Deployment's injected pods make one `Injected` Event with a count on their
//! ReplicaSet, a malformed override makes an `InjectionSkipped` warning, and
//! dry runs and pods that are simply not enabled make none.
//!
//! The injector runs as the `weft-injector` ServiceAccount with the RBAC
//! that `weft install` renders (not as the cluster admin the other suites
//! use), so these tests also prove that RBAC is enough, and no more than the
//! Events need is granted.

mod common;

use std::path::Path;

use common::{CONVERGE, DEPLOYMENT, Env, container_names, controller};
use serde_json::{Value, json};
use tempfile::TempDir;
use weft_e2e::webhook::{self, FailurePolicy};
use weft_e2e::{Cluster, Injector, wait};
use weft_webhook_config::{RenderOptions, Tls};

/// The injector's `reportingController`, as `kubectl` shows it in `From`.
const REPORTER: &str = "weft-injector";

/// A cluster and an injector authenticated as the `weft-injector`
/// ServiceAccount, registered and live. The TempDir holds its kubeconfig.
async fn start_as_service_account() -> (Env, TempDir) {
    let cluster = Cluster::start().await.expect("cluster starts");
    let kubeconfig = service_account_kubeconfig(&cluster).await;
    let flag = format!(
        "--kubeconfig={}",
        kubeconfig.path().join("config").display()
    );
    // The injector takes the last --kubeconfig: ours, after the harness's admin one.
    let injector = Injector::start(&cluster, &[&flag])
        .await
        .expect("injector starts as its ServiceAccount");
    webhook::install(&cluster, &injector, FailurePolicy::Ignore)
        .await
        .expect("webhook live");
    (Env { injector, cluster }, kubeconfig)
}

/// Applies the rendered namespace, ServiceAccount and RBAC of the injector
/// and writes a kubeconfig (`<dir>/config`) with a token of that account.
async fn service_account_kubeconfig(cluster: &Cluster) -> TempDir {
    let documents = weft_webhook_config::render_documents(&RenderOptions::new(Tls::CertManager))
        .expect("render");
    let wanted = [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    let mut applied = 0;
    for document in documents {
        let object = serde_json::to_value(&document).expect("json");
        let kind = object["kind"].as_str().unwrap_or_default();
        if wanted.contains(&kind) && object["metadata"]["name"] != "weft-control" {
            webhook::apply(cluster, &object).await.expect("apply");
            applied += 1;
        }
    }
    assert_eq!(applied, wanted.len(), "the injector's RBAC is rendered");

    let token = cluster
        .kubectl()
        .run(&[
            "create",
            "token",
            "weft-injector",
            "-n",
            "weft",
            "--duration=2h",
        ])
        .await
        .expect("a token for the ServiceAccount")
        .stdout;
    let dir = tempfile::tempdir().expect("tempdir");
    write_token_kubeconfig(
        &dir.path().join("config"),
        cluster.server(),
        cluster.ca_cert(),
        token.trim(),
    );
    dir
}

fn write_token_kubeconfig(path: &Path, server: &str, ca: &Path, token: &str) {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": "weft-injector", "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "weft-injector"}}],
        "current-context": "e2e",
    });
    std::fs::write(path, serde_yaml::to_string(&config).expect("yaml")).expect("write kubeconfig");
}

/// The Events weft's injector reported, in every namespace, as `kubectl get
/// events` shows them (core/v1 view).
async fn weft_events(env: &Env) -> Result<Vec<Value>, String> {
    let out = env
        .cluster
        .kubectl()
        .run(&["get", "events", "--all-namespaces", "-o", "json"])
        .await
        .map_err(|e| e.to_string())?;
    let list: Value = serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reportingComponent"] == REPORTER)
        .cloned()
        .collect())
}

/// Waits for weft's Event with `reason` about the ReplicaSet `rs` in
/// `namespace` for which `done` holds.
async fn event_on(
    env: &Env,
    namespace: &str,
    rs: &str,
    reason: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let what = format!("a {reason} event on replicaset {namespace}/{rs}");
    let done = &done;
    wait::eventually(&what, CONVERGE, || async move {
        let events = weft_events(env).await?;
        let found: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["involvedObject"]["kind"] == "ReplicaSet"
                    && e["involvedObject"]["namespace"] == namespace
                    && e["involvedObject"]["name"] == rs
                    && e["reason"] == reason
            })
            .collect();
        match found.as_slice() {
            [one] if done(one) => Ok((*one).clone()),
            [one] => Err(format!("not yet: {one}")),
            [] => Err(format!("none among {} weft events", events.len())),
            many => Err(format!("{} events, expected one", many.len())),
        }
    })
    .await
    .expect("event")
}

fn series_count(event: &Value) -> u64 {
    event["series"]["count"].as_u64().unwrap_or(1)
}

/// Five injected pods of one ReplicaSet: one Normal `Injected` Event on the
/// ReplicaSet counting five, shown by `kubectl describe`.
#[tokio::test]
async fn injected_pods_make_one_counted_event_on_their_replicaset() {
    let (env, _kubeconfig) = start_as_service_account().await;
    env.namespace("shop", Some("enabled")).await;
    let deployment = DEPLOYMENT
        .replace("NS", "shop")
        .replace("replicas: 2", "replicas: 5");
    env.kubectl_stdin(&["apply", "-f", "-"], &deployment).await;
    let pods = env.pods_owned("shop", "app=web", 5, |_| true).await;
    assert!(pods.iter().all(common::injected), "every pod is injected");
    let rs = controller(&pods[0].metadata, "ReplicaSet")
        .expect("owned by a ReplicaSet")
        .to_string();

    let event = event_on(&env, "shop", &rs, "Injected", |e| series_count(e) == 5).await;
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["action"], "Inject");
    assert_eq!(event["involvedObject"]["apiVersion"], "apps/v1");
    assert!(
        event["involvedObject"]["uid"]
            .as_str()
            .is_some_and(|uid| !uid.is_empty()),
        "{event}"
    );
    let message = event["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Added the weft proxy (native sidecar) to a new pod: namespace \"shop\" is annotated weft.dev/inject=enabled."),
        "{message}"
    );
    assert!(
        message.contains("initContainers: weft-init, weft-proxy"),
        "{message}"
    );
    assert!(
        message.contains("Overrides: skip-outbound-ports=pod, opaque-ports=pod"),
        "{message}"
    );

    // What an operator runs: the Event is on the ReplicaSet, from weft, x5.
    let described = env
        .kubectl(&["describe", "replicaset", "-n", "shop", &rs])
        .await;
    let line = described
        .stdout
        .lines()
        .find(|l| l.contains("Injected"))
        .unwrap_or_else(|| panic!("no Injected event in\n{}", described.stdout));
    assert!(line.contains("Normal") && line.contains(REPORTER), "{line}");
    assert!(line.contains("(x5 over"), "{line}");

    let metrics = env.injector.metrics().await.expect("metrics");
    assert!(
        metrics.contains("weft_injector_events_total{result=\"published\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weft_injector_events_total{result=\"dropped\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weft_injector_events_total{result=\"failed\"} 0"),
        "{metrics}"
    );
}

/// A dry run and a namespace that is not enabled leave no Event; a malformed
/// override leaves a Warning. The injector publishes Events one at a time in
/// the order it answered, so once the warning (last) is there, an Event from
/// the earlier requests would be there too.
#[tokio::test]
async fn dry_runs_and_plain_skips_make_no_event_and_bad_overrides_warn() {
    let (env, _kubeconfig) = start_as_service_account().await;
    env.namespace("shop", Some("enabled")).await;
    env.namespace("plain", None).await;

    // A ReplicaSet that makes no pods, to own the dry-run pod.
    env.kubectl_stdin(&["apply", "-f", "-"], OWNER_RS).await;
    let owner = env
        .kubectl(&["get", "replicaset", "-n", "shop", "owner", "-o", "json"])
        .await;
    let owner: Value = serde_json::from_str(&owner.stdout).expect("replicaset json");
    let uid = owner["metadata"]["uid"].as_str().expect("uid");
    let dry = env
        .kubectl_stdin(
            &["create", "--dry-run=server", "-o", "json", "-f", "-"],
            &OWNED_POD.replace("UID", uid),
        )
        .await;
    let dry: Value = serde_json::from_str(&dry.stdout).expect("pod json");
    let (init, _) = container_names(&dry);
    assert!(
        init.iter().any(|c| c == "weft-proxy"),
        "the dry run was injected: {init:?}"
    );

    // Not enabled: created, not injected, no Event.
    env.kubectl_stdin(&["apply", "-f", "-"], &DEPLOYMENT.replace("NS", "plain"))
        .await;
    let plain = env.pods_owned("plain", "app=web", 2, |_| true).await;
    assert!(!plain.iter().any(common::injected));

    // Last: a malformed override, which is a Warning on its ReplicaSet.
    let bad = DEPLOYMENT.replace("NS", "shop").replace(
        "config.weft.dev/opaque-ports: \"grpc\"",
        "config.weft.dev/opaque-ports: \"grpc\"\n        config.weft.dev/proxy-cpu-request: lots",
    );
    assert!(
        bad.contains("proxy-cpu-request"),
        "the override is in place"
    );
    env.kubectl_stdin(&["apply", "-f", "-"], &bad).await;
    let pods = env.pods_owned("shop", "app=web", 2, |_| true).await;
    assert!(!pods.iter().any(common::injected));
    let rs = controller(&pods[0].metadata, "ReplicaSet").expect("owned by a ReplicaSet");
    let warning = event_on(&env, "shop", rs, "InjectionSkipped", |e| {
        series_count(e) == 2
    })
    .await;
    assert_eq!(warning["type"], "Warning");
    let message = warning["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Did not add the weft proxy to a new pod: annotation config.weft.dev/proxy-cpu-request on the pod is \"lots\""),
        "{message}"
    );

    let events = weft_events(&env).await.expect("events");
    assert_eq!(
        events.len(),
        1,
        "only the warning; no Event for the dry run or the plain namespace: {events:#?}"
    );
}

/// A ReplicaSet with no replicas in `shop`.
const OWNER_RS: &str = "\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: owner
  namespace: shop
spec:
  replicas: 0
  selector:
    matchLabels: {app: owner}
  template:
    metadata:
      labels: {app: owner}
    spec:
      containers:
        - name: app
          image: registry.invalid/app:1
";

/// A pod controlled by the ReplicaSet `owner` (its uid replaces `UID`).
const OWNED_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  generateName: owner-
  namespace: shop
  labels: {app: other}
  ownerReferences:
    - {apiVersion: apps/v1, kind: ReplicaSet, name: owner, uid: UID, controller: true}
spec:
  containers:
    - name: app
      image: registry.invalid/app:1
";

/// `--events=false`: pods are injected as usual and nothing is recorded.
/// With Events on, the injected pods' Event is posted within milliseconds
/// (the test above waits for it), so five quiet seconds after the pods
/// exist mean none was queued.
#[tokio::test]
async fn events_off_injects_and_records_nothing() {
    let cluster = Cluster::start().await.expect("cluster starts");
    let injector = Injector::start(&cluster, &["--events=false"])
        .await
        .expect("injector starts");
    webhook::install(&cluster, &injector, FailurePolicy::Ignore)
        .await
        .expect("webhook live");
    let env = Env { injector, cluster };
    env.namespace("quiet", Some("enabled")).await;
    env.kubectl_stdin(&["apply", "-f", "-"], &DEPLOYMENT.replace("NS", "quiet"))
        .await;
    let pods = env.pods_owned("quiet", "app=web", 2, |_| true).await;
    assert!(pods.iter().all(common::injected), "injected as usual");

    let quiet = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while tokio::time::Instant::now() < quiet {
        let events = weft_events(&env).await.expect("events");
        assert!(
            events.is_empty(),
            "an Event with --events=false: {events:#?}"
        );
        let metrics = env.injector.metrics().await.expect("metrics");
        let posted: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("weft_injector_events_total{") && !l.ends_with(" 0"))
            .collect();
        assert!(posted.is_empty(), "events counted: {posted:?}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
