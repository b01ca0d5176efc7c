//! The user's workflow, steps 7 to 10 of the demo: deploy the sample app,
//! annotate its namespace, `kubectl rollout restart`, and read back what the
//! API server recorded for one of the new pods. Each step says what it runs
//! and waits for the state it needs rather than sleeping.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use serde_json::{Value, json};

use super::NewPod;
use super::progress::Progress;
use super::report::PodReport;
use super::snapshot::{Snapshot, creation_by};
use k8s_openapi::api::apps::v1::Deployment;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::kubectl::Kubectl;
use crate::webhook;
use crate::{audit, install};

/// How long controllers get to create pods (a busy 2-core machine is slow).
const CONVERGE: Duration = Duration::from_secs(120);
/// How long the restarted Deployments get to roll out on the node.
const ROLLOUT: Duration = Duration::from_secs(240);
/// How long the injector's namespace watch gets to see the annotation.
const WATCH_SEEN: Duration = Duration::from_secs(60);

/// What the API server recorded for the reported pod.
pub(super) struct Recorded {
    /// The report.
    pub(super) report: PodReport,
    /// The pod as its ReplicaSet asked for it (the audit `requestObject`).
    pub(super) requested_pod: Value,
    /// The pod as stored.
    pub(super) stored_pod: Value,
}

/// Step 7: `kubectl apply -f manifest`, until every Deployment has its
/// pods. Returns `(uid, injected)` of each pod.
pub(super) async fn deploy(
    p: &mut Progress<'_>,
    cluster: &Cluster,
    manifest: &Path,
    ns: &str,
) -> Result<Vec<(String, bool)>> {
    let kubectl = cluster.kubectl();
    let manifest = manifest.display().to_string();
    p.step(format!("kubectl apply -f {manifest}"))?;
    let applied = kubectl.run(&["apply", "-f", &manifest]).await?;
    for line in applied.stdout.lines() {
        p.note(line)?;
    }
    let before = p
        .until("the Deployments' pods", CONVERGE, || {
            let client = cluster.client();
            async move {
                let snap = Snapshot::take(client, ns).await?;
                snap.every_deployment_has_pods()
            }
        })
        .await?;
    let injected_before = before.iter().filter(|(_, injected)| *injected).count();
    p.done(format!(
        "{} pods created, {injected_before} of them with weft-proxy{}",
        before.len(),
        if injected_before == 0 {
            " (the namespace is not annotated yet)"
        } else {
            ""
        }
    ))?;
    Ok(before)
}

/// Step 8: `kubectl annotate namespace`, until the injector's namespace
/// watch has seen it (a dry run of `deployment`'s pod comes back injected),
/// as a person would check before restarting.
pub(super) async fn annotate(
    p: &mut Progress<'_>,
    cluster: &Cluster,
    ns: &str,
    deployment: &str,
) -> Result<()> {
    let kubectl = cluster.kubectl();
    p.step(format!(
        "kubectl annotate namespace {ns} weft.dev/inject=enabled"
    ))?;
    kubectl
        .run(&[
            "annotate",
            "--overwrite",
            "namespace",
            ns,
            "weft.dev/inject=enabled",
        ])
        .await?;
    let template = Snapshot::take(cluster.client(), ns)
        .await
        .map_err(Error::Demo)?
        .template_of(deployment)?;
    p.until(
        "the injector's namespace watch (a dry-run pod comes back injected)",
        WATCH_SEEN,
        || {
            let (kubectl, template) = (kubectl.clone(), template.clone());
            async move {
                let (pod, _) = dry_run(&kubectl, ns, &template)
                    .await
                    .map_err(|e| e.to_string())?;
                if webhook::is_injected(&pod) {
                    Ok(())
                } else {
                    Err("not injected yet".to_string())
                }
            }
        },
    )
    .await?;
    p.done("the injector sees the annotation")?;
    Ok(())
}

/// Step 9: `kubectl rollout restart`, until each Deployment's new
/// ReplicaSet has its pods and every rollout is complete, its pods Ready
/// (2/2: the app and weft-proxy). `before` are the pods from step 7.
/// Returns the new pods, the namespace as it then is, and `kubectl get
/// pods`' table.
pub(super) async fn restart(
    p: &mut Progress<'_>,
    cluster: &Cluster,
    ns: &str,
    before: &[(String, bool)],
) -> Result<(Vec<NewPod>, Snapshot, String)> {
    let kubectl = cluster.kubectl();
    p.step(format!("kubectl rollout restart deploy -n {ns}"))?;
    let restarted = kubectl
        .run(&["rollout", "restart", "deploy", "-n", ns])
        .await?;
    for line in restarted.stdout.lines() {
        p.note(line)?;
    }
    let stamps = Snapshot::take(cluster.client(), ns)
        .await
        .map_err(Error::Demo)?
        .restart_stamps()?;
    let new_pods = p
        .until("the new ReplicaSets' pods", CONVERGE, || {
            let (client, stamps) = (cluster.client(), &stamps);
            async move {
                let snap = Snapshot::take(client, ns).await?;
                snap.new_pods(stamps)
            }
        })
        .await?;
    let injected_now = new_pods.iter().filter(|n| n.injected).count();
    p.done(format!(
        "{} new pods created, {injected_now} of them injected",
        new_pods.len()
    ))?;
    for n in &new_pods {
        p.note(format!(
            "deployment/{:<10} ReplicaSet {:<24} pod {:<32} {}, {}",
            n.deployment,
            n.replica_set,
            n.pod,
            if n.injected {
                "injected"
            } else {
                "NOT injected"
            },
            n.phase
        ))?;
    }
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(cluster.client(), ns);
    let names = install::deployment_names(&deployments).await?;
    let pods: kube::Api<Pod> = kube::Api::namespaced(cluster.client(), ns);
    p.until(
        "every rollout complete and the old pods gone, each new pod READY 2/2",
        ROLLOUT,
        || {
            let (deployments, names, pods) = (&deployments, &names, &pods);
            async move {
                install::rollouts_complete(deployments, names).await?;
                // `kubectl get pods` lists an old pod until it is deleted.
                let listed = pods
                    .list(&Default::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let old = listed
                    .items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_some() || !webhook::is_injected(p))
                    .count();
                if old > 0 {
                    return Err(format!("{old} old pod(s) still listed"));
                }
                Ok(())
            }
        },
    )
    .await?;
    let table = kubectl.run(&["get", "pods", "-n", ns]).await?.stdout;
    p.done(format!("kubectl get pods -n {ns}"))?;
    for line in table.lines() {
        p.note(line)?;
    }
    let snap = Snapshot::take(cluster.client(), ns)
        .await
        .map_err(Error::Demo)?;
    let remaining: Vec<bool> = before
        .iter()
        .filter_map(|(uid, injected)| {
            snap.pod_by_uid(uid)
                .map(|p| webhook::is_injected(p) == *injected)
        })
        .collect();
    let changed = remaining.iter().filter(|same| !**same).count();
    let removed = before.len() - remaining.len();
    p.note(format!(
        "of the {} pods from before the restart, {} remain and {} changed in place{}: a webhook only sees pods being created",
        before.len(),
        remaining.len(),
        if changed == 0 { "none".to_string() } else { changed.to_string() },
        if removed == 0 {
            String::new()
        } else {
            format!(" ({removed} scaled away by the Deployment controller)")
        }
    ))?;
    Ok((new_pods, snap, table))
}

/// Step 10: the audit record of `deployment`'s new pod, its stored form, and
/// the warnings the webhook gives for its template, as a report.
pub(super) async fn record(
    p: &mut Progress<'_>,
    cluster: &Cluster,
    ns: &str,
    deployment: &str,
    webhook_name: &str,
    new_pods: &[NewPod],
    snap: &Snapshot,
) -> Result<Recorded> {
    let kubectl = cluster.kubectl();
    p.step(format!(
        "what the API server recorded for deployment/{}'s new pod",
        deployment
    ))?;
    let chosen = new_pods
        .iter()
        .find(|n| n.deployment == deployment)
        .ok_or_else(|| Error::Demo(format!("no new pod of deployment/{}", deployment)))?;
    let replica_set = snap.replica_set(&chosen.replica_set)?;
    let rs_uid = replica_set.metadata.uid.clone().unwrap_or_default();
    let pod = snap
        .pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(chosen.pod.as_str()))
        .ok_or_else(|| Error::Demo(format!("pod {} is gone", chosen.pod)))?;
    let audit_log = cluster.audit_log();
    let event = p
        .until("its create event in the audit log", CONVERGE, || {
            let (audit_log, rs_uid) = (audit_log.clone(), rs_uid.clone());
            async move {
                let events = audit::events(&audit_log).map_err(|e| e.to_string())?;
                creation_by(&events, ns, &rs_uid)
                    .cloned()
                    .ok_or_else(|| "not written yet".to_string())
            }
        })
        .await?;
    let rs_template = replica_set
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| Error::Demo(format!("ReplicaSet {} has no template", chosen.replica_set)))?;
    let (_, warnings) = dry_run(&kubectl, ns, &rs_template).await?;
    let pod_json = serde_json::to_value(pod).map_err(|source| Error::Json {
        what: format!("pod {}", chosen.pod),
        source,
    })?;
    let report = PodReport::new(
        webhook_name,
        &pod_json,
        &event,
        warnings,
        &chosen.replica_set,
        &chosen.deployment,
    )?;
    p.done(format!("from {}", audit_log.display()))?;

    Ok(Recorded {
        report,
        requested_pod: event.request_object.unwrap_or(Value::Null),
        stored_pod: pod_json,
    })
}

/// A server-side dry run of a pod made from `template` in `ns`: the pod the
/// API server would store, and the warnings the webhooks returned.
async fn dry_run(
    kubectl: &Kubectl,
    ns: &str,
    template: &PodTemplateSpec,
) -> Result<(Pod, Vec<String>)> {
    let meta = template.metadata.clone().unwrap_or_default();
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "weft-demo-review-",
            "namespace": ns,
            "labels": meta.labels,
            "annotations": meta.annotations,
        },
        "spec": template.spec,
    });
    let out = kubectl
        .run_stdin(
            &["create", "--dry-run=server", "-o", "json", "-f", "-"],
            &pod.to_string(),
        )
        .await?;
    let pod: Pod = serde_json::from_str(&out.stdout).map_err(|source| Error::Json {
        what: "the dry-run pod kubectl printed".to_string(),
        source,
    })?;
    let warnings = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("Warning: "))
        .map(str::to_string)
        .collect();
    Ok((pod, warnings))
}
