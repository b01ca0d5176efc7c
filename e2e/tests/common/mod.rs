//! Shared set-up of the injection suites: a cluster with the real injector
//! registered, and small helpers to create objects and compare pods.

#![allow(dead_code)] // each suite uses its own subset of the helpers

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};
use serde_json::Value;
use weft_e2e::webhook::{self, FailurePolicy};
use weft_e2e::{Cluster, Injector, KubectlOutput, wait};

/// A Deployment with an init container, named ports and weft overrides in
/// its template; `NS` is replaced by the namespace.
pub const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: NS
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  strategy:
    # No node ever runs a pod, so the old ones never become unavailable:
    # surge the whole new ReplicaSet at once and keep the old pods.
    rollingUpdate: {maxSurge: 100%, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
      annotations:
        config.weft.dev/skip-outbound-ports: \"3306,5432\"
        config.weft.dev/opaque-ports: \"grpc\"
    spec:
      initContainers:
        - name: migrate
          image: registry.invalid/migrate:1
      containers:
        - name: web
          image: registry.invalid/web:1
          ports:
            - {name: http, containerPort: 8080}
            - {name: grpc, containerPort: 9090}
";

/// How long controllers get to converge.
pub const CONVERGE: Duration = Duration::from_secs(60);

/// A cluster with a running injector, registered and live. The injector is
/// declared first so it is dropped (stopped) before the cluster.
pub struct Env {
    /// The local injector process.
    pub injector: Injector,
    /// The local control plane.
    pub cluster: Cluster,
}

impl Env {
    /// Starts a cluster and an injector, and registers it with `policy`.
    pub async fn start(policy: FailurePolicy) -> Env {
        Self::start_with(policy, &[]).await
    }

    /// The same, with `injector_args` after the harness's own flags.
    pub async fn start_with(policy: FailurePolicy, injector_args: &[&str]) -> Env {
        let cluster = Cluster::start().await.expect("cluster starts");
        let injector = Injector::start(&cluster, injector_args)
            .await
            .expect("injector starts");
        webhook::install(&cluster, &injector, policy)
            .await
            .expect("webhook live");
        Env { injector, cluster }
    }

    /// Creates namespace `name` with `weft.dev/inject` set to `inject`.
    pub async fn namespace(&self, name: &str, inject: Option<&str>) {
        let annotations =
            inject.map(|v| BTreeMap::from([("weft.dev/inject".to_string(), v.to_string())]));
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                annotations,
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.cluster.client())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
    }

    /// `kubectl ARGS -f -` with `yaml` on stdin; panics with stderr on failure.
    pub async fn kubectl_stdin(&self, args: &[&str], yaml: &str) -> KubectlOutput {
        self.cluster
            .kubectl()
            .run_stdin(args, yaml)
            .await
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    }

    /// `kubectl ARGS`; panics with stderr on failure.
    pub async fn kubectl(&self, args: &[&str]) -> KubectlOutput {
        self.cluster
            .kubectl()
            .run(args)
            .await
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    }

    /// `kubectl create --dry-run=server -o json` of `yaml`: the object as
    /// the API server would store it, after every webhook; errors as text,
    /// for [`weft_e2e::wait::eventually`].
    pub async fn try_dry_run(&self, yaml: &str) -> Result<serde_json::Value, String> {
        let out = self
            .cluster
            .kubectl()
            .run_stdin(
                &["create", "--dry-run=server", "-o", "json", "-f", "-"],
                yaml,
            )
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_str(&out.stdout).map_err(|e| e.to_string())
    }

    /// The pod `namespace/name` as stored.
    pub async fn pod(&self, namespace: &str, name: &str) -> Pod {
        Api::<Pod>::namespaced(self.cluster.client(), namespace)
            .get(name)
            .await
            .expect("get pod")
    }

    /// Waits for `count` pods matching `selector` whose controller is the
    /// ReplicaSet accepted by `rs`, and returns them.
    pub async fn pods_owned(
        &self,
        namespace: &str,
        selector: &str,
        count: usize,
        rs: impl Fn(&str) -> bool,
    ) -> Vec<Pod> {
        let api: Api<Pod> = Api::namespaced(self.cluster.client(), namespace);
        let what = format!("{count} pods ({selector}) in {namespace}");
        let rs = &rs;
        wait::eventually(&what, CONVERGE, || {
            let api = api.clone();
            async move {
                let list = api
                    .list(&ListParams::default().labels(selector))
                    .await
                    .map_err(|e| e.to_string())?;
                let owned: Vec<Pod> = list
                    .items
                    .into_iter()
                    .filter(|p| controller(&p.metadata, "ReplicaSet").is_some_and(rs))
                    .collect();
                if owned.len() == count {
                    Ok(owned)
                } else {
                    Err(format!("{} pods", owned.len()))
                }
            }
        })
        .await
        .expect("pods")
    }
}

/// The name of the controller of `kind` that owns `meta`.
pub fn controller<'m>(meta: &'m ObjectMeta, kind: &str) -> Option<&'m str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == kind && o.controller == Some(true))
        .map(|o| o.name.as_str())
}

/// Whether the pod carries the weft proxy.
pub fn injected(pod: &Pod) -> bool {
    webhook::is_injected(pod)
}

/// The names of a pod's init containers and containers, in order.
pub fn container_names(pod: &Value) -> (Vec<String>, Vec<String>) {
    let names = |list: &Value| {
        list.as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    (
        names(&pod["spec"]["initContainers"]),
        names(&pod["spec"]["containers"]),
    )
}

/// Checks that every field of `expected` is in `actual` with the same value.
///
/// The API server defaults fields after a webhook's patch (image pull
/// policy, termination message path, ...) and its own admission plugins add
/// items (the service-account token volume and mounts), so the stored pod
/// may hold more than the planner wrote, never less or different. Lists of
/// named items (containers, volumes, env, ports, mounts) match by name, in
/// the same relative order; other lists match position by position.
pub fn contains(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().try_for_each(|(k, v)| match a.get(k) {
            Some(av) => contains(v, av, &format!("{path}/{k}")),
            None => Err(format!("{path}/{k} missing (expected {v})")),
        }),
        (Value::Array(e), Value::Array(a)) if is_named(e) && is_named(a) => {
            let mut last = None;
            e.iter().try_for_each(|item| {
                let name = &item["name"];
                let index = a
                    .iter()
                    .position(|x| &x["name"] == name)
                    .ok_or_else(|| format!("{path}: no item named {name}"))?;
                if last.is_some_and(|l| index < l) {
                    return Err(format!("{path}: {name} out of order"));
                }
                last = Some(index);
                contains(item, &a[index], &format!("{path}[{name}]"))
            })
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!("{path}: {} items, expected {}", a.len(), e.len()));
            }
            e.iter()
                .zip(a)
                .enumerate()
                .try_for_each(|(i, (ev, av))| contains(ev, av, &format!("{path}/{i}")))
        }
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{path}: {a}, expected {e}")),
    }
}

fn is_named(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| i["name"].is_string())
}

/// A pod manifest with one container, `annotations` and extra `spec` YAML.
pub fn pod_yaml(
    namespace: &str,
    name: &str,
    annotations: &[(&str, &str)],
    extra_spec: &str,
) -> String {
    let mut yaml =
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n");
    if !annotations.is_empty() {
        yaml.push_str("  annotations:\n");
        for (k, v) in annotations {
            yaml.push_str(&format!("    {k}: {v:?}\n"));
        }
    }
    yaml.push_str("spec:\n");
    yaml.push_str(extra_spec);
    yaml.push_str("  containers:\n    - name: app\n      image: registry.invalid/app:1\n");
    yaml
}

#[test]
fn contains_accepts_defaults_and_rejects_differences() {
    let expected =
        serde_json::json!({"spec": {"containers": [{"name": "b", "image": "x"}], "n": [1, 2]}});
    let actual = serde_json::json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "image": "x", "imagePullPolicy": "IfNotPresent"}], "n": [1, 2]}});
    assert_eq!(contains(&expected, &actual, ""), Ok(()));
    let wrong =
        serde_json::json!({"spec": {"containers": [{"name": "b", "image": "y"}], "n": [1, 2]}});
    assert!(contains(&expected, &wrong, "").is_err());
    let missing = serde_json::json!({"spec": {"containers": [{"name": "a"}], "n": [1, 2]}});
    assert!(contains(&expected, &missing, "").is_err());
}
