//! Destination against a real API server (the weft-e2e cluster): the
//! watch caches see Deployments' pods, the answers carry the identity and
//! the workload labels, opaque and skipped ports follow the annotations,
//! and a watch hears about annotation changes, IP changes and deletions.
//! A CronJob's pod is labelled with the CronJob, through its Job. A
//! Service's ClusterIP answers with the ready endpoints of its
//! EndpointSlices, and its watch hears the slices change.
//!
//! The cluster has no node, so pods stay Pending without an IP; the test
//! gives them IPs through the status subresource, as a kubelet would. The
//! Service has no selector, so the test writes its EndpointSlice itself, as
//! the endpointslice controller would for a Service with ready pods.

mod destination_support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use weft_control::destination::{self, Config, Metrics, metrics::LookupResult};
use weft_e2e::{Cluster, Kubectl, wait};

use destination_support::{Server, endpoint_slice, service};

const CONVERGE: Duration = Duration::from_secs(60);

const NAMESPACE: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations:
    config.weft.dev/skip-inbound-ports: \"25\"
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
  namespace: shop
";

/// A meshed Deployment (the proxy written into the template by hand, as
/// the injector would) and an unmeshed one.
const WORKLOADS: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations:
        config.weft.dev/opaque-ports: \"mysql\"
    spec:
      serviceAccountName: web
      containers:
        - name: app
          image: registry.invalid/web:1
          ports:
            - {name: http, containerPort: 8080}
            - {name: mysql, containerPort: 3306}
        - name: weft-proxy
          image: registry.invalid/weft-proxy:1
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: legacy
  namespace: shop
spec:
  replicas: 1
  selector:
    matchLabels: {app: legacy}
  template:
    metadata:
      labels: {app: legacy}
    spec:
      containers:
        - name: app
          image: registry.invalid/legacy:1
";

const CRON_JOB: &str = "\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: backup
  namespace: shop
spec:
  schedule: \"0 3 * * *\"
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: backup
              image: registry.invalid/backup:1
";

/// A Job controlled by the CronJob whose uid is `owner`.
fn job(owner: &str) -> String {
    format!(
        "\
apiVersion: batch/v1
kind: Job
metadata:
  name: backup-1
  namespace: shop
  ownerReferences:
    - {{apiVersion: batch/v1, kind: CronJob, name: backup, uid: {owner}, controller: true}}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: backup
          image: registry.invalid/backup:1
"
    )
}

/// A meshed pod controlled by the Job whose uid is `owner`.
fn job_pod(owner: &str) -> String {
    format!(
        "\
apiVersion: v1
kind: Pod
metadata:
  name: backup-1-x
  namespace: shop
  ownerReferences:
    - {{apiVersion: batch/v1, kind: Job, name: backup-1, uid: {owner}, controller: true}}
spec:
  restartPolicy: Never
  containers:
    - name: backup
      image: registry.invalid/backup:1
    - name: weft-proxy
      image: registry.invalid/weft-proxy:1
"
    )
}

async fn uid_of(kubectl: &Kubectl, kind: &str, name: &str) -> String {
    let out = kubectl
        .run(&[
            "get",
            kind,
            name,
            "-n",
            "shop",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .await
        .expect("get uid");
    let uid = out.stdout.trim().to_string();
    assert!(!uid.is_empty(), "{kind}/{name} has a uid");
    uid
}

/// The names of the pods labelled `app=APP`, sorted, once there are `count`.
async fn pods_of(cluster: &Cluster, app: &str, count: usize) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "shop");
    wait::eventually(&format!("{count} pods of {app}"), CONVERGE, || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await
                .map_err(|e| e.to_string())?;
            let mut names: Vec<String> = list
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter_map(|p| p.metadata.name)
                .collect();
            names.sort();
            if names.len() == count {
                Ok(names)
            } else {
                Err(format!("{} pods", names.len()))
            }
        }
    })
    .await
    .expect("the deployment controller creates the pods")
}

/// Sets a pod's IP the way a kubelet reports it.
async fn set_ip(kubectl: &Kubectl, pod: &str, ip: &str) {
    let patch = json!({"status": {"podIP": ip, "podIPs": [{"ip": ip}]}}).to_string();
    kubectl
        .run(&[
            "patch",
            "pod",
            pod,
            "-n",
            "shop",
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ])
        .await
        .expect("patch the pod status");
}

/// Resolves `addr` until `check` accepts the answer (the cache follows the
/// API server a moment later).
async fn resolve_until(
    client: &destination_support::Client,
    addr: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = client.resolve(addr).await;
        if check(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{addr}: never {what}; last answer {last}");
}

#[tokio::test]
async fn answers_and_watches_follow_the_cluster() {
    let cluster = Cluster::start().await.expect("cluster starts");
    let kubectl = cluster.kubectl();
    kubectl
        .run_stdin(&["apply", "-f", "-"], NAMESPACE)
        .await
        .expect("namespace and service account");
    kubectl
        .run_stdin(&["apply", "-f", "-"], WORKLOADS)
        .await
        .expect("deployments");
    let web = pods_of(&cluster, "web", 2).await;
    let legacy = pods_of(&cluster, "legacy", 1).await;
    set_ip(&kubectl, &web[0], "10.244.0.10").await;
    set_ip(&kubectl, &web[1], "10.244.0.11").await;
    set_ip(&kubectl, &legacy[0], "10.244.0.20").await;

    let metrics = Metrics::new();
    let state = destination::start(cluster.client(), Config::default(), metrics.clone());
    let server = Server::start(state.clone()).await;
    let client = server.client();
    wait::eventually("destination caches synced", CONVERGE, || {
        let ready = state.is_ready();
        async move {
            if ready {
                Ok(())
            } else {
                Err("not ready".to_string())
            }
        }
    })
    .await
    .expect("destination syncs");

    // A meshed pod: identity from its ServiceAccount, the Deployment (not
    // the ReplicaSet) as workload, opaque ports from the pod's annotation
    // (a port name), skipped inbound ports from the namespace's.
    let answer = resolve_until(&client, "10.244.0.10:8080", "meshed", |a| {
        a["meshed"] == true
    })
    .await;
    assert_eq!(
        answer,
        json!({
            "addr": "10.244.0.10:8080",
            "meshed": true,
            "identity": "spiffe://cluster.local/ns/shop/sa/web",
            "opaque": false,
            "proxy_port": 4143,
            "labels": {
                "dst_deployment": "web",
                "dst_namespace": "shop",
                "dst_pod": web[0],
                "dst_serviceaccount": "web",
            },
        })
    );
    assert_eq!(client.resolve("10.244.0.11:3306").await["opaque"], true);
    assert_eq!(
        client.resolve("10.244.0.11:3306").await["labels"]["dst_pod"],
        web[1]
    );
    let skipped = client.resolve("10.244.0.11:25").await;
    assert_eq!(skipped["meshed"], false, "{skipped}");
    assert_eq!(skipped.get("identity"), None);

    // An unmeshed pod: no identity, but its labels for metrics.
    assert_eq!(
        client.resolve("10.244.0.20:80").await,
        json!({
            "addr": "10.244.0.20:80",
            "meshed": false,
            "opaque": false,
            "labels": {
                "dst_deployment": "legacy",
                "dst_namespace": "shop",
                "dst_pod": legacy[0],
                "dst_serviceaccount": "default",
            },
        })
    );
    assert_eq!(
        client.resolve("10.244.0.99:80").await,
        json!({"addr": "10.244.0.99:80", "meshed": false})
    );

    // A watch hears an annotation change, then the pod's IP moving away.
    let mut first = client.watch("addr=10.244.0.10:8080").await;
    assert_eq!(first.update().await["meshed"], true);
    kubectl
        .run(&[
            "annotate",
            "pod",
            &web[0],
            "-n",
            "shop",
            "--overwrite",
            "config.weft.dev/opaque-ports=8080",
        ])
        .await
        .expect("annotate");
    let line = first.update().await;
    assert_eq!(
        (&line["meshed"], &line["opaque"]),
        (&json!(true), &json!(true)),
        "{line}"
    );
    set_ip(&kubectl, &web[0], "10.244.0.12").await;
    assert_eq!(
        first.update().await,
        json!({"addr": "10.244.0.10:8080", "meshed": false})
    );
    let moved = client.resolve("10.244.0.12:8080").await;
    assert_eq!(moved["labels"]["dst_pod"], web[0]);

    // A watch hears its pod's deletion.
    let mut second = client.watch("addr=10.244.0.11:8080").await;
    assert_eq!(second.update().await["labels"]["dst_pod"], web[1]);
    kubectl
        .run(&["delete", "pod", &web[1], "-n", "shop", "--wait=false"])
        .await
        .expect("delete pod");
    assert_eq!(
        second.update().await,
        json!({"addr": "10.244.0.11:8080", "meshed": false})
    );

    // A pod of a Job of a CronJob counts under the CronJob: the Job's own
    // controller comes from the Job watch. (No job controller runs here, so
    // the test creates the Job and its pod itself.)
    kubectl
        .run_stdin(&["apply", "-f", "-"], CRON_JOB)
        .await
        .expect("cron job");
    let cron_uid = uid_of(&kubectl, "cronjob", "backup").await;
    kubectl
        .run_stdin(&["apply", "-f", "-"], &job(&cron_uid))
        .await
        .expect("job");
    let job_uid = uid_of(&kubectl, "job", "backup-1").await;
    kubectl
        .run_stdin(&["apply", "-f", "-"], &job_pod(&job_uid))
        .await
        .expect("job pod");
    set_ip(&kubectl, "backup-1-x", "10.244.0.30").await;
    let answer = resolve_until(&client, "10.244.0.30:80", "under its cron job", |a| {
        a["labels"]["dst_cronjob"] == "backup"
    })
    .await;
    assert_eq!(answer["meshed"], true);
    assert_eq!(answer["labels"].get("dst_job"), None, "{answer}");

    assert!(metrics.lookups(LookupResult::Meshed) >= 3);
    assert!(metrics.lookups(LookupResult::Unmeshed) >= 3);
    let (pods, endpoints) = state.cache().size();
    // web (2, one replaced by a pod without an IP), legacy, the job's pod.
    assert_eq!(endpoints, 3, "{pods} pods indexed");
    server.stop().await;
}

/// A meshed pod (the proxy written in by hand) for the Service's endpoint.
const WEB_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: shop
spec:
  serviceAccountName: web
  containers:
    - name: app
      image: registry.invalid/web:1
      ports:
        - {name: http, containerPort: 8080}
    - name: weft-proxy
      image: registry.invalid/weft-proxy:1
";

#[tokio::test]
async fn a_cluster_ip_answers_with_its_endpoint_slices() {
    let cluster = Cluster::start().await.expect("cluster starts");
    let kubectl = cluster.kubectl();
    kubectl
        .run_stdin(&["apply", "-f", "-"], NAMESPACE)
        .await
        .expect("namespace and service account");
    kubectl
        .run_stdin(&["apply", "-f", "-"], WEB_POD)
        .await
        .expect("pod");
    set_ip(&kubectl, "web-1", "10.244.0.10").await;
    let services: Api<Service> = Api::namespaced(cluster.client(), "shop");
    let created = services
        .create(&PostParams::default(), &service("shop", "web-svc", None))
        .await
        .expect("create the service");
    let cluster_ip = created
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("the API server gives the service a ClusterIP");
    let slices: Api<EndpointSlice> = Api::namespaced(cluster.client(), "shop");
    slices
        .create(
            &PostParams::default(),
            &endpoint_slice(
                "shop",
                "web-svc-1",
                "web-svc",
                &[("10.244.0.10", true), ("10.244.0.11", false)],
            ),
        )
        .await
        .expect("create the endpoint slice");

    let metrics = Metrics::new();
    let state = destination::start(cluster.client(), Config::default(), metrics.clone());
    let server = Server::start(state.clone()).await;
    let client = server.client();
    wait::eventually("destination caches synced", CONVERGE, || {
        let ready = state.is_ready();
        async move {
            if ready {
                Ok(())
            } else {
                Err("not ready".to_string())
            }
        }
    })
    .await
    .expect("destination syncs");

    // Everything was created before the first lists, so the first line is
    // already the whole answer: the unready endpoint is left out.
    let addr = format!("{cluster_ip}:80");
    let mut watch = client.watch(&format!("addr={addr}")).await;
    assert_eq!(
        watch.update().await,
        json!({
            "addr": addr,
            "meshed": false,
            "service": {"name": "web-svc", "namespace": "shop"},
            "labels": {"dst_namespace": "shop", "dst_service": "web-svc"},
            "endpoints": [{
                "addr": "10.244.0.10:8080",
                "meshed": true,
                "identity": "spiffe://cluster.local/ns/shop/sa/web",
                "opaque": false,
                "proxy_port": 4143,
                "labels": {
                    "dst_namespace": "shop",
                    "dst_pod": "web-1",
                    "dst_serviceaccount": "web",
                },
            }],
        })
    );

    // The second endpoint turns ready: a new line with both.
    let ready_both = json!({"endpoints": [
        {"addresses": ["10.244.0.10"], "conditions": {"ready": true}},
        {"addresses": ["10.244.0.11"], "conditions": {"ready": true}},
    ]});
    slices
        .patch(
            "web-svc-1",
            &PatchParams::default(),
            &Patch::Merge(&ready_both),
        )
        .await
        .expect("patch the endpoint slice");
    let line = watch.update().await;
    assert_eq!(
        line["endpoints"][1],
        json!({"addr": "10.244.0.11:8080", "meshed": false}),
        "{line}"
    );
    assert_eq!(line["endpoints"][0]["meshed"], true, "{line}");

    // The slice goes: the Service remains, with no endpoints.
    slices
        .delete("web-svc-1", &DeleteParams::default())
        .await
        .expect("delete the endpoint slice");
    let line = watch.update().await;
    assert_eq!(line["endpoints"], json!([]), "{line}");
    assert_eq!(line["service"]["name"], "web-svc", "{line}");

    // The Service goes: its ClusterIP is nobody's.
    services
        .delete("web-svc", &DeleteParams::default())
        .await
        .expect("delete the service");
    assert_eq!(watch.update().await, json!({"addr": addr, "meshed": false}));
    assert!(metrics.lookups(LookupResult::Service) >= 1);
    server.stop().await;
}
