//! weft installed into a node cluster the way a user installs it:
//! `weft install --registry localhost/weft | kubectl apply -f -`, then
//! waiting until the injector and weft-control Deployments are Available.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;

use crate::cargo_bin::{Profile, WEFT_CLI};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::images::{REGISTRY, TAG};
use crate::wait::eventually;

/// The control plane's namespace.
pub const NAMESPACE: &str = "weft";

/// The Deployments `weft install` ships.
pub const DEPLOYMENTS: &[&str] = &["weft-injector", "weft-control"];

/// The `weft install` arguments for the local node's images, then `extra`.
pub fn install_args(extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "install".to_string(),
        "--registry".to_string(),
        REGISTRY.to_string(),
        "--image-tag".to_string(),
        TAG.to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// Renders weft's control plane with the built `weft` and applies it.
pub async fn apply(cluster: &Cluster, extra: &[&str]) -> Result<()> {
    let weft = WEFT_CLI.path(Profile::Debug)?;
    let args = install_args(extra);
    let out = tokio::process::Command::new(&weft)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(Error::io(format!("running {}", weft.display())))?;
    if !out.status.success() {
        return Err(Error::Demo(format!(
            "weft {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let manifests = String::from_utf8_lossy(&out.stdout).into_owned();
    cluster
        .kubectl()
        .run_stdin(&["apply", "-f", "-"], &manifests)
        .await?;
    Ok(())
}

/// Waits until every Deployment of the control plane has all its replicas
/// updated and available.
pub async fn wait_ready(cluster: &Cluster, timeout: Duration) -> Result<()> {
    let api: kube::Api<Deployment> = kube::Api::namespaced(cluster.client(), NAMESPACE);
    for name in DEPLOYMENTS {
        eventually(
            &format!("deployment/{name} in {NAMESPACE} Available"),
            timeout,
            || {
                let api = api.clone();
                async move { deployment_complete(&api, name).await }
            },
        )
        .await?;
    }
    Ok(())
}

/// The names of the Deployments `api` lists.
pub async fn deployment_names(api: &kube::Api<Deployment>) -> Result<Vec<String>> {
    Ok(api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect())
}

/// Ok when every one of `names` is rolled out ([`deployment_complete`]);
/// the first one's reason otherwise.
pub async fn rollouts_complete<S: AsRef<str>>(
    api: &kube::Api<Deployment>,
    names: &[S],
) -> std::result::Result<(), String> {
    for name in names {
        deployment_complete(api, name.as_ref()).await?;
    }
    Ok(())
}

/// Ok when the Deployment's newest ReplicaSet is fully rolled out and
/// available; the reason otherwise.
pub async fn deployment_complete(
    api: &kube::Api<Deployment>,
    name: &str,
) -> std::result::Result<(), String> {
    let d = api
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no deployment {name}"))?;
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if observed >= generation && updated == want && available == want && total == want {
        Ok(())
    } else {
        Err(format!(
            "{name}: {updated} updated, {available} available, {total} in all of {want}"
        ))
    }
}
