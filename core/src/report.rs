//! What a plan says to people: the audit annotations the webhook returns to
//! the API server (short keys, values of at most 250 characters) and the
//! multi-line report `weft inject` prints and the golden tests compare.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use json_patch::PatchOperation;

use crate::decision::Decision;
use crate::overrides::Source;
use crate::plan::Plan;

/// Longest audit annotation value; the audit log is not a place for essays.
pub const MAX_AUDIT_VALUE: usize = 250;

/// `injected`: `true` or `false`.
pub const AUDIT_INJECTED: &str = "injected";
/// `reason`: why (the opt-in, or the skip reason in words).
pub const AUDIT_REASON: &str = "reason";
/// `skip`: the skip reason's code (`not-enabled`, `malformed-override`, ...).
pub const AUDIT_SKIP: &str = "skip";
/// `added`: what the patch adds, by place.
pub const AUDIT_ADDED: &str = "added";
/// `overrides`: the overrides in effect and where each came from.
pub const AUDIT_OVERRIDES: &str = "overrides";
/// `sidecar`: `native` or `classic`.
pub const AUDIT_SIDECAR: &str = "sidecar";
/// `digest`: the `weft.dev/inject-digest` value.
pub const AUDIT_DIGEST: &str = "digest";

/// The audit annotations of a plan (keys without the webhook's prefix).
pub fn audit(plan: &Plan) -> BTreeMap<String, String> {
    let mut audit = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        audit.insert(key.to_string(), truncate(&value, MAX_AUDIT_VALUE));
    };
    match &plan.decision {
        Decision::Skip(reason) => {
            put(AUDIT_INJECTED, "false".into());
            put(AUDIT_SKIP, reason.code().into());
            put(AUDIT_REASON, reason.to_string());
        }
        Decision::Inject { reasons } => {
            put(AUDIT_INJECTED, "true".into());
            put(AUDIT_REASON, reasons.first().cloned().unwrap_or_default());
            put(AUDIT_ADDED, added(plan));
            if let Some(settings) = &plan.settings {
                let mode = if settings.native_sidecar.value {
                    "native"
                } else {
                    "classic"
                };
                put(AUDIT_SIDECAR, mode.into());
                let overrides = overrides(settings);
                if !overrides.is_empty() {
                    put(AUDIT_OVERRIDES, overrides);
                }
            }
            if let Some(digest) = &plan.digest {
                put(AUDIT_DIGEST, digest.clone());
            }
        }
    }
    audit
}

/// `initContainers: weft-init, weft-proxy; volumes: weft-identity-token; ...`
fn added(plan: &Plan) -> String {
    // Grouped by the field each op lands in, in patch order.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for op in plan.patch.iter() {
        let PatchOperation::Add(add) = op else {
            continue;
        };
        let mut tokens = add.path.tokens().map(|t| t.decoded().into_owned());
        let (first, second, third) = (tokens.next(), tokens.next(), tokens.next());
        let (group, items) = match (first.as_deref(), second, third) {
            (Some("metadata"), None, None) => {
                for field in ["annotations", "labels"] {
                    let keys = add.value[field]
                        .as_object()
                        .map(|m| m.keys().cloned().collect());
                    push(&mut groups, field.to_string(), keys.unwrap_or_default());
                }
                continue;
            }
            (Some("metadata"), Some(field), None) => {
                let keys = add.value.as_object().map(|m| m.keys().cloned().collect());
                (field, keys.unwrap_or_default())
            }
            (Some("metadata"), Some(field), Some(key)) => (field, vec![key]),
            (Some("spec"), Some(field), _) => (field, names(&add.value)),
            (_, _, _) => (add.path.to_string(), Vec::new()),
        };
        push(&mut groups, group, items);
    }
    let parts: Vec<String> = groups
        .into_iter()
        .map(|(group, mut items)| {
            // Map keys read the same whether added one by one or as a whole map.
            if group == "annotations" || group == "labels" {
                items.sort();
            }
            format!("{group}: {}", items.join(", "))
        })
        .collect();
    parts.join("; ")
}

fn push(groups: &mut Vec<(String, Vec<String>)>, group: String, items: Vec<String>) {
    match groups.iter_mut().find(|(g, _)| *g == group) {
        Some((_, existing)) => existing.extend(items),
        None => groups.push((group, items)),
    }
}

/// The `name`s of a container or volume, or of a list of them.
fn names(value: &serde_json::Value) -> Vec<String> {
    let name = |v: &serde_json::Value| v["name"].as_str().map(String::from);
    match value.as_array() {
        Some(items) => items.iter().filter_map(name).collect(),
        None => name(value).into_iter().collect(),
    }
}

/// `opaque-ports=pod, proxy-memory-request=adjusted`: the non-default settings.
fn overrides(settings: &crate::overrides::Settings) -> String {
    let sources = [
        ("skip-inbound-ports", settings.skip_inbound_ports.source),
        ("skip-outbound-ports", settings.skip_outbound_ports.source),
        ("opaque-ports", settings.opaque_ports.source),
        ("proxy-cpu-request", settings.proxy_cpu_request.source),
        ("proxy-cpu-limit", settings.proxy_cpu_limit.source),
        ("proxy-memory-request", settings.proxy_memory_request.source),
        ("proxy-memory-limit", settings.proxy_memory_limit.source),
        ("proxy-log-level", settings.proxy_log.source),
        ("proxy-image", settings.proxy_image.source),
        ("native-sidecar", settings.native_sidecar.source),
        ("require-identity", settings.require_identity.source),
    ];
    let parts: Vec<String> = sources
        .iter()
        .filter(|(_, source)| *source != Source::Default)
        .map(|(key, source)| {
            let source = match source {
                Source::Pod => "pod",
                Source::Namespace => "namespace",
                Source::Adjusted => "adjusted",
                Source::Default => "default",
            };
            format!("{key}={source}")
        })
        .collect();
    parts.join(", ")
}

/// Cuts `value` to at most `max` characters, marking the cut with `...`.
pub fn truncate(value: &str, max: usize) -> String {
    if value.chars().count() <= max {
        return value.to_string();
    }
    let keep: String = value.chars().take(max.saturating_sub(3)).collect();
    format!("{keep}...")
}

/// The human-readable report of a plan: pod, decision, reasons, warnings,
/// and for an injected pod what the patch adds and its digest.
pub struct Report<'a>(pub &'a Plan);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = self.0;
        writeln!(f, "pod: {}", plan.pod)?;
        match &plan.decision {
            Decision::Inject { .. } => writeln!(f, "decision: inject")?,
            Decision::Skip(reason) => writeln!(f, "decision: skip ({})", reason.code())?,
        }
        writeln!(f, "reasons:")?;
        for reason in plan.reasons() {
            writeln!(f, "  - {reason}")?;
        }
        if plan.warnings.is_empty() {
            writeln!(f, "warnings: none")?;
        } else {
            writeln!(f, "warnings:")?;
            for warning in &plan.warnings {
                writeln!(f, "  - {warning}")?;
            }
        }
        if plan.is_injected() {
            writeln!(f, "added: {}", added(plan))?;
            writeln!(f, "patch: {} add operations", plan.patch.len())?;
        }
        if let Some(digest) = &plan.digest {
            writeln!(f, "digest: {digest}")?;
        }
        Ok(())
    }
}

impl Plan {
    /// The multi-line report `weft inject` prints for this pod.
    pub fn report(&self) -> String {
        let mut out = String::new();
        // Writing to a String never fails.
        let _ = write!(out, "{}", Report(self));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_characters() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdefghijk", 10), "abcdefg...");
        assert_eq!(
            truncate(&"é".repeat(300), MAX_AUDIT_VALUE).chars().count(),
            MAX_AUDIT_VALUE
        );
    }
}
