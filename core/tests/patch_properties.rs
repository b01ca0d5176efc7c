//! Properties of the planner over generated pods: the patch only adds, always
//! applies, never loses a field the user wrote, yields a valid Pod, and
//! planning the patched pod again gives an empty patch.

mod planner_support;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use weft_core::{Decision, InjectorConfig, SkipReason, plan};

use planner_support::{apply, container_names, contains, only_adds};

/// A map or list field as the API server may send it: absent, `null`, or present.
#[derive(Clone, Debug)]
enum Field {
    Absent,
    Null,
    Present(Value),
}

impl Field {
    fn set(self, object: &mut Map<String, Value>, key: &str) {
        match self {
            Field::Absent => {}
            Field::Null => {
                object.insert(key.to_string(), Value::Null);
            }
            Field::Present(value) => {
                object.insert(key.to_string(), value);
            }
        }
    }
}

fn field(present: impl Strategy<Value = Value>) -> impl Strategy<Value = Field> {
    prop_oneof![
        1 => Just(Field::Absent),
        1 => Just(Field::Null),
        4 => present.prop_map(Field::Present),
    ]
}

/// Keys that are awkward in JSON pointers or collide with what weft writes.
fn annotation_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z]{1,8}(\\.[a-z]{1,5})?/[a-zA-Z0-9~/._-]{1,12}",
        1 => Just("a/b~c".to_string()),
        1 => Just("~0~1".to_string()),
        1 => Just("weft.dev/proxy-version".to_string()),
        1 => Just("weft.dev/inject-digest".to_string()),
        1 => Just("weft.dev/control-plane-ns".to_string()),
        1 => Just("config.weft.dev/opaque-port".to_string()),
        1 => Just("".to_string()),
    ]
}

/// Overrides, mostly valid for their key, sometimes malformed.
fn override_pair() -> impl Strategy<Value = (String, String)> {
    let valid = prop_oneof![
        Just(("skip-inbound-ports", "25,8000-8100")),
        Just(("skip-inbound-ports", "http")),
        Just(("skip-outbound-ports", "3306, 5432")),
        Just(("opaque-ports", "grpc,6379")),
        Just(("proxy-cpu-request", "100m")),
        Just(("proxy-cpu-limit", "1")),
        Just(("proxy-memory-request", "64Mi")),
        Just(("proxy-memory-limit", "5Mi")),
        Just(("proxy-log-level", "warn,weft_proxy=debug")),
        Just(("proxy-image", "registry.local/proxy:dev")),
        Just(("native-sidecar", "false")),
        Just(("native-sidecar", "true")),
    ]
    .prop_map(|(k, v)| (k.to_string(), v.to_string()));
    let key = prop_oneof![
        Just("skip-inbound-ports"),
        Just("opaque-ports"),
        Just("proxy-cpu-request"),
        Just("proxy-memory-limit"),
        Just("proxy-log-level"),
        Just("native-sidecar"),
    ];
    let malformed = (
        key,
        prop_oneof![
            Just("8100-8000".to_string()),
            Just("lots".to_string()),
            "\\PC{0,12}"
        ],
    )
        .prop_map(|(k, v)| (k.to_string(), v));
    prop_oneof![6 => valid, 1 => malformed].prop_map(|(k, v)| (format!("config.weft.dev/{k}"), v))
}

fn annotations() -> impl Strategy<Value = Value> {
    let inject = option::of(prop_oneof![
        4 => Just("enabled".to_string()),
        1 => Just("disabled".to_string()),
        1 => "\\PC{0,8}",
    ]);
    (
        btree_map(annotation_key(), "\\PC{0,16}", 0..5),
        vec(override_pair(), 0..3),
        inject,
    )
        .prop_map(|(mut map, overrides, inject)| {
            map.extend(overrides);
            if let Some(value) = inject {
                map.insert("weft.dev/inject".to_string(), value);
            }
            json!(map)
        })
}

fn container_port() -> impl Strategy<Value = Value> {
    (
        option::of(prop_oneof![Just("http"), Just("grpc"), Just("metrics")]),
        prop_oneof![40 => 1i32..10_000, 1 => Just(4191), 1 => Just(4143)],
        option::of(prop_oneof![Just("TCP"), Just("UDP")]),
    )
        .prop_map(|(name, port, protocol)| {
            let mut p = json!({"containerPort": port});
            if let Some(name) = name {
                p["name"] = json!(name);
            }
            if let Some(protocol) = protocol {
                p["protocol"] = json!(protocol);
            }
            p
        })
}

fn container() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        30 => "[a-z][a-z0-9-]{0,10}",
        1 => Just("weft-init".to_string()),
    ];
    (
        name,
        field(vec(container_port(), 0..3).prop_map(Value::from)),
        field(vec(("[A-Z_]{1,8}", "\\PC{0,10}"), 0..4).prop_map(|env| {
            json!(
                env.into_iter()
                    .map(|(n, v)| json!({"name": n, "value": v}))
                    .collect::<Vec<_>>()
            )
        })),
        option::of(prop_oneof![Just(0i64), Just(1000), Just(2102)]),
        any::<bool>(),
    )
        .prop_map(|(name, ports, env, uid, unknown)| {
            let mut c = Map::new();
            c.insert("name".into(), json!(name));
            c.insert("image".into(), json!(format!("{name}:1")));
            ports.set(&mut c, "ports");
            env.set(&mut c, "env");
            if let Some(uid) = uid {
                c.insert("securityContext".into(), json!({"runAsUser": uid}));
            }
            if unknown {
                // A field this crate's Pod type does not know must survive as is.
                c.insert("x-future-field".into(), json!({"nested": [1, "two", null]}));
            }
            Value::Object(c)
        })
}

fn volume() -> impl Strategy<Value = Value> {
    prop_oneof![
        30 => "[a-z][a-z0-9-]{0,10}",
        1 => Just("weft-identity-token".to_string()),
    ]
    .prop_map(|name| json!({"name": name, "emptyDir": {}}))
}

fn pod() -> impl Strategy<Value = Value> {
    let metadata = (
        option::of("[a-z][a-z0-9-]{0,10}"),
        option::of("[a-z][a-z0-9-]{0,10}-"),
        field(annotations()),
        field(btree_map(annotation_key(), "[a-z0-9]{0,8}", 0..4).prop_map(|m| json!(m))),
    );
    let spec = (
        field(vec(container(), 0..4).prop_map(Value::from)),
        field(vec(container(), 0..3).prop_map(Value::from)),
        field(vec(volume(), 0..3).prop_map(Value::from)),
        prop_oneof![6 => Just(None), 2 => Just(Some(false)), 1 => Just(Some(true))],
    );
    (option::of(metadata), spec).prop_map(
        |(metadata, (containers, init, volumes, host_network))| {
            let mut pod = Map::new();
            if let Some((name, generate_name, annotations, labels)) = metadata {
                let mut m = Map::new();
                if let Some(name) = name {
                    m.insert("name".into(), json!(name));
                }
                if let Some(prefix) = generate_name {
                    m.insert("generateName".into(), json!(prefix));
                }
                annotations.set(&mut m, "annotations");
                labels.set(&mut m, "labels");
                pod.insert("metadata".into(), Value::Object(m));
            }
            let mut s = Map::new();
            containers.set(&mut s, "containers");
            init.set(&mut s, "initContainers");
            volumes.set(&mut s, "volumes");
            if let Some(host_network) = host_network {
                s.insert("hostNetwork".into(), json!(host_network));
            }
            pod.insert("spec".into(), Value::Object(s));
            Value::Object(pod)
        },
    )
}

fn namespace() -> impl Strategy<Value = (String, BTreeMap<String, String>)> {
    let name = prop_oneof![
        12 => Just("shop".to_string()),
        1 => Just("kube-system".to_string()),
        1 => Just("weft".to_string()),
    ];
    let annotations = prop_oneof![
        3 => Just(BTreeMap::from([("weft.dev/inject".to_string(), "enabled".to_string())])),
        1 => Just(BTreeMap::new()),
        1 => btree_map(prop_oneof![Just("weft.dev/inject".to_string()), Just("config.weft.dev/proxy-cpu-limit".to_string())], "\\PC{0,8}", 0..2),
    ];
    (name, annotations)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn patch_only_adds_and_keeps_every_user_field(pod in pod(), (ns, ns_annotations) in namespace()) {
        let config = InjectorConfig::default();
        let planned = plan(&pod, &ns, &ns_annotations, &config);
        let planned = match planned {
            Ok(planned) => planned,
            Err(e) => return Err(TestCaseError::fail(format!("generated pods are valid: {e}"))),
        };
        prop_assert!(only_adds(&planned.patch), "every op is add: {}", planned.patch);
        let patched = apply(&pod, &planned.patch);
        prop_assert!(patched.is_ok(), "patch applies: {:?}\n{}", patched.as_ref().err(), planned.patch);
        let patched = patched.unwrap_or_default();
        prop_assert!(contains(&pod, &patched), "user fields survive\npod: {pod}\npatched: {patched}");
        prop_assert!(serde_json::from_value::<Pod>(patched.clone()).is_ok(), "patched pod parses");

        match &planned.decision {
            Decision::Inject { .. } => {
                let all: Vec<String> = container_names(&patched, "initContainers")
                    .into_iter()
                    .chain(container_names(&patched, "containers"))
                    .collect();
                prop_assert_eq!(all.iter().filter(|n| *n == "weft-proxy").count(), 1);
                prop_assert_eq!(all.iter().filter(|n| *n == "weft-init").count(), 1);
            }
            Decision::Skip(_) => prop_assert!(planned.patch.is_empty()),
        }
        for value in planned.audit.values() {
            prop_assert!(value.chars().count() <= 250);
        }

        // Idempotent: a re-submitted pod gets an empty patch.
        let again = plan(&patched, &ns, &ns_annotations, &config);
        let again = match again {
            Ok(again) => again,
            Err(e) => return Err(TestCaseError::fail(format!("patched pod plans: {e}"))),
        };
        prop_assert!(again.patch.is_empty(), "second patch: {}", again.patch);
        if planned.decision.is_inject() {
            prop_assert_eq!(again.decision, Decision::Skip(SkipReason::AlreadyInjected));
        }
    }

    #[test]
    fn arbitrary_json_never_panics(value in arbitrary_json()) {
        let config = InjectorConfig::default();
        let enabled = BTreeMap::from([("weft.dev/inject".to_string(), "enabled".to_string())]);
        let _ = plan(&value, "shop", &enabled, &config);
        let wrapped = json!({"metadata": {"annotations": value.clone()}, "spec": {"containers": [value]}});
        let _ = plan(&wrapped, "shop", &enabled, &config);
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::from),
            btree_map(
                prop_oneof![
                    Just("spec".to_string()),
                    Just("containers".to_string()),
                    Just("name".to_string()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| json!(m)),
        ]
    })
}

/// How often the generator reaches the injecting branch, so the properties
/// above are not vacuous.
#[test]
fn generated_pods_are_often_injected() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let config = InjectorConfig::default();
    let strategy = (pod(), namespace());
    let mut outcomes: BTreeMap<&'static str, usize> = BTreeMap::new();
    for _ in 0..500 {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let (pod, (ns, ns_annotations)) = tree.current();
        let outcome = match plan(&pod, &ns, &ns_annotations, &config).map(|p| p.decision) {
            Ok(Decision::Inject { .. }) => "inject",
            Ok(Decision::Skip(reason)) => reason.code(),
            Err(_) => "error",
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    let injected = outcomes.get("inject").copied().unwrap_or_default();
    assert!(
        injected >= 150,
        "only {injected} of 500 generated pods were injected: {outcomes:?}"
    );
    assert!(!outcomes.contains_key("error"), "{outcomes:?}");
}
