//! Keeping the user's key order in injected objects.
//!
//! The patch is applied to a `serde_json::Value`, whose maps sort their keys;
//! printed as is, every injected Deployment would come out shuffled
//! (`containers[0]` starting with `image:` instead of `name:`), which makes
//! the diff against the input hard to review. This rebuilds the patched object
//! in the input's order: keys the input had keep their place, keys the patch
//! added follow them. In what the patch added, a `name` comes first, where a
//! reader of a container or volume looks for it.

use serde_yaml::{Mapping, Value};

/// Returns `patched` with the key order of `original` wherever the two share
/// a key. List items are matched by their `name` (containers, env, volumes,
/// ports: the patch inserts at the front, so positions shift), else by
/// position when the list kept its length.
pub fn ordered_like(original: &Value, patched: Value) -> Value {
    match (original, patched) {
        (Value::Mapping(original), Value::Mapping(patched)) => {
            Value::Mapping(ordered_mapping(original, patched))
        }
        (Value::Sequence(original), Value::Sequence(patched)) => {
            let same_length = original.len() == patched.len();
            Value::Sequence(
                patched
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let template = same_name(original, &item)
                            .or_else(|| same_length.then(|| original.get(i)).flatten());
                        match template {
                            Some(template) => ordered_like(template, item),
                            None => added(item),
                        }
                    })
                    .collect(),
            )
        }
        (_, patched) => patched,
    }
}

fn ordered_mapping(original: &Mapping, mut patched: Mapping) -> Mapping {
    let mut out = Mapping::with_capacity(patched.len());
    for (key, original_value) in original {
        // `shift_remove` keeps the rest in order, so the added keys below
        // come out in the order the patch produced them.
        if let Some(value) = patched.shift_remove(key) {
            out.insert(key.clone(), ordered_like(original_value, value));
        }
    }
    for (key, value) in patched {
        out.insert(key, added(value));
    }
    out
}

/// Something the patch added: its own order, but with every `name` first.
fn added(value: Value) -> Value {
    match value {
        Value::Mapping(mut mapping) => {
            let mut out = Mapping::with_capacity(mapping.len());
            if let Some(name) = mapping.shift_remove("name") {
                out.insert(Value::from("name"), added(name));
            }
            for (key, value) in mapping {
                out.insert(key, added(value));
            }
            Value::Mapping(out)
        }
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(added).collect()),
        other => other,
    }
}

/// The item of `original` with the same `name` as `item`, if both have one.
fn same_name<'a>(original: &'a [Value], item: &Value) -> Option<&'a Value> {
    let name = item.get("name").and_then(Value::as_str)?;
    original
        .iter()
        .find(|candidate| candidate.get("name").and_then(Value::as_str) == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).expect("valid test YAML")
    }

    /// What the CLI does: through `serde_json::Value` (sorted), and back.
    fn through_json(value: &Value) -> Value {
        let json = serde_json::to_value(value).expect("JSON-compatible");
        serde_yaml::to_value(json).expect("YAML-compatible")
    }

    #[test]
    fn unchanged_objects_come_back_identical() {
        let original = yaml(
            "kind: Deployment\nmetadata: {name: web, labels: {z: '1', a: '2'}}\n\
             spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: w:1\n        ports: [{name: http, containerPort: 80}]\n",
        );
        let shuffled = through_json(&original);
        assert_ne!(
            serde_yaml::to_string(&shuffled).ok(),
            serde_yaml::to_string(&original).ok()
        );
        let restored = ordered_like(&original, shuffled);
        assert_eq!(
            serde_yaml::to_string(&restored).ok(),
            serde_yaml::to_string(&original).ok()
        );
    }

    #[test]
    fn added_keys_and_items_follow_the_original_ones() {
        let original = yaml("spec:\n  containers:\n  - name: app\n    image: a:1\n");
        let patched = yaml(
            "spec:\n  containers:\n  - {args: [run], name: proxy}\n  - {image: a:1, name: app}\n  volumes: []\n",
        );
        let out = ordered_like(&original, patched);
        let text = serde_yaml::to_string(&out).expect("serializes");
        assert_eq!(
            text,
            "spec:\n  containers:\n  - name: proxy\n    args:\n    - run\n  - name: app\n    image: a:1\n  volumes: []\n"
        );
    }

    #[test]
    fn scalars_and_mismatched_shapes_take_the_patched_value() {
        assert_eq!(ordered_like(&yaml("1"), yaml("2")), yaml("2"));
        assert_eq!(ordered_like(&yaml("[1]"), yaml("{a: 1}")), yaml("{a: 1}"));
        assert_eq!(
            ordered_like(&yaml("[{b: 1, a: 2}]"), yaml("[{a: 2, b: 1}, {c: 3}]")),
            yaml("[{a: 2, b: 1}, {c: 3}]"),
        );
    }
}
