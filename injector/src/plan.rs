//! The pure planner: pod + namespace annotations + config -> decision + patch.
//! Planner helper owns this file.

use std::collections::BTreeMap;

use crate::{Decision, InjectorConfig};

/// The result of planning one pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub decision: Decision,
    /// RFC 6902 patch against the pod; empty unless the decision is `Inject`.
    pub patch: json_patch::Patch,
    /// Invalid weft annotations and other things a user should see (`kubectl` warnings).
    pub warnings: Vec<String>,
    /// Summary for the API server's audit log (keys without the webhook prefix).
    pub audit: BTreeMap<String, String>,
}

/// Why a pod could not be planned at all (not a pod, unparsable).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the object is not a valid Pod: {0}")]
    InvalidPod(String),
}

/// Plans the injection of `pod` (a Pod as JSON, as the API server sends it)
/// in namespace `namespace` whose annotations are `namespace_annotations`.
pub fn plan(
    _pod: &serde_json::Value,
    _namespace: &str,
    _namespace_annotations: &BTreeMap<String, String>,
    _config: &InjectorConfig,
) -> Result<Plan, PlanError> {
    Err(PlanError::InvalidPod("planner not written yet".into()))
}
