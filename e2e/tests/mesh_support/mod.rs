//! Shared set-up of the mesh suite: the local cluster with the real
//! `weft-control` (identity with TokenReviews, destination with its watch
//! caches) and the emojivoto workloads as Kubernetes objects; the rig pods
//! that play those workloads live in [`pods`].
//!
//! The cluster has no node: the test plays the kubelet. It reports each
//! pod's IP (the rig pod's address) through the status subresource, and
//! asks the API server for the pod-bound, `identity.weft.dev` token the
//! kubelet would project into the pod.

#![allow(dead_code)] // each test uses its own subset of the helpers

pub mod app;
pub mod injected;
pub mod metrics;
pub mod pods;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod as KubePod;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};
use weft_e2e::cargo_bin::WEFT_PROXY;
use weft_e2e::{Cluster, Control, ControlOptions, MeshPki, Profile, wait};

/// What every helper returns.
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A step of a test that must succeed.
pub trait Step<T> {
    /// The value, or the test fails right here with `what` and the error.
    /// A panic rather than an early return: the cluster, weft-control and
    /// the proxies are then dropped while panicking, and print their logs.
    fn step(self, what: &str) -> T;
}

impl<T, E: std::fmt::Display> Step<T> for Result<T, E> {
    #[track_caller]
    fn step(self, what: &str) -> T {
        match self {
            Ok(value) => value,
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// The workloads' namespace.
pub const NAMESPACE: &str = "emojivoto";
/// The mesh's trust domain (weft-control's and the proxies' default).
pub const TRUST_DOMAIN: &str = "cluster.local";
/// The audience of the proxies' tokens.
pub const AUDIENCE: &str = "identity.weft.dev";
/// The name identity's certificate carries, and the proxies dial.
pub const IDENTITY_NAME: &str = "weft-identity.weft.svc.cluster.local";
/// The name destination's certificate carries, and the proxies dial.
pub const DESTINATION_NAME: &str = "weft-destination.weft.svc.cluster.local";
/// The port every application of the suite serves on.
pub const APP_PORT: u16 = 8080;
/// How long controllers and caches get to converge.
pub const CONVERGE: Duration = Duration::from_secs(60);

/// The SPIFFE ID of ServiceAccount `sa` of the namespace.
pub fn spiffe(sa: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{sa}")
}

/// The TLS server name an outbound proxy asks for when it dials `sa`.
pub fn server_name(sa: &str) -> String {
    format!("{sa}.{NAMESPACE}.serviceaccount.identity.weft.{TRUST_DOMAIN}")
}

/// A Deployment of one replica whose pod has the shape the injector gives
/// (native sidecar): `weft-init`, then `weft-proxy` with `restartPolicy:
/// Always`, then the application.
fn deployment(name: &str) -> String {
    format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}, weft.dev/control-plane-ns: weft}}
    spec:
      serviceAccountName: {name}
      initContainers:
        - name: weft-init
          image: registry.invalid/weft-proxy:e2e
          args: [init]
        - name: weft-proxy
          image: registry.invalid/weft-proxy:e2e
          args: [run]
          restartPolicy: Always
      containers:
        - name: {name}
          image: registry.invalid/emojivoto-{name}:e2e
          ports: [{{name: http, containerPort: {APP_PORT}}}]
"
    )
}

/// A bare meshed pod `name` of ServiceAccount `sa`.
fn bare_pod(name: &str, sa: &str) -> String {
    format!(
        "\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  serviceAccountName: {sa}
  initContainers:
    - name: weft-proxy
      image: registry.invalid/weft-proxy:e2e
      args: [run]
      restartPolicy: Always
  containers:
    - name: app
      image: registry.invalid/app:e2e
      ports: [{{name: http, containerPort: {APP_PORT}}}]
"
    )
}

/// The cluster, the mesh PKI and weft-control, with the `emojivoto`
/// namespace, ServiceAccounts `web` and `voting` and their Deployments.
/// Fields drop in order: weft-control before the cluster it watches.
pub struct Env {
    /// The real control plane.
    pub control: Control,
    /// Its issuer files and trust anchor.
    pub pki: MeshPki,
    /// The local cluster.
    pub cluster: Cluster,
    /// The `weft-proxy` binary the pods run.
    pub proxy_bin: PathBuf,
}

impl Env {
    /// Starts everything; weft-control is ready when this returns.
    pub async fn start(options: ControlOptions) -> TestResult<Self> {
        let proxy_bin = tokio::task::spawn_blocking(|| WEFT_PROXY.path(Profile::Debug)).await??;
        let cluster = Cluster::start().await?;
        let pki = MeshPki::new()?;
        let control = Control::start(&cluster, &pki, options).await?;
        let mut manifest =
            format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n");
        for name in ["web", "voting"] {
            manifest.push_str(&format!(
                "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {name}, namespace: {NAMESPACE}}}\n---\n{}",
                deployment(name)
            ));
        }
        cluster
            .kubectl()
            .run_stdin(&["apply", "-f", "-"], &manifest)
            .await?;
        Ok(Env {
            control,
            pki,
            cluster,
            proxy_bin,
        })
    }

    /// The name of the Deployment `app`'s pod, once the controllers made it.
    pub async fn pod_of(&self, app: &str) -> TestResult<String> {
        let pods: Api<KubePod> = Api::namespaced(self.cluster.client(), NAMESPACE);
        let name = wait::eventually(&format!("the pod of deployment {app}"), CONVERGE, || {
            let pods = pods.clone();
            async move {
                let list = pods
                    .list(&ListParams::default().labels(&format!("app={app}")))
                    .await
                    .map_err(|e| e.to_string())?;
                match &list.items[..] {
                    [pod] => pod.metadata.name.clone().ok_or("no name".to_owned()),
                    other => Err(format!("{} pods", other.len())),
                }
            }
        })
        .await?;
        Ok(name)
    }

    /// Creates a bare meshed pod `name` of ServiceAccount `sa`.
    pub async fn create_pod(&self, name: &str, sa: &str) -> TestResult {
        self.cluster
            .kubectl()
            .run_stdin(&["apply", "-f", "-"], &bare_pod(name, sa))
            .await?;
        Ok(())
    }

    /// Reports `ip` as pod `pod`'s IP, as its kubelet would.
    pub async fn set_ip(&self, pod: &str, ip: std::net::Ipv4Addr) -> TestResult {
        let patch =
            json!({"status": {"podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}]}});
        self.cluster
            .kubectl()
            .run(&[
                "patch",
                "pod",
                pod,
                "-n",
                NAMESPACE,
                "--subresource=status",
                "--type=merge",
                "-p",
                &patch.to_string(),
            ])
            .await?;
        Ok(())
    }

    /// A token of ServiceAccount `sa` for identity, bound to pod `pod`: what
    /// the kubelet projects into the pod's `weft-identity-token` volume.
    pub async fn token(&self, sa: &str, pod: &str) -> TestResult<String> {
        let out = self
            .cluster
            .kubectl()
            .run(&[
                "create",
                "token",
                sa,
                "-n",
                NAMESPACE,
                "--audience",
                AUDIENCE,
                "--bound-object-kind",
                "Pod",
                "--bound-object-name",
                pod,
                "--duration",
                "1h",
            ])
            .await?;
        let token = out.stdout.trim().to_owned();
        if token.is_empty() {
            return Err(format!("kubectl create token {sa} printed nothing").into());
        }
        Ok(token)
    }

    /// Destination's answer for `addr`, asked over HTTPS as a proxy asks it.
    pub async fn resolve(&self, addr: SocketAddr) -> TestResult<Value> {
        let (status, body) = tls::control_get(
            self.control.destination_addr(),
            self.pki.anchor_pem(),
            DESTINATION_NAME,
            &format!("/v1/resolve?addr={addr}"),
        )
        .await?;
        if status != 200 {
            return Err(format!("destination answered {status}: {body}").into());
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// Waits until destination says a proxy of `sa` is at `addr` (its watch
    /// cache follows the API server a moment later).
    pub async fn wait_meshed(&self, addr: SocketAddr, sa: &str) -> TestResult<Value> {
        let identity = spiffe(sa);
        let answer = wait::eventually(&format!("destination knows {addr}"), CONVERGE, || {
            let identity = identity.clone();
            async move {
                let answer = self.resolve(addr).await.map_err(|e| e.to_string())?;
                if answer["meshed"] == true && answer["identity"] == identity.as_str() {
                    Ok(answer)
                } else {
                    Err(answer.to_string())
                }
            }
        })
        .await?;
        Ok(answer)
    }

    /// Starts a meshed pod `pod` as `who` (see [`pods::Meshed::start`]),
    /// its control plane behind `door`.
    pub fn mesh<'rig>(
        &self,
        pod: weft_testrig::Pod<'rig>,
        door: &pods::ControlDoor<'_>,
        who: &pods::Identity<'_>,
    ) -> TestResult<pods::Meshed<'rig>> {
        pods::Meshed::start(pod, &self.proxy_bin, door, self.pki.anchor_pem(), who)
    }

    /// A value of weft-control's `/metrics` (summed over matching series).
    pub async fn control_metric(&self, name: &str, labels: &[(&str, &str)]) -> TestResult<f64> {
        Ok(metrics::metric(
            &self.control.metrics().await?,
            name,
            labels,
        ))
    }
}
