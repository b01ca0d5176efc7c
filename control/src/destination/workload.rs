//! Which workload a pod belongs to, for the `dst_<kind>` metric label.
//!
//! A pod names its controller in `ownerReferences`. ReplicaSets and Jobs are
//! usually themselves controlled (by a Deployment, by a CronJob), and
//! operators think in those terms, so the index follows one more hop through
//! its cache of the ReplicaSets' and Jobs' own controllers. Until that cache
//! knows a ReplicaSet, the Deployment is inferred from the pod's
//! `pod-template-hash` label (the deployment controller names each
//! ReplicaSet `<deployment>-<hash>`), so a fresh pod gets its final label at
//! once instead of flipping from `dst_replicaset` to `dst_deployment`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The label the deployment controller puts on a ReplicaSet's pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// An object's controller, as named by its `ownerReferences`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Controller {
    /// `apps/v1`, `batch/v1`, `v1`, or a custom resource's group/version.
    pub api_version: String,
    /// `ReplicaSet`, `StatefulSet`, ...
    pub kind: String,
    /// The controller's name (in the object's namespace).
    pub name: String,
}

impl Controller {
    /// The reference with `controller: true`; other owners do not manage
    /// the object and say nothing about its workload.
    pub fn of(meta: &ObjectMeta) -> Option<Self> {
        meta.owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))
            .map(|r| Controller {
                api_version: r.api_version.clone(),
                kind: r.kind.clone(),
                name: r.name.clone(),
            })
    }

    /// Whether this is an object of `kind` in the API `group` (`""` = core).
    fn is(&self, group: &str, kind: &str) -> bool {
        let own_group = self
            .api_version
            .split_once('/')
            .map_or("", |(group, _)| group);
        self.kind == kind && own_group == group
    }

    /// The kind of intermediate owner the index caches, if this is one.
    pub fn parent_kind(&self) -> Option<ParentKind> {
        if self.is("apps", "ReplicaSet") {
            Some(ParentKind::ReplicaSet)
        } else if self.is("batch", "Job") {
            Some(ParentKind::Job)
        } else {
            None
        }
    }
}

/// The owners whose own controller the index follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ParentKind {
    /// `apps/v1` ReplicaSet, usually controlled by a Deployment.
    ReplicaSet,
    /// `batch/v1` Job, sometimes controlled by a CronJob.
    Job,
}

/// One cached intermediate owner: a ReplicaSet or a Job, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParentKey {
    /// ReplicaSet or Job.
    pub kind: ParentKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// The workload a pod is counted under in metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The label name, `dst_` and the lower-cased kind: `dst_deployment`.
    pub label: String,
    /// The workload's name.
    pub name: String,
}

impl Workload {
    fn of(controller: &Controller) -> Self {
        Workload {
            label: label_for_kind(&controller.kind),
            name: controller.name.clone(),
        }
    }
}

/// The top-level workload of a pod in `namespace` controlled by `direct`.
///
/// `parent` answers, for a cached ReplicaSet or Job, `Some(its controller)`
/// (`Some(None)`: known, with no controller); `None` when the cache does not
/// know it (yet).
pub fn top_workload<F>(
    namespace: &str,
    direct: &Controller,
    pod_template_hash: Option<&str>,
    parent: F,
) -> Workload
where
    F: Fn(&ParentKey) -> Option<Option<Controller>>,
{
    let Some(kind) = direct.parent_kind() else {
        return Workload::of(direct);
    };
    let key = ParentKey {
        kind,
        namespace: namespace.to_string(),
        name: direct.name.clone(),
    };
    match parent(&key) {
        Some(Some(owner)) => Workload::of(&owner),
        Some(None) => Workload::of(direct),
        None => match (kind, inferred_deployment(&direct.name, pod_template_hash)) {
            (ParentKind::ReplicaSet, Some(deployment)) => Workload {
                label: label_for_kind("Deployment"),
                name: deployment.to_string(),
            },
            _ => Workload::of(direct),
        },
    }
}

/// `web` for the ReplicaSet `web-7d9f8c` of a pod labelled
/// `pod-template-hash=7d9f8c`.
fn inferred_deployment<'a>(replica_set: &'a str, hash: Option<&str>) -> Option<&'a str> {
    let hash = hash.filter(|h| !h.is_empty())?;
    replica_set
        .strip_suffix(hash)?
        .strip_suffix('-')
        .filter(|name| !name.is_empty())
}

/// `dst_` and the kind in lower case, with anything a Prometheus label name
/// cannot hold replaced by `_` (custom kinds are not limited to ASCII).
pub fn label_for_kind(kind: &str) -> String {
    let mut label = String::with_capacity(4 + kind.len());
    label.push_str("dst_");
    label.extend(kind.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '_'
        }
    }));
    label
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    fn controller(api_version: &str, kind: &str, name: &str) -> Controller {
        Controller {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        }
    }

    fn reference(kind: &str, name: &str, controller: Option<bool>) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            uid: format!("uid-{name}"),
            controller,
            block_owner_deletion: None,
        }
    }

    #[test]
    fn only_the_controlling_reference_counts() {
        let meta = ObjectMeta {
            owner_references: Some(vec![
                reference("ConfigMap", "not-a-controller", None),
                reference("StatefulSet", "db", Some(true)),
            ]),
            ..ObjectMeta::default()
        };
        assert_eq!(
            Controller::of(&meta),
            Some(controller("apps/v1", "StatefulSet", "db"))
        );
        let orphan = ObjectMeta {
            owner_references: Some(vec![reference("ReplicaSet", "web-1", Some(false))]),
            ..ObjectMeta::default()
        };
        assert_eq!(Controller::of(&orphan), None);
        assert_eq!(Controller::of(&ObjectMeta::default()), None);
    }

    #[test]
    fn a_replica_set_leads_to_its_deployment() {
        let rs = controller("apps/v1", "ReplicaSet", "web-7d9f8c");
        let deployment = controller("apps/v1", "Deployment", "web");
        let workload = top_workload("shop", &rs, Some("7d9f8c"), |key| {
            assert_eq!(
                key,
                &ParentKey {
                    kind: ParentKind::ReplicaSet,
                    namespace: "shop".to_string(),
                    name: "web-7d9f8c".to_string(),
                }
            );
            Some(Some(deployment.clone()))
        });
        assert_eq!(workload.label, "dst_deployment");
        assert_eq!(workload.name, "web");
    }

    #[test]
    fn the_cache_wins_over_the_name_heuristic() {
        // A ReplicaSet controlled by something else (an Argo Rollout, say)
        // whose name happens to fit the deployment pattern.
        let rs = controller("apps/v1", "ReplicaSet", "web-7d9f8c");
        let rollout = controller("argoproj.io/v1alpha1", "Rollout", "web");
        let workload = top_workload("shop", &rs, Some("7d9f8c"), |_| Some(Some(rollout.clone())));
        assert_eq!(workload.label, "dst_rollout");
        // Known, with no controller: a bare ReplicaSet.
        let workload = top_workload("shop", &rs, Some("7d9f8c"), |_| Some(None));
        assert_eq!(workload.label, "dst_replicaset");
        assert_eq!(workload.name, "web-7d9f8c");
    }

    #[test]
    fn an_unknown_replica_set_infers_its_deployment_from_the_hash() {
        let rs = controller("apps/v1", "ReplicaSet", "web-api-7d9f8c");
        let workload = top_workload("shop", &rs, Some("7d9f8c"), |_| None);
        assert_eq!(workload.label, "dst_deployment");
        assert_eq!(workload.name, "web-api");
        // No hash, a hash that does not fit, or nothing before it: the
        // ReplicaSet itself.
        for hash in [None, Some("other"), Some(""), Some("web-api-7d9f8c")] {
            let workload = top_workload("shop", &rs, hash, |_| None);
            assert_eq!(workload.label, "dst_replicaset", "hash {hash:?}");
            assert_eq!(workload.name, "web-api-7d9f8c");
        }
    }

    #[test]
    fn a_job_leads_to_its_cron_job() {
        let job = controller("batch/v1", "Job", "backup-29001");
        let cron = controller("batch/v1", "CronJob", "backup");
        let workload = top_workload("ops", &job, None, |key| {
            assert_eq!(key.kind, ParentKind::Job);
            Some(Some(cron.clone()))
        });
        assert_eq!(workload.label, "dst_cronjob");
        assert_eq!(workload.name, "backup");
        let workload = top_workload("ops", &job, None, |_| None);
        assert_eq!(workload.label, "dst_job");
        assert_eq!(workload.name, "backup-29001");
    }

    #[test]
    fn other_kinds_are_the_workload_themselves() {
        for (api_version, kind, label) in [
            ("apps/v1", "StatefulSet", "dst_statefulset"),
            ("apps/v1", "DaemonSet", "dst_daemonset"),
            ("v1", "ReplicationController", "dst_replicationcontroller"),
            ("example.com/v1", "Job", "dst_job"),
            ("example.com/v1", "Weird-Kind.v2", "dst_weird_kind_v2"),
        ] {
            let direct = controller(api_version, kind, "x");
            let workload = top_workload("ns", &direct, Some("abc"), |key| {
                panic!("{kind} of {api_version} is not followed, asked for {key:?}")
            });
            assert_eq!(workload.label, label);
            assert_eq!(workload.name, "x");
        }
    }

    #[test]
    fn only_the_apps_and_batch_groups_are_followed() {
        assert_eq!(
            controller("apps/v1", "ReplicaSet", "a").parent_kind(),
            Some(ParentKind::ReplicaSet)
        );
        assert_eq!(
            controller("batch/v1", "Job", "a").parent_kind(),
            Some(ParentKind::Job)
        );
        assert_eq!(
            controller("extensions/v1beta1", "ReplicaSet", "a").parent_kind(),
            None
        );
        assert_eq!(controller("v1", "Job", "a").parent_kind(), None);
    }
}
