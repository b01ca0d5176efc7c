//! The pure planner: pod + namespace annotations + config -> decision + patch.
//!
//! The pod is read through `k8s_openapi`'s `Pod` (so a pod that does not parse
//! is refused with serde's message), but the patch is built against the raw
//! JSON, so fields this crate does not know are never touched.

use std::collections::BTreeMap;

use json_patch::jsonptr::{Pointer, PointerBuf, Token};
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::InjectorConfig;
use crate::config::PROXY_UID;
use crate::containers::{identity_volume, init_container, proxy_container};
use crate::decision::{Decision, INJECT_ANNOTATION, Object, SkipReason, admit, quote};
use crate::digest::inject_digest;
use crate::overrides::{Settings, resolve};
use crate::ports::NamedPorts;

/// Annotation with the proxy version.
pub const PROXY_VERSION_ANNOTATION: &str = "weft.dev/proxy-version";
/// Annotation naming what injected the pod (webhook or CLI, with version).
pub const INJECTED_BY_ANNOTATION: &str = "weft.dev/injected-by";
/// Annotation with the digest of the injection inputs.
pub const DIGEST_ANNOTATION: &str = "weft.dev/inject-digest";
/// Label selecting meshed pods; its value is the control-plane namespace.
pub const CONTROL_PLANE_LABEL: &str = "weft.dev/control-plane-ns";

/// The result of planning one pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Whether the pod is injected, and why.
    pub decision: Decision,
    /// RFC 6902 patch against the pod; empty unless the decision is `Inject`.
    pub patch: json_patch::Patch,
    /// Invalid weft annotations and other things a user should see (`kubectl` warnings).
    pub warnings: Vec<String>,
    /// Summary for the API server's audit log (keys without the webhook prefix).
    pub audit: BTreeMap<String, String>,
    /// `namespace/name` of the pod (`name-*` for a generated name), for reports.
    pub pod: String,
    /// The `weft.dev/inject-digest` value, when injected.
    pub digest: Option<String>,
    /// The effective settings, when injected.
    pub settings: Option<Settings>,
}

/// Why a pod could not be planned at all (not a pod, unparsable).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Not a JSON object, or not a Pod `k8s_openapi` can read.
    #[error("the object is not a valid Pod: {0}")]
    InvalidPod(String),
}

/// Plans the injection of `pod` (a Pod as JSON, as the API server sends it)
/// in namespace `namespace` whose annotations are `namespace_annotations`.
///
/// An empty `namespace` means the pod's `metadata.namespace`, else `default`
/// (as `kubectl` would). A pod template (no `kind`) plans like a pod.
pub fn plan(
    pod: &serde_json::Value,
    namespace: &str,
    namespace_annotations: &BTreeMap<String, String>,
    config: &InjectorConfig,
) -> Result<Plan, PlanError> {
    let Value::Object(raw) = pod else {
        return Err(PlanError::InvalidPod(format!(
            "expected a JSON object, got {}",
            json_kind(pod)
        )));
    };
    let parsed = Pod::deserialize(pod).map_err(|e| PlanError::InvalidPod(e.to_string()))?;
    let Some(spec) = parsed.spec.as_ref() else {
        return Err(PlanError::InvalidPod("the pod has no spec".to_string()));
    };
    let meta = &parsed.metadata;
    let namespace = match (namespace, meta.namespace.as_deref()) {
        ("", Some(ns)) if !ns.is_empty() => ns,
        ("", _) => "default",
        (ns, _) => ns,
    };
    let pod_name = pod_label(
        namespace,
        meta.name.as_deref(),
        meta.generate_name.as_deref(),
    );
    let no_annotations = BTreeMap::new();
    let pod_annotations = meta.annotations.as_ref().unwrap_or(&no_annotations);

    let skip = |reason: SkipReason, warnings: Vec<String>| {
        Ok(Plan::skipped(pod_name.clone(), reason, warnings))
    };
    let enabled_by = match admit(
        spec,
        pod_annotations,
        namespace,
        namespace_annotations,
        config,
    ) {
        Ok(object) => object,
        Err(reason) => return skip(reason, Vec::new()),
    };
    let named_ports = NamedPorts::from_spec(spec);
    let resolved = match resolve(
        pod_annotations,
        namespace,
        namespace_annotations,
        &named_ports,
        config,
    ) {
        Ok(resolved) => resolved,
        // Typos are worth showing even when a malformed value skips the pod.
        Err(reason) => {
            let unknown =
                crate::overrides::unknown_keys(pod_annotations, namespace, namespace_annotations);
            return skip(reason, unknown);
        }
    };
    let settings = resolved.settings;
    let digest = inject_digest(config, &settings);

    let mut warnings = resolved.warnings;
    warnings.extend(uid_warnings(spec));
    let mut builder = PatchBuilder::default();
    let metadata_warnings = builder.metadata(raw, config, &digest);
    warnings.extend(metadata_warnings);
    builder.spec(raw, &settings, config);

    let mut reasons = vec![match &enabled_by {
        Object::Pod => format!("the pod is annotated {INJECT_ANNOTATION}=enabled"),
        Object::Namespace(ns) => {
            format!("namespace {ns:?} is annotated {INJECT_ANNOTATION}=enabled")
        }
    }];
    let mode = if settings.native_sidecar.value {
        "native"
    } else {
        "classic"
    };
    reasons.push(format!("sidecar mode: {mode}"));
    reasons.extend(resolved.notes);

    let mut plan = Plan {
        decision: Decision::Inject { reasons },
        patch: Patch(builder.ops),
        warnings,
        audit: BTreeMap::new(),
        pod: pod_name,
        digest: Some(digest),
        settings: Some(settings),
    };
    plan.audit = crate::report::audit(&plan);
    Ok(plan)
}

impl Plan {
    fn skipped(pod: String, reason: SkipReason, mut warnings: Vec<String>) -> Self {
        if reason.is_warning() {
            warnings.insert(0, format!("weft: pod not injected: {reason}"));
        }
        let mut plan = Plan {
            decision: Decision::Skip(reason),
            patch: Patch::default(),
            warnings,
            audit: BTreeMap::new(),
            pod,
            digest: None,
            settings: None,
        };
        plan.audit = crate::report::audit(&plan);
        plan
    }

    /// The decision's reasons: why the pod is injected (and with which
    /// overrides), or the one reason it is not.
    pub fn reasons(&self) -> Vec<String> {
        match &self.decision {
            Decision::Inject { reasons } => reasons.clone(),
            Decision::Skip(reason) => vec![reason.to_string()],
        }
    }

    /// True when the patch injects the pod.
    pub fn is_injected(&self) -> bool {
        self.decision.is_inject()
    }
}

/// Rewrites every path of `patch` to sit under `prefix`, so a pod patch
/// applies to a template: `/spec/template` (Deployment, StatefulSet,
/// DaemonSet, ReplicaSet, Job) or `/spec/jobTemplate/spec/template` (CronJob).
///
/// `prefix` is a JSON pointer; text that is not one (no leading `/`) is read
/// as `/`-separated plain keys.
pub fn prefix_patch(patch: &json_patch::Patch, prefix: &str) -> json_patch::Patch {
    let prefix = match Pointer::parse(prefix) {
        Ok(pointer) => pointer.to_buf(),
        Err(_) => {
            PointerBuf::from_tokens(prefix.split('/').filter(|t| !t.is_empty()).map(Token::new))
        }
    };
    let under = |path: &Pointer| prefix.concat(path);
    let ops = patch
        .iter()
        .map(|op| {
            let mut op = op.clone();
            match &mut op {
                PatchOperation::Add(o) => o.path = under(&o.path),
                PatchOperation::Remove(o) => o.path = under(&o.path),
                PatchOperation::Replace(o) => o.path = under(&o.path),
                PatchOperation::Test(o) => o.path = under(&o.path),
                PatchOperation::Move(o) => {
                    o.path = under(&o.path);
                    o.from = under(&o.from);
                }
                PatchOperation::Copy(o) => {
                    o.path = under(&o.path);
                    o.from = under(&o.from);
                }
            }
            op
        })
        .collect();
    Patch(ops)
}

/// Collects `add` operations; paths are built from plain keys, so `/` and `~`
/// in annotation keys are escaped (`~1`, `~0`) by `Token`.
#[derive(Default)]
struct PatchBuilder {
    ops: Vec<PatchOperation>,
}

impl PatchBuilder {
    fn add(&mut self, path: &[&str], value: Value) {
        self.ops.push(PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(path.iter().copied().map(Token::new)),
            value,
        }));
    }

    /// Adds the review annotations and the label. A key the user already set
    /// is left as written (the patch never replaces), with a warning.
    fn metadata(
        &mut self,
        pod: &Map<String, Value>,
        config: &InjectorConfig,
        digest: &str,
    ) -> Vec<String> {
        let annotations = [
            (PROXY_VERSION_ANNOTATION, config.proxy_version.as_str()),
            (INJECTED_BY_ANNOTATION, config.injected_by.as_str()),
            (DIGEST_ANNOTATION, digest),
        ];
        let labels = [(CONTROL_PLANE_LABEL, config.control_plane_namespace.as_str())];
        let Some(Value::Object(metadata)) = pod.get("metadata") else {
            self.add(
                &["metadata"],
                json!({"annotations": to_map(&annotations), "labels": to_map(&labels)}),
            );
            return Vec::new();
        };
        let mut warnings = self.map_keys(metadata, "annotations", &annotations);
        warnings.extend(self.map_keys(metadata, "labels", &labels));
        warnings
    }

    fn map_keys(
        &mut self,
        metadata: &Map<String, Value>,
        field: &str,
        entries: &[(&str, &str)],
    ) -> Vec<String> {
        let Some(Value::Object(existing)) = metadata.get(field) else {
            self.add(&["metadata", field], to_map(entries));
            return Vec::new();
        };
        let mut warnings = Vec::new();
        for (key, value) in entries {
            match existing.get(*key) {
                None => self.add(&["metadata", field, key], json!(value)),
                Some(Value::String(current)) if current == value => {}
                Some(current) => {
                    let current = current.as_str().map_or_else(|| current.to_string(), quote);
                    let kind = if field == "labels" {
                        "label"
                    } else {
                        "annotation"
                    };
                    warnings.push(format!(
                        "weft: {kind} {key} was already set to {current} before injection and is left as it is"
                    ));
                }
            }
        }
        warnings
    }

    /// Adds the containers and the volume, in the documented places.
    fn spec(&mut self, pod: &Map<String, Value>, settings: &Settings, config: &InjectorConfig) {
        let spec = pod.get("spec").and_then(Value::as_object);
        let list = |name: &str| spec.and_then(|s| s.get(name)).filter(|v| v.is_array());
        let init = init_container(settings);
        let proxy = proxy_container(settings, config);
        if settings.native_sidecar.value {
            // Both first, so the user's init containers run with the redirect
            // in place and the proxy ready.
            self.extend(
                "initContainers",
                list("initContainers"),
                vec![init, proxy],
                true,
            );
        } else {
            // After the user's init containers, which therefore run unredirected.
            self.extend("initContainers", list("initContainers"), vec![init], false);
            self.extend("containers", list("containers"), vec![proxy], true);
        }
        self.extend("volumes", list("volumes"), vec![identity_volume()], false);
    }

    /// Inserts `items` into the list `/spec/<name>` at its front or end, or
    /// adds the list whole when the pod has none.
    fn extend(&mut self, name: &str, existing: Option<&Value>, items: Vec<Value>, front: bool) {
        if existing.is_none() {
            self.add(&["spec", name], Value::Array(items));
            return;
        }
        for (index, item) in items.into_iter().enumerate() {
            let position = if front {
                index.to_string()
            } else {
                "-".to_string()
            };
            self.add(&["spec", name, &position], item);
        }
    }
}

fn to_map(entries: &[(&str, &str)]) -> Value {
    Value::Object(
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
    )
}

/// Containers running as the proxy's UID bypass the redirect, silently.
fn uid_warnings(spec: &PodSpec) -> Vec<String> {
    let pod_uid = spec.security_context.as_ref().and_then(|sc| sc.run_as_user);
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| {
            let uid = c.security_context.as_ref().and_then(|sc| sc.run_as_user).or(pod_uid);
            uid == Some(i64::from(PROXY_UID))
        })
        .map(|c| {
            format!(
                "weft: container {:?} runs as UID {PROXY_UID}, the proxy's own UID, so its traffic bypasses the proxy",
                c.name
            )
        })
        .collect()
}

fn pod_label(namespace: &str, name: Option<&str>, generate_name: Option<&str>) -> String {
    match (name, generate_name) {
        (Some(name), _) if !name.is_empty() => format!("{namespace}/{name}"),
        (_, Some(prefix)) if !prefix.is_empty() => format!("{namespace}/{prefix}*"),
        _ => format!("{namespace}/(unnamed)"),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
