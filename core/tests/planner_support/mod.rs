//! Helpers shared by the planner's integration tests: the "nothing the user
//! wrote is lost" check and patch application.

use json_patch::PatchOperation;
use serde_json::Value;

/// True when everything in `original` survives in `patched`: objects keep
/// every key with a contained value, arrays keep their elements in order (as
/// a subsequence, so insertions anywhere are fine), scalars are equal.
///
/// A `null` in the original counts as unset, as the API server reads it, so
/// adding a map or list where the user wrote `null` is not a loss.
pub fn contains(original: &Value, patched: &Value) -> bool {
    match (original, patched) {
        (Value::Null, _) => true,
        (Value::Object(orig), Value::Object(new)) => orig
            .iter()
            .all(|(key, value)| new.get(key).is_some_and(|v| contains(value, v))),
        (Value::Array(orig), Value::Array(new)) => {
            let mut rest = new.iter();
            orig.iter()
                .all(|item| rest.any(|candidate| contains(item, candidate)))
        }
        (a, b) => a == b,
    }
}

/// True when every operation of `patch` is an `add`.
pub fn only_adds(patch: &json_patch::Patch) -> bool {
    patch.iter().all(|op| matches!(op, PatchOperation::Add(_)))
}

/// Applies `patch` to a copy of `pod`.
pub fn apply(pod: &Value, patch: &json_patch::Patch) -> Result<Value, json_patch::PatchError> {
    let mut doc = pod.clone();
    json_patch::patch(&mut doc, patch)?;
    Ok(doc)
}

/// Names of the containers in `list` (`containers` or `initContainers`) of a pod.
pub fn container_names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::contains;
    use serde_json::json;

    #[test]
    fn contains_checks_keys_order_and_values() {
        assert!(contains(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!contains(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!contains(&json!({"a": 1}), &json!({})));
        assert!(contains(&json!([1, 2]), &json!([0, 1, 5, 2])));
        assert!(!contains(&json!([1, 2]), &json!([2, 1])));
        assert!(!contains(&json!([1, 1]), &json!([1])));
        assert!(contains(&json!({"a": null}), &json!({"a": {"b": 1}})));
        assert!(!contains(&json!("x"), &json!(null)));
    }
}
