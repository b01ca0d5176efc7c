//! Injecting one document: find its pod, ask the planner (the same library
//! the webhook uses), apply the patch to a copy, and record what happened.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::json;
use serde_yaml::Value;
use weft_core::decision::INJECT_ANNOTATION;
use weft_core::{Decision, InjectorConfig, SkipReason};

use super::order::ordered_like;
use super::workload::{Kind, Workload, classify, display_name, metadata_str};

/// What happened to one workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The object's kind, as written (`Deployment`).
    pub kind: String,
    /// Its name (see `display_name`).
    pub name: String,
    /// The namespace it was planned in.
    pub namespace: String,
    /// Injected or skipped, and why.
    pub outcome: Outcome,
    /// The planner's warnings (invalid weft annotations).
    pub warnings: Vec<String>,
    /// The patch that was applied, rooted at the object (not its pod); set
    /// only when the workload was injected.
    pub patch: Option<json_patch::Patch>,
}

/// Whether a workload was injected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Injected; the reasons come from the planner.
    Injected { reasons: Vec<String> },
    /// Left unchanged, for this reason.
    Skipped { reason: String },
}

impl Report {
    /// `deployment/web`, as `kubectl` names it.
    pub fn workload(&self) -> String {
        format!("{}/{}", self.kind.to_ascii_lowercase(), self.name)
    }

    /// The entry `--patch` prints for this workload, if it was injected.
    pub fn patch_entry(&self) -> Option<serde_json::Value> {
        let patch = self.patch.as_ref()?;
        Some(json!({
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "patch": patch,
        }))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (ns {}): ", self.workload(), self.namespace)?;
        match &self.outcome {
            Outcome::Injected { reasons } if reasons.is_empty() => f.write_str("injected"),
            Outcome::Injected { reasons } => write!(f, "injected — {}", reasons.join("; ")),
            Outcome::Skipped { reason } => write!(f, "skipped: {reason}"),
        }
    }
}

/// An injected object that cannot be produced. Both are bugs (the planner
/// plans against this very object), reported instead of printing a
/// half-injected object.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{workload}: the planned patch does not apply: {source}")]
    Patch {
        workload: String,
        #[source]
        source: json_patch::PatchError,
    },
    #[error("{workload}: the injected object cannot be written back: {source}")]
    Convert {
        workload: String,
        #[source]
        source: serde_yaml::Error,
    },
}

/// The planner's answer for one workload, in the CLI's terms.
enum Planned {
    /// Inject: apply `patch` to `object` (the workload as JSON).
    Inject {
        object: serde_json::Value,
        patch: json_patch::Patch,
        reasons: Vec<String>,
        warnings: Vec<String>,
    },
    /// Leave the workload as written.
    Skip {
        reason: String,
        warnings: Vec<String>,
    },
}

/// Injects documents with one configuration.
#[derive(Debug)]
pub struct Injector {
    config: InjectorConfig,
    default_namespace: String,
    /// Annotations of the `Namespace` objects met in the input, by name.
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

impl Injector {
    /// An injector that plans objects without a namespace in `default_namespace`.
    pub fn new(config: InjectorConfig, default_namespace: String) -> Self {
        Self {
            config,
            default_namespace,
            namespaces: BTreeMap::new(),
        }
    }

    /// Remembers the annotations of every `Namespace` in `documents` (and in
    /// their lists), so a namespace-wide `config.weft.dev/*` override in the
    /// same input applies to its workloads, as it would in the cluster.
    pub fn learn_namespaces<'a>(&mut self, documents: impl IntoIterator<Item = &'a Value>) {
        for document in documents {
            match classify(document) {
                Kind::Namespace => {
                    let Some(name) = metadata_str(document, "name") else {
                        continue;
                    };
                    let annotations = document
                        .get("metadata")
                        .and_then(|m| m.get("annotations"))
                        .and_then(Value::as_mapping)
                        .into_iter()
                        .flatten()
                        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                        .collect();
                    self.namespaces.insert(name.to_owned(), annotations);
                }
                Kind::List => {
                    if let Some(items) = document.get("items").and_then(Value::as_sequence) {
                        self.learn_namespaces(items);
                    }
                }
                Kind::Workload(_) | Kind::Other => {}
            }
        }
    }

    /// Injects `document` (a workload, a list of them, or anything else, which
    /// comes back unchanged), appending one report per workload.
    pub fn inject(&self, document: Value, reports: &mut Vec<Report>) -> Result<Value, ApplyError> {
        match classify(&document) {
            Kind::Workload(Workload { kind, pod_pointer }) => {
                let kind = kind.to_owned();
                self.inject_workload(document, kind, pod_pointer, reports)
            }
            Kind::List => {
                let mut document = document;
                if let Some(Value::Sequence(items)) = document.get_mut("items") {
                    for item in items.iter_mut() {
                        let taken = std::mem::take(item);
                        *item = self.inject(taken, reports)?;
                    }
                }
                Ok(document)
            }
            Kind::Namespace | Kind::Other => Ok(document),
        }
    }

    fn inject_workload(
        &self,
        document: Value,
        kind: String,
        pod_pointer: &str,
        reports: &mut Vec<Report>,
    ) -> Result<Value, ApplyError> {
        let namespace = metadata_str(&document, "namespace")
            .unwrap_or(&self.default_namespace)
            .to_owned();
        let name = display_name(&document);
        let (outcome, warnings, injection) =
            match self.plan_workload(&document, pod_pointer, &namespace) {
                Planned::Skip { reason, warnings } => (Outcome::Skipped { reason }, warnings, None),
                Planned::Inject {
                    object,
                    patch,
                    reasons,
                    warnings,
                } => (
                    Outcome::Injected { reasons },
                    warnings,
                    Some((object, patch)),
                ),
            };
        let mut report = Report {
            kind,
            name,
            namespace,
            outcome,
            warnings,
            patch: None,
        };
        let Some((mut object, patch)) = injection else {
            reports.push(report);
            return Ok(document);
        };
        json_patch::patch(&mut object, &patch).map_err(|source| ApplyError::Patch {
            workload: report.workload(),
            source,
        })?;
        let patched = serde_yaml::to_value(object).map_err(|source| ApplyError::Convert {
            workload: report.workload(),
            source,
        })?;
        report.patch = Some(patch);
        reports.push(report);
        Ok(ordered_like(&document, patched))
    }

    /// Plans the pod of `document`; the patch it returns is rooted at the
    /// object, ready for the JSON copy it comes with.
    fn plan_workload(&self, document: &Value, pod_pointer: &str, namespace: &str) -> Planned {
        let skip = |reason: String| Planned::Skip {
            reason,
            warnings: Vec::new(),
        };
        // YAML allows what JSON does not (non-string keys); such an object
        // cannot be planned, but it can still be passed through.
        let object = match serde_json::to_value(document) {
            Ok(object) => object,
            Err(err) => return skip(format!("not representable as JSON: {err}")),
        };
        let pod = match pod_of(&object, pod_pointer) {
            Ok(pod) => pod,
            Err(reason) => return skip(reason),
        };
        let annotations = self.namespace_annotations(namespace);
        let plan = match weft_core::plan(&pod, namespace, &annotations, &self.config) {
            Ok(plan) => plan,
            Err(err) => return skip(err.to_string()),
        };
        match plan.decision {
            Decision::Inject { reasons } => Planned::Inject {
                patch: weft_core::plan::prefix_patch(&plan.patch, pod_pointer),
                object,
                reasons: self.cli_reasons(reasons, namespace),
                warnings: plan.warnings,
            },
            Decision::Skip(reason) => {
                // The planner repeats a skip that needs the user's attention
                // as a warning (for `kubectl`); here the report line says it.
                let repeated = format!("weft: pod not injected: {reason}");
                Planned::Skip {
                    reason: skip_reason(&reason),
                    warnings: plan
                        .warnings
                        .into_iter()
                        .filter(|w| *w != repeated)
                        .collect(),
                }
            }
        }
    }

    /// The planner's reasons as `weft inject` tells them: when the namespace's
    /// opt-in is the one this command supplied, the reason citing it would
    /// name an annotation nobody wrote, so it says who asked instead.
    fn cli_reasons(&self, mut reasons: Vec<String>, namespace: &str) -> Vec<String> {
        let written = self
            .namespaces
            .get(namespace)
            .and_then(|a| a.get(INJECT_ANNOTATION))
            .is_some_and(|value| value == "enabled");
        if !written {
            let supplied =
                format!("namespace {namespace:?} is annotated {INJECT_ANNOTATION}=enabled");
            if let Some(reason) = reasons.iter_mut().find(|r| **r == supplied) {
                *reason = "requested with weft inject".to_owned();
            }
        }
        reasons
    }

    /// The namespace's annotations as the planner sees them: those of a
    /// `Namespace` in the input, if any, with injection enabled, because
    /// running `weft inject` is itself the opt-in. A workload's own
    /// `weft.dev/inject: disabled` still wins.
    fn namespace_annotations(&self, namespace: &str) -> BTreeMap<String, String> {
        let mut annotations = self.namespaces.get(namespace).cloned().unwrap_or_default();
        annotations.insert(INJECT_ANNOTATION.to_owned(), "enabled".to_owned());
        annotations
    }
}

/// A skip reason for the report; a re-injection says so in the words a user
/// looks for.
fn skip_reason(reason: &SkipReason) -> String {
    match reason {
        SkipReason::AlreadyInjected => {
            "already injected (it has a weft-proxy container)".to_owned()
        }
        other => other.to_string(),
    }
}

/// The pod the planner sees for `object`: the object itself for a Pod, else a
/// Pod built from the template's `metadata` and `spec` (only those it has, so
/// the planner's paths line up with the template's).
fn pod_of(object: &serde_json::Value, pod_pointer: &str) -> Result<serde_json::Value, String> {
    if pod_pointer.is_empty() {
        return Ok(object.clone());
    }
    let field = pod_pointer.trim_start_matches('/').replace('/', ".");
    let template = object
        .pointer(pod_pointer)
        .ok_or_else(|| format!("no pod template ({field})"))?
        .as_object()
        .ok_or_else(|| format!("{field} is not an object"))?;
    let mut pod = serde_json::Map::new();
    pod.insert("apiVersion".into(), "v1".into());
    pod.insert("kind".into(), "Pod".into());
    for key in ["metadata", "spec"] {
        if let Some(value) = template.get(key) {
            pod.insert(key.into(), value.clone());
        }
    }
    Ok(serde_json::Value::Object(pod))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_of_a_template_has_only_its_metadata_and_spec() {
        let deployment = json!({
            "kind": "Deployment",
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}},
        });
        assert_eq!(
            pod_of(&deployment, "/spec/template"),
            Ok(json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": []},
            }))
        );
        let bare = json!({"kind": "Job", "spec": {"template": {"spec": {}}}});
        assert_eq!(
            pod_of(&bare, "/spec/template"),
            Ok(json!({"apiVersion": "v1", "kind": "Pod", "spec": {}}))
        );
    }

    #[test]
    fn missing_or_malformed_templates_are_reasons() {
        assert_eq!(
            pod_of(&json!({"spec": {}}), "/spec/jobTemplate/spec/template"),
            Err("no pod template (spec.jobTemplate.spec.template)".to_owned())
        );
        assert_eq!(
            pod_of(&json!({"spec": {"template": "nginx"}}), "/spec/template"),
            Err("spec.template is not an object".to_owned())
        );
    }

    #[test]
    fn report_lines() {
        let mut report = Report {
            kind: "Deployment".into(),
            name: "web".into(),
            namespace: "emojivoto".into(),
            outcome: Outcome::Injected {
                reasons: vec!["a".into(), "b".into()],
            },
            warnings: vec![],
            patch: None,
        };
        assert_eq!(
            report.to_string(),
            "deployment/web (ns emojivoto): injected — a; b"
        );
        assert_eq!(report.patch_entry(), None);
        report.outcome = Outcome::Skipped {
            reason: "hostNetwork".into(),
        };
        assert_eq!(
            report.to_string(),
            "deployment/web (ns emojivoto): skipped: hostNetwork"
        );
    }

    #[test]
    fn namespace_objects_feed_the_planner_with_injection_forced_on() {
        let documents: Vec<Value> = vec![
            serde_yaml::from_str(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n    weft.dev/inject: disabled\n    config.weft.dev/proxy-log-level: debug\n",
            )
            .expect("valid"),
            serde_yaml::from_str(
                "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: other}}\n",
            )
            .expect("valid"),
        ];
        let mut injector = Injector::new(InjectorConfig::for_cli(), "default".into());
        injector.learn_namespaces(&documents);
        let shop = injector.namespace_annotations("shop");
        assert_eq!(
            shop.get(INJECT_ANNOTATION).map(String::as_str),
            Some("enabled")
        );
        assert_eq!(
            shop.get("config.weft.dev/proxy-log-level")
                .map(String::as_str),
            Some("debug")
        );
        assert_eq!(injector.namespace_annotations("other").len(), 1);
        assert_eq!(injector.namespace_annotations("default").len(), 1);
    }
}
