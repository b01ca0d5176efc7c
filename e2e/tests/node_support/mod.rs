//! The node suites' shared set-up: one node cluster per test binary (the
//! machine has one node), with weft installed in it the way a user installs
//! it, and helpers for the pods the trials run. Trials run one after another
//! because some of them stop parts of the control plane.

#![allow(dead_code)] // each suite uses its own subset of the helpers

pub mod suite;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use weft_e2e::images::BUSYBOX_IMAGE;
use weft_e2e::{Cluster, ClusterOptions, NodeOptions, http, images, install, wait};

/// How long a pod gets to become Ready on the node.
pub const POD_READY: Duration = Duration::from_secs(120);

/// What a trial returns.
pub type TrialResult = Result<(), String>;

/// A node cluster with weft's control plane running in it.
pub struct NodeEnv {
    /// The cluster.
    pub cluster: Cluster,
}

impl NodeEnv {
    /// Builds the images, starts the cluster and its node, and installs weft.
    pub async fn start() -> Result<Self, String> {
        let cluster = start_node_cluster().await?;
        install::apply(&cluster, &[])
            .await
            .map_err(|e| format!("weft install | kubectl apply: {e}"))?;
        install::wait_ready(&cluster, Duration::from_secs(240))
            .await
            .map_err(|e| format!("{e}\n{}", cluster.log_tails(20)))?;
        Ok(NodeEnv { cluster })
    }

    /// kubectl with `args`; stdout, or the error with stderr.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        self.cluster
            .kubectl()
            .run(args)
            .await
            .map(|o| o.stdout)
            .map_err(|e| e.to_string())
    }

    /// `kubectl apply -f -` of `yaml`.
    pub async fn apply(&self, yaml: &str) -> TrialResult {
        self.cluster
            .kubectl()
            .run_stdin(&["apply", "-f", "-"], yaml)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Creates namespace `name`, annotated for injection when `inject`.
    pub async fn namespace(&self, name: &str, inject: bool) -> TrialResult {
        let annotation = if inject {
            "\n  annotations: {weft.dev/inject: enabled}"
        } else {
            ""
        };
        self.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}{annotation}\n"
        ))
        .await
    }

    /// The pods in `ns` matching `selector`.
    pub async fn pods(&self, ns: &str, selector: &str) -> Result<Vec<Pod>, String> {
        let api: Api<Pod> = Api::namespaced(self.cluster.client(), ns);
        api.list(&kube::api::ListParams::default().labels(selector))
            .await
            .map(|l| l.items)
            .map_err(|e| e.to_string())
    }

    /// Waits until exactly `count` pods match `selector` in `ns`, none is
    /// terminating, and each is Ready with every container ready; returns
    /// them.
    pub async fn ready_pods(
        &self,
        ns: &str,
        selector: &str,
        count: usize,
    ) -> Result<Vec<Pod>, String> {
        let what = format!("{count} Ready pod(s) {selector} in {ns}");
        wait::eventually(&what, POD_READY, || async move {
            let pods = self.pods(ns, selector).await?;
            let live: Vec<Pod> = pods
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            if live.len() != count {
                return Err(format!("{} pods: {}", live.len(), summary(&live)));
            }
            if live.iter().all(all_ready) {
                Ok(live)
            } else {
                Err(summary(&live))
            }
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// GET `path` from `ip:port` (a pod on the node's bridge).
    pub async fn get(&self, ip: &str, port: u16, path: &str) -> Result<http::Response, String> {
        let ip: Ipv4Addr = ip.parse().map_err(|e| format!("pod IP {ip}: {e}"))?;
        http::get_from(SocketAddr::from((ip, port)), path, Duration::from_secs(10))
            .await
            .map_err(|e| e.to_string())
    }

    /// The proxy's metrics of `pod` (its admin port, from the host).
    pub async fn proxy_metrics(&self, pod: &Pod) -> Result<String, String> {
        let ip = pod_ip(pod)?;
        let r = self.get(&ip, 4191, "/metrics").await?;
        if r.status != 200 {
            return Err(format!("/metrics of {}: {}", name(pod), r.status));
        }
        Ok(r.body)
    }

    /// `kubectl exec` in `pod`'s container `container`.
    pub async fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> Result<String, String> {
        let mut args = vec!["exec", "-n", ns, pod, "-c", container, "--"];
        args.extend_from_slice(command);
        self.kubectl(&args).await
    }
}

/// Builds the node's images and starts a node cluster.
pub async fn start_node_cluster() -> Result<Cluster, String> {
    let images = images::ensure().await.map_err(|e| e.to_string())?;
    Cluster::start_with(ClusterOptions {
        start_timeout: Duration::from_secs(300),
        node: Some(NodeOptions { images }),
        ..ClusterOptions::default()
    })
    .await
    .map_err(|e| e.to_string())
}

/// A pod's name.
pub fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// A pod's IP.
pub fn pod_ip(pod: &Pod) -> Result<String, String> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .ok_or_else(|| format!("{} has no IP", name(pod)))
}

/// Whether a pod is Ready with all its containers (and native sidecars)
/// ready.
pub fn all_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    let ready = status
        .conditions
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let containers = status
        .container_statuses
        .as_ref()
        .is_some_and(|cs| cs.iter().all(|c| c.ready));
    ready && containers
}

/// `ready/total` as kubectl's READY column counts it: app containers plus
/// native sidecars (init containers with `restartPolicy: Always`).
pub fn ready_column(pod: &Pod) -> (usize, usize) {
    let Some(status) = &pod.status else {
        return (0, 0);
    };
    let sidecars: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map(|cs| {
            cs.iter()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"))
                .map(|c| c.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut ready = 0;
    let mut total = 0;
    for c in status.container_statuses.iter().flatten() {
        total += 1;
        ready += usize::from(c.ready);
    }
    for c in status.init_container_statuses.iter().flatten() {
        if sidecars.contains(&c.name) {
            total += 1;
            ready += usize::from(c.ready);
        }
    }
    (ready, total)
}

/// One line per pod: name, phase, READY.
pub fn summary(pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| {
            let (r, t) = ready_column(p);
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            format!("{} {phase} {r}/{t}", name(p))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Deployment of busybox httpd on 8080 with its own ServiceAccount, a
/// readiness probe, and `annotations` on its pod template.
pub fn web_deployment(ns: &str, name: &str, annotations: &[(&str, &str)]) -> String {
    deployment(ns, name, annotations, true)
}

/// [`web_deployment`] without the HTTP readiness probe: with
/// `require-identity` the kubelet's plaintext probe is refused like any
/// other unauthenticated client (docs/architecture.md, "require-identity").
pub fn web_deployment_unprobed(ns: &str, name: &str, annotations: &[(&str, &str)]) -> String {
    deployment(ns, name, annotations, false)
}

fn deployment(ns: &str, name: &str, annotations: &[(&str, &str)], probe: bool) -> String {
    let probe = if probe {
        "
          readinessProbe:
            httpGet: {path: /index.html, port: 8080}
            periodSeconds: 1"
    } else {
        ""
    };
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        let pairs: Vec<String> = annotations
            .iter()
            .map(|(k, v)| format!("{k}: \"{v}\""))
            .collect();
        format!("\n      annotations: {{{}}}", pairs.join(", "))
    };
    format!(
        "apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}, namespace: {ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}{annotations}
    spec:
      serviceAccountName: {name}
      terminationGracePeriodSeconds: 2
      containers:
        - name: app
          image: {BUSYBOX_IMAGE}
          imagePullPolicy: IfNotPresent
          command: [busybox, httpd, -f, -v, -p, '8080', -h, /www]
          ports: [{{name: http, containerPort: 8080}}]{probe}
"
    )
}
