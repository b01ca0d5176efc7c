//! What the demo prints about one pod: the webhook's decision and reasons as
//! the API server recorded them in its audit log (our `auditAnnotations`, and
//! its own `mutation.`/`patch.webhook.admission.k8s.io` annotations with the
//! JSON patch it applied), the warnings the webhook returns for the pod's
//! template, and the containers of the pod as stored. Pure: built from
//! values the demo has read, so it is tested without a cluster.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::audit::AuditEvent;
use crate::error::{Error, Result};

/// The API server's audit annotation prefixes for a mutating webhook call
/// (`k8s.io/apiserver`'s mutating dispatcher).
const MUTATION_PREFIX: &str = "mutation.webhook.admission.k8s.io/";
const PATCH_PREFIX: &str = "patch.webhook.admission.k8s.io/";
const FAILED_OPEN_PREFIX: &str = "failed-open.mutation.webhook.admission.k8s.io/";
/// Annotations weft writes into an injected pod.
const POD_ANNOTATION_PREFIX: &str = "weft.dev/";

/// What the webhook decided for a pod, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The webhook injected the proxy.
    Injected,
    /// The webhook left the pod as it was; the stable skip code.
    Skipped(String),
    /// The API server recorded no answer from the webhook (not called, or
    /// failed open under `failurePolicy: Ignore`).
    NoAnswer,
}

/// The JSON patch the API server applied, as its audit annotation holds it.
#[derive(Debug, Clone)]
pub struct AppliedPatch {
    /// The audit annotation it came from (`patch.webhook...round_0_index_0`).
    pub key: String,
    /// The RFC 6902 operations.
    pub operations: Value,
}

/// One container of the stored pod, as a line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLine {
    /// The container's name.
    pub name: String,
    /// What it is: its command line, image and sidecar mode.
    pub detail: String,
}

/// Everything the demo shows about one pod.
#[derive(Debug, Clone)]
pub struct PodReport {
    /// `namespace/name` of the pod.
    pub pod: String,
    /// The ReplicaSet that created it.
    pub replica_set: String,
    /// The Deployment that owns the ReplicaSet.
    pub deployment: String,
    /// The decision.
    pub decision: Decision,
    /// Why, in the webhook's words.
    pub reason: Option<String>,
    /// The webhook's warnings for this pod template (shown by `kubectl`).
    pub warnings: Vec<String>,
    /// The audit annotations about this webhook: its own
    /// (`<webhook>/injected`, ...) and the API server's, without the patch.
    pub audit_annotations: BTreeMap<String, String>,
    /// The patch the API server applied, when the webhook changed the pod.
    pub patch: Option<AppliedPatch>,
    /// The stored pod's `weft.dev/*` annotations.
    pub pod_annotations: BTreeMap<String, String>,
    /// The stored pod's init containers, in order.
    pub init_containers: Vec<ContainerLine>,
    /// The stored pod's containers, in order.
    pub containers: Vec<ContainerLine>,
}

impl PodReport {
    /// Builds the report of `pod` (as stored, JSON) from the audit `event`
    /// of its creation and the `warnings` `webhook` returned for its
    /// template. `replica_set` and `deployment` name its owners.
    pub fn new(
        webhook: &str,
        pod: &Value,
        event: &AuditEvent,
        warnings: Vec<String>,
        replica_set: &str,
        deployment: &str,
    ) -> Result<Self> {
        let ours = format!("{webhook}/");
        let mut audit_annotations = BTreeMap::new();
        let mut patch = None;
        for (key, value) in &event.annotations {
            if key.starts_with(&ours) {
                audit_annotations.insert(key.clone(), value.clone());
            } else if key.starts_with(PATCH_PREFIX) {
                let record: Value = serde_json::from_str(value).map_err(|source| Error::Json {
                    what: format!("the audit annotation {key}"),
                    source,
                })?;
                // The keys sort by round, so the first is the call that
                // built the pod (weft never asks to be reinvoked).
                if record["webhook"] == webhook && patch.is_none() {
                    let operations = record.get("patch").cloned().ok_or_else(|| {
                        Error::Demo(format!("the audit annotation {key} holds no patch"))
                    })?;
                    patch = Some(AppliedPatch {
                        key: key.clone(),
                        operations,
                    });
                }
            } else if key.starts_with(MUTATION_PREFIX) {
                let record: Value = serde_json::from_str(value).unwrap_or(Value::Null);
                if record["webhook"] == webhook {
                    audit_annotations.insert(key.clone(), value.clone());
                }
            } else if key.starts_with(FAILED_OPEN_PREFIX) && value == webhook {
                audit_annotations.insert(key.clone(), value.clone());
            }
        }
        let ours_get = |k: &str| audit_annotations.get(&format!("{ours}{k}")).cloned();
        let decision = match ours_get("injected").as_deref() {
            Some("true") => Decision::Injected,
            Some(_) => Decision::Skipped(ours_get("skip").unwrap_or_else(|| "unknown".into())),
            None => Decision::NoAnswer,
        };
        let metadata = &pod["metadata"];
        let name = metadata["name"].as_str().unwrap_or_default();
        let namespace = metadata["namespace"].as_str().unwrap_or_default();
        let pod_annotations = metadata["annotations"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with(POD_ANNOTATION_PREFIX))
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(PodReport {
            pod: format!("{namespace}/{name}"),
            replica_set: replica_set.to_string(),
            deployment: deployment.to_string(),
            reason: ours_get("reason"),
            decision,
            warnings,
            audit_annotations,
            patch,
            pod_annotations,
            init_containers: container_lines(&pod["spec"]["initContainers"]),
            containers: container_lines(&pod["spec"]["containers"]),
        })
    }

    /// The value of the webhook's own audit annotation `key` (`added`, ...).
    pub fn audit(&self, webhook: &str, key: &str) -> Option<&str> {
        self.audit_annotations
            .get(&format!("{webhook}/{key}"))
            .map(String::as_str)
    }

    /// The patch, pretty-printed with a heading naming where it came from.
    pub fn render_patch(&self) -> String {
        let Some(patch) = &self.patch else {
            return "No patch: the API server recorded no change by the webhook for this pod.\n"
                .to_string();
        };
        let ops = patch
            .operations
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let all_add = ops.iter().all(|op| op["op"] == "add");
        let pretty = serde_json::to_string_pretty(&patch.operations)
            .unwrap_or_else(|_| patch.operations.to_string());
        format!(
            "The JSON patch the API server applied to {} (RFC 6902; {} operations, {}), \
             from its audit annotation {}:\n{pretty}\n",
            self.pod,
            ops.len(),
            if all_add {
                "all `add`"
            } else {
                "not all `add`"
            },
            patch.key,
        )
    }

    /// The report: decision, reasons, warnings, containers, annotations.
    pub fn render(&self, webhook: &str) -> String {
        let mut s = String::new();
        let decision = match &self.decision {
            Decision::Injected => "injected".to_string(),
            Decision::Skipped(code) => format!("skipped ({code})"),
            Decision::NoAnswer => "no answer recorded from the webhook".to_string(),
        };
        let none = || "none".to_string();
        let _ = writeln!(s, "Pod {}", self.pod);
        let _ = writeln!(
            s,
            "  created by   ReplicaSet {} of deployment/{}",
            self.replica_set, self.deployment
        );
        let _ = writeln!(s, "  decision     {decision}");
        let _ = writeln!(
            s,
            "  why          {}",
            self.reason.clone().unwrap_or_else(none)
        );
        for (label, key) in [
            ("added", "added"),
            ("sidecar", "sidecar"),
            ("overrides", "overrides"),
        ] {
            if self.decision == Decision::Injected {
                let value = self.audit(webhook, key).map(str::to_string);
                let _ = writeln!(s, "  {label:<12} {}", value.unwrap_or_else(none));
            }
        }
        if self.warnings.is_empty() {
            let _ = writeln!(s, "  warnings     none");
        } else {
            for (i, w) in self.warnings.iter().enumerate() {
                let label = if i == 0 { "warnings" } else { "" };
                let _ = writeln!(s, "  {label:<12} {w}");
            }
        }
        let _ = writeln!(s, "  init containers (in start order):");
        for c in &self.init_containers {
            let _ = writeln!(s, "    {:<12} {}", c.name, c.detail);
        }
        if self.init_containers.is_empty() {
            let _ = writeln!(s, "    none");
        }
        let _ = writeln!(s, "  containers:");
        for c in &self.containers {
            let _ = writeln!(s, "    {:<12} {}", c.name, c.detail);
        }
        if !self.pod_annotations.is_empty() {
            let _ = writeln!(s, "  pod annotations written by weft:");
            for (k, v) in &self.pod_annotations {
                let _ = writeln!(s, "    {k}: {v}");
            }
        }
        let _ = writeln!(
            s,
            "  audit annotations on the pod's create event (kube-apiserver audit log):"
        );
        if self.audit_annotations.is_empty() {
            let _ = writeln!(s, "    none about {webhook}");
        }
        for (k, v) in &self.audit_annotations {
            let _ = writeln!(s, "    {k}: {v}");
        }
        if let Some(patch) = &self.patch {
            let _ = writeln!(s, "    {}: (the patch above)", patch.key);
        }
        s
    }
}

/// A report line per container of a pod's `containers` or `initContainers`.
fn container_lines(list: &Value) -> Vec<ContainerLine> {
    list.as_array()
        .map(|items| items.iter().map(container_line).collect())
        .unwrap_or_default()
}

fn container_line(c: &Value) -> ContainerLine {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let command: Vec<String> = strings(&c["command"])
        .into_iter()
        .chain(strings(&c["args"]))
        .collect();
    let mut parts = Vec::new();
    if !command.is_empty() {
        parts.push(format!("runs `{}`", command.join(" ")));
    }
    if let Some(image) = c["image"].as_str() {
        parts.push(format!("image {image}"));
    }
    let caps = strings(&c["securityContext"]["capabilities"]["add"]);
    if !caps.is_empty() {
        parts.push(format!("adds {}", caps.join(", ")));
    }
    if c["restartPolicy"] == "Always" {
        parts.push("native sidecar (restartPolicy: Always)".to_string());
    }
    ContainerLine {
        name: c["name"].as_str().unwrap_or_default().to_string(),
        detail: parts.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const WEBHOOK: &str = "inject.weft.dev";

    fn event(annotations: &[(&str, String)]) -> AuditEvent {
        serde_json::from_value(json!({
            "stage": "ResponseComplete",
            "verb": "create",
            "annotations": annotations.iter().cloned().collect::<BTreeMap<_, _>>(),
        }))
        .expect("event")
    }

    fn injected_pod() -> Value {
        json!({
            "metadata": {
                "name": "web-abc", "namespace": "demo",
                "annotations": {"weft.dev/injected-by": "weft-injector v0.1.0", "other": "x"}
            },
            "spec": {
                "initContainers": [
                    {"name": "weft-init", "image": "proxy:1", "command": ["weft-proxy"],
                     "args": ["init", "--proxy-uid=2102"],
                     "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}}},
                    {"name": "weft-proxy", "image": "proxy:1", "command": ["weft-proxy"],
                     "args": ["run"], "restartPolicy": "Always"}
                ],
                "containers": [{"name": "web", "image": "web:1"}]
            }
        })
    }

    fn recorded() -> AuditEvent {
        let patch = json!({
            "configuration": "weft-injector", "webhook": WEBHOOK, "patchType": "JSONPatch",
            "patch": [{"op": "add", "path": "/spec/initContainers", "value": [{"name": "weft-proxy"}]}]
        });
        event(&[
            ("inject.weft.dev/injected", "true".into()),
            (
                "inject.weft.dev/reason",
                "namespace \"demo\" is annotated weft.dev/inject=enabled".into(),
            ),
            (
                "inject.weft.dev/added",
                "initContainers: weft-init, weft-proxy".into(),
            ),
            ("inject.weft.dev/sidecar", "native".into()),
            (
                "mutation.webhook.admission.k8s.io/round_0_index_0",
                json!({"configuration": "weft-injector", "webhook": WEBHOOK, "mutated": true})
                    .to_string(),
            ),
            (
                "mutation.webhook.admission.k8s.io/round_0_index_1",
                json!({"configuration": "other", "webhook": "other.example.com", "mutated": false})
                    .to_string(),
            ),
            (
                "patch.webhook.admission.k8s.io/round_0_index_0",
                patch.to_string(),
            ),
            ("authorization.k8s.io/decision", "allow".into()),
        ])
    }

    #[test]
    fn an_injected_pod_reports_decision_containers_and_patch() {
        let report = PodReport::new(
            WEBHOOK,
            &injected_pod(),
            &recorded(),
            vec![],
            "web-1",
            "web",
        )
        .expect("report");
        assert_eq!(report.decision, Decision::Injected);
        assert_eq!(report.pod, "demo/web-abc");
        let patch = report.patch.as_ref().expect("patch");
        assert_eq!(patch.key, "patch.webhook.admission.k8s.io/round_0_index_0");
        assert_eq!(patch.operations[0]["op"], "add");
        // Only what concerns our webhook: not the other webhook's, not RBAC's.
        assert!(
            report
                .audit_annotations
                .contains_key("mutation.webhook.admission.k8s.io/round_0_index_0")
        );
        assert!(
            !report
                .audit_annotations
                .contains_key("mutation.webhook.admission.k8s.io/round_0_index_1")
        );
        assert!(
            !report
                .audit_annotations
                .contains_key("authorization.k8s.io/decision")
        );
        assert_eq!(report.pod_annotations.len(), 1);

        let text = report.render(WEBHOOK);
        assert!(text.contains("decision     injected"), "{text}");
        assert!(
            text.contains("weft-init    runs `weft-proxy init --proxy-uid=2102`"),
            "{text}"
        );
        assert!(text.contains("adds NET_ADMIN, NET_RAW"), "{text}");
        assert!(
            text.contains("weft-proxy   runs `weft-proxy run`; image proxy:1; native sidecar"),
            "{text}"
        );
        assert!(text.contains("warnings     none"), "{text}");
        let patch_text = report.render_patch();
        assert!(
            patch_text.contains("1 operations, all `add`"),
            "{patch_text}"
        );
        assert!(patch_text.contains("\"weft-proxy\""), "{patch_text}");
    }

    #[test]
    fn a_skipped_pod_reports_its_code_and_no_patch() {
        let skipped = event(&[
            ("inject.weft.dev/injected", "false".into()),
            ("inject.weft.dev/skip", "not-enabled".into()),
            ("inject.weft.dev/reason", "not enabled".into()),
        ]);
        let pod = json!({"metadata": {"name": "p", "namespace": "n"},
                         "spec": {"containers": [{"name": "app"}]}});
        let warnings = vec!["weft: something".to_string()];
        let report = PodReport::new(WEBHOOK, &pod, &skipped, warnings, "rs", "d").expect("report");
        assert_eq!(report.decision, Decision::Skipped("not-enabled".into()));
        assert!(report.patch.is_none());
        let text = report.render(WEBHOOK);
        assert!(text.contains("skipped (not-enabled)"), "{text}");
        assert!(text.contains("warnings     weft: something"), "{text}");
        assert!(report.render_patch().starts_with("No patch"));
    }

    #[test]
    fn no_answer_and_a_failed_open_call_are_told_apart_from_a_skip() {
        let failed = event(&[(
            "failed-open.mutation.webhook.admission.k8s.io/round_0_index_0",
            WEBHOOK.into(),
        )]);
        let pod = json!({"metadata": {"name": "p", "namespace": "n"}, "spec": {}});
        let report = PodReport::new(WEBHOOK, &pod, &failed, vec![], "rs", "d").expect("report");
        assert_eq!(report.decision, Decision::NoAnswer);
        assert_eq!(report.audit_annotations.len(), 1);
    }

    #[test]
    fn a_patch_annotation_that_is_not_json_is_an_error() {
        let broken = event(&[("patch.webhook.admission.k8s.io/round_0_index_0", "{".into())]);
        let pod = json!({"metadata": {}, "spec": {}});
        assert!(PodReport::new(WEBHOOK, &pod, &broken, vec![], "rs", "d").is_err());
    }
}
