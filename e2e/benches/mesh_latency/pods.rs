//! What the benchmark reads from the cluster: the pods' state, whether
//! they were injected, and the voting proxies' response counts.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;
use weft_e2e::metrics::metric;
use weft_e2e::{Cluster, install, wait};

use crate::{LOAD, Path};

/// The app pods' selector (the voting Deployment's, as in emojivoto.yml).
const VOTING_SELECTOR: &str = "app=voting-svc";

/// The load container's exit code, once it has ended.
pub fn finished(pod: &Pod) -> Option<i32> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == LOAD)?
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

/// A pod's phase and its load container's state, for a timeout's message.
pub fn pod_state(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == LOAD)
        .and_then(|c| c.state.as_ref())
        .map(|s| format!("{s:?}"))
        .unwrap_or_else(|| "not started".to_string());
    format!(
        "{} {}: {container}",
        pod.metadata.name.as_deref().unwrap_or_default(),
        status.phase.unwrap_or_default()
    )
}

/// Fails unless a pod on the meshed path has weft's proxy and a plain one
/// has none: otherwise the comparison is not the one it claims.
pub fn check_injection(pod: &Pod, path: Path) -> anyhow::Result<()> {
    let spec = pod.spec.as_ref().context("a pod without a spec")?;
    let proxied = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .any(|c| c.name == "weft-proxy");
    anyhow::ensure!(
        proxied == path.injected(),
        "{}/{}: weft-proxy {}",
        path.namespace(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        if proxied {
            "injected on the plain path"
        } else {
            "missing on the meshed path"
        }
    );
    Ok(())
}

/// Waits until voting has rolled out `replicas` pods, each Ready; returns
/// them, by name.
pub async fn voting_ready(
    cluster: &Cluster,
    path: Path,
    replicas: usize,
) -> anyhow::Result<Vec<Pod>> {
    let ns = path.namespace();
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), ns);
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    let what = format!("{replicas} Ready voting pod(s) in {ns}");
    let found = wait::eventually(&what, Duration::from_secs(240), || {
        let (deployments, pods) = (deployments.clone(), pods.clone());
        async move {
            install::deployment_complete(&deployments, "voting").await?;
            let list = pods
                .list(&ListParams::default().labels(VOTING_SELECTOR))
                .await
                .map_err(|e| e.to_string())?;
            let mut live: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            if live.len() != replicas || !live.iter().all(ready) {
                return Err(format!("{} live pods, not all Ready", live.len()));
            }
            live.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            Ok(live)
        }
    })
    .await?;
    Ok(found)
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until voting-svc's EndpointSlices list `count` ready endpoints, so
/// the destination service can hand all of them to the load generator's
/// proxy.
pub async fn endpoints_ready(cluster: &Cluster, path: Path, count: usize) -> anyhow::Result<()> {
    let slices: Api<EndpointSlice> = Api::namespaced(cluster.client(), path.namespace());
    let params = ListParams::default().labels("kubernetes.io/service-name=voting-svc");
    wait::eventually(
        "voting-svc's endpoints ready",
        Duration::from_secs(60),
        || {
            let (slices, params) = (slices.clone(), params.clone());
            async move {
                let list = slices.list(&params).await.map_err(|e| e.to_string())?;
                let ready = list
                    .items
                    .iter()
                    .flat_map(|s| &s.endpoints)
                    .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                    .count();
                if ready == count {
                    Ok(())
                } else {
                    Err(format!("{ready} ready endpoints"))
                }
            }
        },
    )
    .await?;
    Ok(())
}

/// A pod's proxy metrics, from its admin port at the pod IP.
async fn proxy_metrics(pod: &Pod) -> anyhow::Result<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let ip: IpAddr = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .with_context(|| format!("{name} has no IP"))?
        .parse()?;
    let r = weft_e2e::http::get_from(
        SocketAddr::new(ip, 4191),
        "/metrics",
        Duration::from_secs(10),
    )
    .await?;
    anyhow::ensure!(r.status == 200, "/metrics of {name}: {}", r.status);
    Ok(r.body)
}

/// The mesh identity of the load generator in `path`'s namespace.
fn load_identity(path: Path) -> String {
    format!("spiffe://cluster.local/ns/{}/sa/{LOAD}", path.namespace())
}

/// The calls voting's proxies took in from vote-load over mesh TLS, summed
/// over `pods`; `None` on the plain path.
pub async fn mtls_calls(path: Path, pods: &[Pod]) -> anyhow::Result<Option<f64>> {
    if !path.injected() {
        return Ok(None);
    }
    let id = load_identity(path);
    let mut sum = 0.0;
    for pod in pods {
        let labels = [
            ("direction", "inbound"),
            ("tls", "true"),
            ("client_id", id.as_str()),
        ];
        sum += metric(&proxy_metrics(pod).await?, "response_total", &labels);
    }
    Ok(Some(sum))
}

/// Each pod's inbound responses: (from vote-load over mesh TLS, all).
pub async fn per_endpoint(pods: &[Pod]) -> anyhow::Result<Vec<(f64, f64)>> {
    let id = load_identity(Path::Mesh);
    let mut counts = Vec::new();
    for pod in pods {
        let text = proxy_metrics(pod).await?;
        let from_load = [
            ("direction", "inbound"),
            ("tls", "true"),
            ("client_id", id.as_str()),
        ];
        counts.push((
            metric(&text, "response_total", &from_load),
            metric(&text, "response_total", &[("direction", "inbound")]),
        ));
    }
    Ok(counts)
}
