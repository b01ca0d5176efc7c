//! The `weft.dev/inject-digest` value: SHA-256 over the canonical JSON of
//! every input that decided a patch (version, injector config, effective
//! overrides and their origins, sidecar mode). Two pods with the same digest
//! were injected identically; a changed digest after a rollout says the
//! injection inputs changed, not only the app.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::config::InjectorConfig;
use crate::overrides::Settings;

/// The inputs the digest covers, in one value.
#[derive(Serialize)]
struct Inputs<'a> {
    version: &'a str,
    config: &'a InjectorConfig,
    overrides: &'a Settings,
    sidecar: &'a str,
}

/// `sha256:<hex>` of the inputs that decided a patch.
pub fn inject_digest(config: &InjectorConfig, settings: &Settings) -> String {
    let inputs = Inputs {
        version: &config.proxy_version,
        config,
        overrides: settings,
        sidecar: if settings.native_sidecar.value {
            "native"
        } else {
            "classic"
        },
    };
    // Serialising plain structs of strings, numbers and options cannot fail;
    // `Null` would still hash deterministically if it ever did.
    let value = serde_json::to_value(&inputs).unwrap_or(Value::Null);
    sha256_hex(canonical_json(&value).as_bytes())
}

/// `sha256:` followed by the lower-case hex digest of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in hash {
        // Writing to a String never fails.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// JSON with object keys sorted and no whitespace, independent of how
/// `serde_json` was built (its `preserve_order` feature keeps insertion order).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overrides::resolve;
    use crate::ports::NamedPorts;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let pod: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (format!("config.weft.dev/{k}"), v.to_string()))
            .collect();
        match resolve(
            &pod,
            "shop",
            &BTreeMap::new(),
            &NamedPorts::default(),
            &InjectorConfig::default(),
        ) {
            Ok(r) => r.settings,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = json!({"b": 1, "a": {"d": [true, null, "x\"y"], "c": 2.5}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":2.5,"d":[true,null,"x\"y"]},"b":1}"#
        );
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn same_inputs_same_digest() {
        let config = InjectorConfig::default();
        let a = inject_digest(&config, &settings(&[("opaque-ports", "25,443")]));
        let b = inject_digest(&config, &settings(&[("opaque-ports", "443, 25")]));
        assert_eq!(a, b, "two spellings of one list inject the same pod");
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64);
    }

    #[test]
    fn every_input_changes_the_digest() {
        let config = InjectorConfig::default();
        let base = inject_digest(&config, &settings(&[]));
        let changed = [
            inject_digest(&config, &settings(&[("opaque-ports", "25")])),
            inject_digest(&config, &settings(&[("native-sidecar", "false")])),
            inject_digest(&config, &settings(&[("proxy-memory-limit", "16Mi")])),
            inject_digest(&config.clone().with_trust_anchors("PEM"), &settings(&[])),
            inject_digest(
                &config.clone().with_injected_by("weft-cli v0"),
                &settings(&[]),
            ),
        ];
        for digest in changed {
            assert_ne!(digest, base);
        }
        // Where a value came from is an input too: pod and namespace differ.
        let pod = settings(&[("proxy-log-level", "debug")]);
        let mut from_namespace = pod.clone();
        from_namespace.proxy_log.source = crate::overrides::Source::Namespace;
        assert_ne!(
            inject_digest(&config, &pod),
            inject_digest(&config, &from_namespace)
        );
    }
}
