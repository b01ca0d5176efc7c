//! The demo's view of its namespace: one listing of its Deployments,
//! ReplicaSets and Pods, and the questions the demo asks of it (does every
//! Deployment have its pods, which ReplicaSet did the restart create, which
//! audit event created a pod). Pure once listed, so tested without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::Api;
use kube::api::{ListParams, ObjectMeta};

use super::NewPod;
use crate::audit::AuditEvent;
use crate::error::{Error, Result};
use crate::webhook;

/// The annotation `kubectl rollout restart` stamps on a pod template.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The namespace's Deployments, ReplicaSets and Pods at one moment.
pub(crate) struct Snapshot {
    pub(crate) deployments: Vec<Deployment>,
    pub(crate) replica_sets: Vec<ReplicaSet>,
    pub(crate) pods: Vec<Pod>,
}

impl Snapshot {
    /// Lists all three; an API error is a reason to look again.
    pub(crate) async fn take(client: kube::Client, ns: &str) -> std::result::Result<Self, String> {
        let lp = ListParams::default();
        let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
        let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), ns);
        let pods = Api::<Pod>::namespaced(client, ns);
        let (d, r, p) = tokio::try_join!(
            deployments.list(&lp),
            replica_sets.list(&lp),
            pods.list(&lp)
        )
        .map_err(|e| format!("listing namespace {ns}: {e}"))?;
        Ok(Snapshot {
            deployments: d.items,
            replica_sets: r.items,
            pods: p.items,
        })
    }

    fn replica_sets_of<'s>(&'s self, deployment: &'s str) -> impl Iterator<Item = &'s ReplicaSet> {
        self.replica_sets
            .iter()
            .filter(move |rs| controller(&rs.metadata, "Deployment") == Some(deployment))
    }

    fn pods_of<'s>(&'s self, rs: &'s ReplicaSet) -> impl Iterator<Item = &'s Pod> {
        let uid = rs.metadata.uid.as_deref();
        self.pods.iter().filter(move |p| {
            p.metadata.owner_references.iter().flatten().any(|o| {
                o.kind == "ReplicaSet" && o.controller == Some(true) && Some(o.uid.as_str()) == uid
            })
        })
    }

    pub(crate) fn pod_by_uid(&self, uid: &str) -> Option<&Pod> {
        self.pods
            .iter()
            .find(|p| p.metadata.uid.as_deref() == Some(uid))
    }

    pub(crate) fn replica_set(&self, name: &str) -> Result<&ReplicaSet> {
        self.replica_sets
            .iter()
            .find(|rs| rs.metadata.name.as_deref() == Some(name))
            .ok_or_else(|| Error::Demo(format!("ReplicaSet {name} is gone")))
    }

    /// `(uid, injected)` of every pod of every Deployment, once each
    /// Deployment has at least its `replicas` pods.
    pub(crate) fn every_deployment_has_pods(
        &self,
    ) -> std::result::Result<Vec<(String, bool)>, String> {
        if self.deployments.is_empty() {
            return Err("no Deployment in the namespace yet".to_string());
        }
        let mut pods = Vec::new();
        let mut ready = 0;
        for d in &self.deployments {
            let name = d.metadata.name.as_deref().unwrap_or_default();
            let want = replicas(d);
            let have: Vec<&Pod> = self
                .replica_sets_of(name)
                .flat_map(|rs| self.pods_of(rs))
                .collect();
            if have.len() >= want {
                ready += 1;
            }
            pods.extend(have.into_iter().map(|p| {
                (
                    p.metadata.uid.clone().unwrap_or_default(),
                    webhook::is_injected(p),
                )
            }));
        }
        if ready == self.deployments.len() {
            Ok(pods)
        } else {
            Err(format!(
                "{ready} of {} Deployments have their pods",
                self.deployments.len()
            ))
        }
    }

    /// The pod template of Deployment `name`.
    pub(crate) fn template_of(&self, name: &str) -> Result<PodTemplateSpec> {
        self.deployments
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(name))
            .and_then(|d| d.spec.as_ref())
            .map(|s| s.template.clone())
            .ok_or_else(|| Error::Demo(format!("no deployment/{name} in the manifest's namespace")))
    }

    /// Each Deployment's `kubectl rollout restart` stamp.
    pub(crate) fn restart_stamps(&self) -> Result<BTreeMap<String, String>> {
        self.deployments
            .iter()
            .map(|d| {
                let name = d.metadata.name.clone().unwrap_or_default();
                restarted_at(d.spec.as_ref().map(|s| &s.template))
                    .map(|stamp| (name.clone(), stamp.to_string()))
                    .ok_or_else(|| {
                        Error::Demo(format!(
                            "deployment/{name} carries no {RESTARTED_AT} after the restart"
                        ))
                    })
            })
            .collect()
    }

    /// The pods of each Deployment's ReplicaSet stamped with its restart,
    /// once each such ReplicaSet has all the pods it wants.
    pub(crate) fn new_pods(
        &self,
        stamps: &BTreeMap<String, String>,
    ) -> std::result::Result<Vec<NewPod>, String> {
        let mut pods = Vec::new();
        let mut complete = 0;
        for (deployment, stamp) in stamps {
            let Some(rs) = self.replica_sets_of(deployment).find(|rs| {
                restarted_at(rs.spec.as_ref().and_then(|s| s.template.as_ref())) == Some(stamp)
            }) else {
                continue;
            };
            let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let have: Vec<&Pod> = self.pods_of(rs).collect();
            if want > 0 && have.len() >= usize::try_from(want).unwrap_or(usize::MAX) {
                complete += 1;
            }
            let rs_name = rs.metadata.name.clone().unwrap_or_default();
            let mut names: Vec<NewPod> = have
                .into_iter()
                .map(|p| NewPod {
                    deployment: deployment.clone(),
                    replica_set: rs_name.clone(),
                    pod: p.metadata.name.clone().unwrap_or_default(),
                    injected: webhook::is_injected(p),
                    phase: p
                        .status
                        .as_ref()
                        .and_then(|s| s.phase.clone())
                        .unwrap_or_else(|| "no phase yet".to_string()),
                })
                .collect();
            names.sort_by(|a, b| a.pod.cmp(&b.pod));
            pods.extend(names);
        }
        if complete == stamps.len() {
            Ok(pods)
        } else {
            Err(format!(
                "{complete} of {} new ReplicaSets have their pods ({} pods so far)",
                stamps.len(),
                pods.len()
            ))
        }
    }
}

/// The name of the controller of `kind` that owns `meta`.
fn controller<'m>(meta: &'m ObjectMeta, kind: &str) -> Option<&'m str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == kind && o.controller == Some(true))
        .map(|o| o.name.as_str())
}

/// A Deployment's desired replicas (1 when unset, as the API defaults it).
fn replicas(d: &Deployment) -> usize {
    d.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .and_then(|r| usize::try_from(r).ok())
        .unwrap_or(1)
}

/// The `kubectl rollout restart` stamp of a pod template.
fn restarted_at(template: Option<&PodTemplateSpec>) -> Option<&str> {
    template?
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(RESTARTED_AT)
        .map(String::as_str)
}

/// The create event of the pod the ReplicaSet `rs_uid` created in `ns` that
/// the API server accepted. Pods made by a controller are named by the API
/// server (`generateName`), so the event knows the pod by its owner.
pub(crate) fn creation_by<'e>(
    events: &'e [AuditEvent],
    ns: &str,
    rs_uid: &str,
) -> Option<&'e AuditEvent> {
    events.iter().rev().find(|e| {
        let about_pod = e.verb == "create"
            && e.object_ref
                .as_ref()
                .is_some_and(|o| o.resource == "pods" && o.namespace.as_deref() == Some(ns));
        let owned = e.request_object.as_ref().is_some_and(|o| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == rs_uid))
        });
        about_pod && owned && e.status_code() == Some(201)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn owner(kind: &str, name: &str, uid: &str) -> Value {
        json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true}])
    }

    fn deployment(name: &str, replicas: i32, stamp: Option<&str>) -> Deployment {
        let annotations = stamp.map(|s| json!({RESTARTED_AT: s}));
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"annotations": annotations}},
            }
        }))
        .expect("deployment")
    }

    fn replica_set(name: &str, deployment: &str, replicas: i32, stamp: Option<&str>) -> ReplicaSet {
        let annotations = stamp.map(|s| json!({RESTARTED_AT: s}));
        serde_json::from_value(json!({
            "metadata": {
                "name": name, "uid": format!("uid-{name}"),
                "ownerReferences": owner("Deployment", deployment, &format!("uid-{deployment}")),
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": deployment}},
                "template": {"metadata": {"annotations": annotations}},
            }
        }))
        .expect("replica set")
    }

    fn pod(name: &str, rs: &str, injected: bool) -> Pod {
        let init = if injected {
            json!([{"name": "weft-init"}, {"name": "weft-proxy", "restartPolicy": "Always"}])
        } else {
            Value::Null
        };
        serde_json::from_value(json!({
            "metadata": {
                "name": name, "uid": format!("uid-{name}"),
                "ownerReferences": owner("ReplicaSet", rs, &format!("uid-{rs}")),
            },
            "spec": {"initContainers": init, "containers": [{"name": "app"}]}
        }))
        .expect("pod")
    }

    #[test]
    fn every_deployment_must_have_its_pods() {
        let mut snap = Snapshot {
            deployments: vec![deployment("web", 1, None), deployment("api", 2, None)],
            replica_sets: vec![
                replica_set("web-1", "web", 1, None),
                replica_set("api-1", "api", 2, None),
            ],
            pods: vec![
                pod("web-1-a", "web-1", false),
                pod("api-1-a", "api-1", false),
            ],
        };
        let why = snap
            .every_deployment_has_pods()
            .expect_err("api lacks a pod");
        assert_eq!(why, "1 of 2 Deployments have their pods");
        snap.pods.push(pod("api-1-b", "api-1", true));
        let pods = snap.every_deployment_has_pods().expect("all there");
        assert_eq!(pods.len(), 3);
        assert_eq!(pods.iter().filter(|(_, injected)| *injected).count(), 1);
        assert!(snap.pod_by_uid("uid-api-1-b").is_some());

        let empty = Snapshot {
            deployments: vec![],
            replica_sets: vec![],
            pods: vec![],
        };
        assert!(empty.every_deployment_has_pods().is_err());
    }

    #[test]
    fn the_new_pods_are_those_of_the_replica_set_stamped_by_the_restart() {
        let stamp = "2025-01-01T00:00:00Z";
        let mut snap = Snapshot {
            deployments: vec![deployment("web", 1, Some(stamp))],
            replica_sets: vec![
                replica_set("web-old", "web", 1, None),
                replica_set("web-new", "web", 0, Some(stamp)),
            ],
            pods: vec![pod("web-old-a", "web-old", false)],
        };
        let stamps = snap.restart_stamps().expect("stamped");
        assert_eq!(stamps.get("web").map(String::as_str), Some(stamp));
        // Scaled to zero so far: not done.
        let why = snap.new_pods(&stamps).expect_err("no pods yet");
        assert!(why.starts_with("0 of 1 new ReplicaSets"), "{why}");

        snap.replica_sets[1] = replica_set("web-new", "web", 1, Some(stamp));
        snap.pods.push(pod("web-new-a", "web-new", true));
        let new = snap.new_pods(&stamps).expect("done");
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].pod, "web-new-a");
        assert_eq!(new[0].replica_set, "web-new");
        assert!(new[0].injected);
        assert!(snap.template_of("web").is_ok());
        assert!(snap.template_of("nope").is_err());
        assert!(snap.replica_set("web-new").is_ok());
    }

    #[test]
    fn a_deployment_without_a_restart_stamp_is_an_error() {
        let snap = Snapshot {
            deployments: vec![deployment("web", 1, None)],
            replica_sets: vec![],
            pods: vec![],
        };
        let err = snap.restart_stamps().expect_err("no stamp");
        assert!(err.to_string().contains(RESTARTED_AT), "{err}");
    }

    #[test]
    fn the_creation_event_is_found_by_its_owner() {
        let event = |ns: &str, rs_uid: &str, code: u64| -> AuditEvent {
            serde_json::from_value(json!({
                "stage": "ResponseComplete", "verb": "create",
                "objectRef": {"resource": "pods", "namespace": ns},
                "responseStatus": {"code": code},
                "requestObject": {"metadata": {
                    "generateName": "web-",
                    "ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "uid": rs_uid}],
                }},
            }))
            .expect("event")
        };
        let events = vec![
            event("demo", "uid-other", 201),
            event("elsewhere", "uid-web-1", 201),
            event("demo", "uid-web-1", 409),
            event("demo", "uid-web-1", 201),
        ];
        let found = creation_by(&events, "demo", "uid-web-1").expect("found");
        assert_eq!(found.status_code(), Some(201));
        assert!(creation_by(&events[..3], "demo", "uid-web-1").is_none());
    }
}
