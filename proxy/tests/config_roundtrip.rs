//! The pod contract, round-tripped: for generated pods and injector
//! settings, the planner's patch gives the `weft-proxy` container an
//! environment, and the proxy's own configuration reader, given that
//! environment (the downward-API fields filled in as the kubelet would),
//! reads back exactly the settings the planner decided. A name, port or
//! grammar that drifts between the injector and the proxy fails here, not
//! only in the e2e suite.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use weft_core::config::{ADMIN_PORT, INBOUND_PORT, OUTBOUND_PORT, PROXY_CONTAINER_NAME, TAP_PORT};
use weft_core::{Decision, InjectorConfig, plan};
use weft_proxy::run::{Config, ConfigError, Env};

/// The environment the kubelet gives the container: plain values, and the
/// downward-API fields resolved from `fields`.
struct PodEnv(HashMap<String, String>);

impl Env for PodEnv {
    fn var(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        Ok(self.0.get(name).filter(|v| !v.is_empty()).cloned())
    }
}

fn container_env(pod: &Value, fields: &BTreeMap<&str, &str>) -> Option<PodEnv> {
    let spec = pod.get("spec")?;
    let proxy = ["initContainers", "containers"]
        .iter()
        .filter_map(|list| spec.get(list)?.as_array())
        .flatten()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(PROXY_CONTAINER_NAME))?;
    let mut env = HashMap::new();
    for var in proxy.get("env")?.as_array()? {
        let name = var.get("name")?.as_str()?.to_string();
        let value = match var.get("value") {
            Some(v) => v.as_str()?.to_string(),
            None => {
                let path = var.pointer("/valueFrom/fieldRef/fieldPath")?.as_str()?;
                (*fields.get(path)?).to_string()
            }
        };
        env.insert(name, value);
    }
    Some(PodEnv(env))
}

/// Port ranges, as a user may write them in `config.weft.dev/opaque-ports`.
fn port_ranges() -> impl Strategy<Value = Vec<(u16, u16)>> {
    proptest::collection::vec((1u16..=65_000, 0u16..=40), 0..5)
        .prop_map(|ranges| ranges.into_iter().map(|(lo, len)| (lo, lo + len)).collect())
}

fn log_level() -> impl Strategy<Value = Option<&'static str>> {
    proptest::option::of(prop_oneof![
        Just("error"),
        Just("warn"),
        Just("info"),
        Just("debug"),
        Just("trace"),
        Just("warn,weft_proxy=debug"),
    ])
}

fn grace() -> impl Strategy<Value = (&'static str, Duration)> {
    prop_oneof![
        Just(("5s", Duration::from_secs(5))),
        Just(("30s", Duration::from_secs(30))),
        Just(("2m", Duration::from_secs(120))),
        Just(("1500ms", Duration::from_millis(1500))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_proxy_reads_back_what_the_planner_decided(
        opaque in port_ranges(),
        log in log_level(),
        require_identity in proptest::option::of(any::<bool>()),
        native in any::<bool>(),
        trust_domain in prop_oneof![Just("cluster.local"), Just("prod.example.org")],
        (grace_text, grace_duration) in grace(),
        anchors in proptest::option::of(Just("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")),
    ) {
        // require-identity needs mesh identity: the injector refuses it
        // without trust anchors (its own test covers that refusal).
        let require_identity = require_identity.filter(|r| !*r || anchors.is_some());
        let mut annotations = serde_json::Map::new();
        if !opaque.is_empty() {
            let list: Vec<String> = opaque.iter().map(|(lo, hi)| format!("{lo}-{hi}")).collect();
            annotations.insert("config.weft.dev/opaque-ports".into(), list.join(",").into());
        }
        if let Some(level) = log {
            annotations.insert("config.weft.dev/proxy-log-level".into(), level.into());
        }
        if let Some(required) = require_identity {
            annotations.insert("config.weft.dev/require-identity".into(), required.to_string().into());
        }
        if !native {
            annotations.insert("config.weft.dev/native-sidecar".into(), "false".into());
        }
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "annotations": annotations},
            "spec": {"serviceAccountName": "web", "containers": [
                {"name": "app", "image": "app:1", "ports": [{"name": "http", "containerPort": 8080}]}
            ]},
        });
        let mut config = InjectorConfig::new("weft", trust_domain);
        config.shutdown_grace_period = grace_text.to_string();
        config.trust_anchors_pem = anchors.map(str::to_string);
        let namespace = BTreeMap::from([("weft.dev/inject".to_string(), "enabled".to_string())]);

        let planned = plan(&pod, "shop", &namespace, &config).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(matches!(planned.decision, Decision::Inject { .. }), "{:?}", planned.decision);
        let settings = planned.settings.clone().ok_or_else(|| TestCaseError::fail("no settings"))?;
        let mut patched = pod.clone();
        json_patch::patch(&mut patched, &planned.patch).map_err(|e| TestCaseError::fail(e.to_string()))?;

        let fields = BTreeMap::from([
            ("metadata.name", "web-1"),
            ("metadata.namespace", "shop"),
            ("status.podIP", "10.89.0.5"),
            ("spec.serviceAccountName", "web"),
            ("spec.nodeName", "weft-node"),
        ]);
        let env = container_env(&patched, &fields).ok_or_else(|| TestCaseError::fail("no weft-proxy env"))?;
        let read = Config::from_env(&env).map_err(|e| TestCaseError::fail(e.to_string()))?;

        prop_assert_eq!(&read.log, &settings.proxy_log.value);
        prop_assert_eq!(read.opaque_ports.to_string(), settings.opaque_ports.value.to_string());
        for &(lo, hi) in &opaque {
            for port in [lo.saturating_sub(1), lo, hi, hi.saturating_add(1)] {
                if port > 0 {
                    prop_assert_eq!(read.opaque_ports.contains(port), settings.opaque_ports.value.contains(port), "port {}", port);
                }
            }
        }
        prop_assert_eq!(read.identity.inbound_require_identity, settings.require_identity.value);
        prop_assert_eq!(read.identity.inbound_require_identity, require_identity == Some(true));
        prop_assert_eq!(read.shutdown_grace, grace_duration);
        prop_assert_eq!(read.inbound_addr.port(), INBOUND_PORT);
        prop_assert_eq!(read.outbound_addr.port(), OUTBOUND_PORT);
        prop_assert!(read.outbound_addr.ip().is_loopback());
        prop_assert_eq!(read.admin_addr.port(), ADMIN_PORT);
        prop_assert_eq!(read.tap_addr.port(), TAP_PORT);
        prop_assert_eq!(read.identity.trust_domain.as_deref(), Some(trust_domain));
        prop_assert_eq!(read.identity.identity_addr.as_deref(), Some(config.identity_addr.as_str()));
        prop_assert_eq!(read.identity.destination_addr.as_deref(), Some(config.destination_addr.as_str()));
        prop_assert_eq!(read.identity.tap_client_id.as_deref(), Some(config.tap_client_id.as_str()));
        prop_assert_eq!(read.identity.trust_anchors.as_deref(), anchors);
        prop_assert_eq!(read.pod.name.as_deref(), Some("web-1"));
        prop_assert_eq!(read.pod.namespace.as_deref(), Some("shop"));
        prop_assert_eq!(read.pod.service_account.as_deref(), Some("web"));
        prop_assert_eq!(read.pod.ip, Some(std::net::IpAddr::from([10, 89, 0, 5])));
        prop_assert_eq!(read.pod.node_name.as_deref(), Some("weft-node"));
    }
}
