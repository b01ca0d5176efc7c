//! The objects weft adds to a pod, as JSON: the `weft-init` step, the
//! `weft-proxy` sidecar (native or classic) and the identity token volume.
//! Every argument and env var here is the contract in docs/architecture.md
//! that `weft-proxy` reads; change both together.

use serde_json::{Map, Value, json};

use crate::config::{
    ADMIN_PORT, IDENTITY_MOUNT_PATH, IDENTITY_TOKEN_AUDIENCE, IDENTITY_VOLUME_NAME, INBOUND_PORT,
    INIT_CONTAINER_NAME, InjectorConfig, OUTBOUND_PORT, PROXY_CONTAINER_NAME, PROXY_UID, TAP_PORT,
};
use crate::overrides::Settings;
use crate::proxy_env;
use crate::quantity::Quantity;

/// File name of the projected token inside the volume.
const TOKEN_FILE: &str = "token";
/// Lifetime asked of the projected token; the kubelet refreshes it well before.
const TOKEN_EXPIRATION_SECONDS: u32 = 86_400;
/// How long a proxy may take to become ready before the kubelet gives up.
const STARTUP_SECONDS: u32 = 120;

/// The `weft-init` container: installs the iptables redirect, then exits.
pub fn init_container(settings: &Settings) -> Value {
    let mut args = vec![
        "init".to_string(),
        format!("--proxy-uid={PROXY_UID}"),
        format!("--inbound-port={INBOUND_PORT}"),
        format!("--outbound-port={OUTBOUND_PORT}"),
        format!("--admin-port={ADMIN_PORT}"),
        format!("--tap-port={TAP_PORT}"),
    ];
    if !settings.skip_inbound_ports.value.is_empty() {
        args.push(format!(
            "--skip-inbound-ports={}",
            settings.skip_inbound_ports.value
        ));
    }
    if !settings.skip_outbound_ports.value.is_empty() {
        args.push(format!(
            "--skip-outbound-ports={}",
            settings.skip_outbound_ports.value
        ));
    }
    json!({
        "name": INIT_CONTAINER_NAME,
        "image": settings.proxy_image.value,
        "command": ["weft-proxy"],
        "args": args,
        "resources": {
            "requests": {"cpu": "10m", "memory": "10Mi"},
            "limits": {"memory": "50Mi"},
        },
        "securityContext": {
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "runAsUser": 0,
            "runAsNonRoot": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "privileged": false,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    })
}

/// The `weft-proxy` container, shaped for native (init container with
/// `restartPolicy: Always`) or classic (first app container) mode.
pub fn proxy_container(settings: &Settings, config: &InjectorConfig) -> Value {
    let mut container = json!({
        "name": PROXY_CONTAINER_NAME,
        "image": settings.proxy_image.value,
        "command": ["weft-proxy"],
        "args": ["run"],
        "ports": [
            {"name": "weft-proxy", "containerPort": INBOUND_PORT, "protocol": "TCP"},
            {"name": "weft-admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
            {"name": "weft-tap", "containerPort": TAP_PORT, "protocol": "TCP"},
        ],
        "env": env(settings, config),
        "resources": resources(settings),
        "securityContext": {
            "runAsUser": PROXY_UID,
            "runAsGroup": PROXY_UID,
            "runAsNonRoot": true,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "readinessProbe": http_probe("/ready"),
        "livenessProbe": http_probe("/live"),
        "volumeMounts": [{
            "name": IDENTITY_VOLUME_NAME,
            "mountPath": IDENTITY_MOUNT_PATH,
            "readOnly": true,
        }],
    });
    if let Some(fields) = container.as_object_mut() {
        if settings.native_sidecar.value {
            fields.insert("restartPolicy".into(), json!("Always"));
            let mut startup = http_probe("/ready");
            if let Some(probe) = startup.as_object_mut() {
                probe.insert("periodSeconds".into(), json!(1));
                probe.insert("failureThreshold".into(), json!(STARTUP_SECONDS));
            }
            fields.insert("startupProbe".into(), startup);
        } else {
            let timeout = format!("--timeout={STARTUP_SECONDS}s");
            fields.insert(
                "lifecycle".into(),
                json!({"postStart": {"exec": {"command": ["weft-proxy", "await", timeout]}}}),
            );
        }
    }
    container
}

/// The projected ServiceAccount token the proxy shows to identity.
pub fn identity_volume() -> Value {
    json!({
        "name": IDENTITY_VOLUME_NAME,
        "projected": {
            "sources": [{
                "serviceAccountToken": {
                    "audience": IDENTITY_TOKEN_AUDIENCE,
                    "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                    "path": TOKEN_FILE,
                },
            }],
        },
    })
}

fn http_probe(path: &str) -> Value {
    json!({"httpGet": {"path": path, "port": ADMIN_PORT}})
}

fn resources(settings: &Settings) -> Value {
    let pair = |cpu: &Option<Quantity>, memory: &Option<Quantity>| {
        let mut map = Map::new();
        for (resource, quantity) in [("cpu", cpu), ("memory", memory)] {
            if let Some(quantity) = quantity {
                map.insert(resource.into(), json!(quantity.as_str()));
            }
        }
        map
    };
    let requests = pair(
        &settings.proxy_cpu_request.value,
        &settings.proxy_memory_request.value,
    );
    let limits = pair(
        &settings.proxy_cpu_limit.value,
        &settings.proxy_memory_limit.value,
    );
    let mut resources = Map::new();
    if !requests.is_empty() {
        resources.insert("requests".into(), Value::Object(requests));
    }
    if !limits.is_empty() {
        resources.insert("limits".into(), Value::Object(limits));
    }
    Value::Object(resources)
}

fn env(settings: &Settings, config: &InjectorConfig) -> Value {
    let value = |name: &str, value: &str| json!({"name": name, "value": value});
    let field = |name: &str, path: &str| json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}});
    let mut env = vec![
        value(proxy_env::LOG, &settings.proxy_log.value),
        value(
            proxy_env::INBOUND_LISTEN_ADDR,
            &format!("0.0.0.0:{INBOUND_PORT}"),
        ),
        value(
            proxy_env::OUTBOUND_LISTEN_ADDR,
            &format!("127.0.0.1:{OUTBOUND_PORT}"),
        ),
        value(
            proxy_env::ADMIN_LISTEN_ADDR,
            &format!("0.0.0.0:{ADMIN_PORT}"),
        ),
        value(proxy_env::TAP_LISTEN_ADDR, &format!("0.0.0.0:{TAP_PORT}")),
    ];
    if !settings.opaque_ports.value.is_empty() {
        env.push(value(
            proxy_env::OPAQUE_PORTS,
            &settings.opaque_ports.value.to_string(),
        ));
    }
    env.extend([
        value(
            proxy_env::SHUTDOWN_GRACE_PERIOD,
            &config.shutdown_grace_period,
        ),
        field(proxy_env::POD_NAME, "metadata.name"),
        field(proxy_env::POD_NAMESPACE, "metadata.namespace"),
        field(proxy_env::POD_IP, "status.podIP"),
        field(proxy_env::SERVICE_ACCOUNT, "spec.serviceAccountName"),
        field(proxy_env::NODE_NAME, "spec.nodeName"),
        value(proxy_env::IDENTITY_TRUST_DOMAIN, &config.trust_domain),
        value(
            proxy_env::IDENTITY_TOKEN_FILE,
            &format!("{IDENTITY_MOUNT_PATH}/{TOKEN_FILE}"),
        ),
        value(proxy_env::IDENTITY_ADDR, &config.identity_addr),
        value(proxy_env::DESTINATION_ADDR, &config.destination_addr),
        value(proxy_env::TAP_CLIENT_ID, &config.tap_client_id),
    ]);
    if let Some(pem) = &config.trust_anchors_pem {
        env.push(value(proxy_env::TRUST_ANCHORS, pem));
    }
    if settings.require_identity.value {
        env.push(value(proxy_env::INBOUND_REQUIRE_IDENTITY, "true"));
    }
    Value::Array(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overrides::resolve;
    use crate::ports::NamedPorts;
    use k8s_openapi::api::core::v1::{Container, Volume};
    use std::collections::BTreeMap;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        settings_with(pairs, &InjectorConfig::default())
    }

    fn settings_with(pairs: &[(&str, &str)], config: &InjectorConfig) -> Settings {
        let pod: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (format!("config.weft.dev/{k}"), v.to_string()))
            .collect();
        let resolved = resolve(
            &pod,
            "shop",
            &BTreeMap::new(),
            &NamedPorts::default(),
            config,
        );
        match resolved {
            Ok(r) => r.settings,
            Err(e) => panic!("{e}"),
        }
    }

    fn env_names(container: &Value) -> Vec<String> {
        container["env"]
            .as_array()
            .map(|env| {
                env.iter()
                    .filter_map(|e| e["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn init_writes_only_set_skip_lists() {
        let plain = init_container(&settings(&[]));
        assert_eq!(
            plain["args"],
            json!([
                "init",
                "--proxy-uid=2102",
                "--inbound-port=4143",
                "--outbound-port=4140",
                "--admin-port=4191",
                "--tap-port=4190"
            ])
        );
        let skipping = init_container(&settings(&[
            ("skip-inbound-ports", "443,25"),
            ("skip-outbound-ports", "3306"),
        ]));
        let args = skipping["args"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            args[args.len() - 2..],
            [
                json!("--skip-inbound-ports=25,443"),
                json!("--skip-outbound-ports=3306")
            ]
        );
    }

    #[test]
    fn init_gets_net_admin_and_net_raw_only() {
        let init = init_container(&settings(&[]));
        assert_eq!(
            init["securityContext"]["capabilities"],
            json!({"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]})
        );
        assert_eq!(init["securityContext"]["privileged"], json!(false));
        assert!(serde_json::from_value::<Container>(init).is_ok());
    }

    #[test]
    fn native_proxy_has_restart_policy_and_startup_probe() {
        let proxy = proxy_container(&settings(&[]), &InjectorConfig::default());
        assert_eq!(proxy["restartPolicy"], json!("Always"));
        assert_eq!(
            proxy["startupProbe"],
            json!({"httpGet": {"path": "/ready", "port": 4191}, "periodSeconds": 1, "failureThreshold": 120})
        );
        assert!(proxy.get("lifecycle").is_none());
        assert!(serde_json::from_value::<Container>(proxy).is_ok());
    }

    #[test]
    fn classic_proxy_awaits_readiness_after_start() {
        let proxy = proxy_container(
            &settings(&[("native-sidecar", "false")]),
            &InjectorConfig::default(),
        );
        assert!(proxy.get("restartPolicy").is_none());
        assert!(proxy.get("startupProbe").is_none());
        assert_eq!(
            proxy["lifecycle"]["postStart"]["exec"]["command"],
            json!(["weft-proxy", "await", "--timeout=120s"])
        );
    }

    #[test]
    fn proxy_runs_unprivileged_as_2102() {
        let proxy = proxy_container(&settings(&[]), &InjectorConfig::default());
        let sc = &proxy["securityContext"];
        assert_eq!(sc["runAsUser"], json!(2102));
        assert_eq!(sc["runAsNonRoot"], json!(true));
        assert_eq!(sc["readOnlyRootFilesystem"], json!(true));
        assert_eq!(sc["capabilities"], json!({"drop": ["ALL"]}));
    }

    #[test]
    fn env_follows_the_contract() {
        let config = InjectorConfig::default();
        let proxy = proxy_container(&settings(&[]), &config);
        assert_eq!(
            env_names(&proxy),
            [
                "WEFT_PROXY_LOG",
                "WEFT_PROXY_INBOUND_LISTEN_ADDR",
                "WEFT_PROXY_OUTBOUND_LISTEN_ADDR",
                "WEFT_PROXY_ADMIN_LISTEN_ADDR",
                "WEFT_PROXY_TAP_LISTEN_ADDR",
                "WEFT_PROXY_SHUTDOWN_GRACE_PERIOD",
                "WEFT_PROXY_POD_NAME",
                "WEFT_PROXY_POD_NAMESPACE",
                "WEFT_PROXY_POD_IP",
                "WEFT_PROXY_SERVICE_ACCOUNT",
                "WEFT_PROXY_NODE_NAME",
                "WEFT_PROXY_IDENTITY_TRUST_DOMAIN",
                "WEFT_PROXY_IDENTITY_TOKEN_FILE",
                "WEFT_PROXY_IDENTITY_ADDR",
                "WEFT_PROXY_DESTINATION_ADDR",
                "WEFT_PROXY_TAP_CLIENT_ID",
            ]
        );
        assert_eq!(
            proxy["env"][12]["value"],
            json!("/var/run/secrets/weft.dev/identity/token")
        );
        assert_eq!(
            proxy["env"][8]["valueFrom"]["fieldRef"]["fieldPath"],
            json!("status.podIP")
        );
    }

    #[test]
    fn optional_env_only_when_set() {
        let config = InjectorConfig::default().with_trust_anchors("-----BEGIN CERTIFICATE-----");
        let proxy = proxy_container(
            &settings(&[("opaque-ports", "5432"), ("proxy-log-level", "debug")]),
            &config,
        );
        let names = env_names(&proxy);
        assert!(names.contains(&"WEFT_PROXY_OPAQUE_PORTS".to_string()));
        assert_eq!(
            names.last().map(String::as_str),
            Some("WEFT_PROXY_TRUST_ANCHORS")
        );
        assert_eq!(proxy["env"][0]["value"], json!("debug"));
        assert_eq!(
            proxy["env"][5],
            json!({"name": "WEFT_PROXY_OPAQUE_PORTS", "value": "5432"})
        );
    }

    #[test]
    fn required_identity_is_written_only_when_asked() {
        let config = InjectorConfig::default().with_trust_anchors("-----BEGIN CERTIFICATE-----");
        let required = settings_with(&[("require-identity", "true")], &config);
        let proxy = proxy_container(&required, &config);
        let env = proxy["env"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            env.last(),
            Some(&json!({"name": "WEFT_PROXY_INBOUND_REQUIRE_IDENTITY", "value": "true"}))
        );
        for pairs in [&[][..], &[("require-identity", "false")][..]] {
            let proxy = proxy_container(&settings_with(pairs, &config), &config);
            assert!(
                !env_names(&proxy).contains(&"WEFT_PROXY_INBOUND_REQUIRE_IDENTITY".to_string())
            );
        }
    }

    #[test]
    fn resources_follow_the_settings() {
        let proxy = proxy_container(&settings(&[]), &InjectorConfig::default());
        assert_eq!(
            proxy["resources"],
            json!({"requests": {"cpu": "10m", "memory": "20Mi"}, "limits": {"memory": "250Mi"}})
        );
        let proxy = proxy_container(
            &settings(&[("proxy-cpu-limit", "1"), ("proxy-memory-limit", "16Mi")]),
            &InjectorConfig::default(),
        );
        assert_eq!(
            proxy["resources"],
            json!({"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "1", "memory": "16Mi"}})
        );
    }

    #[test]
    fn volume_is_a_projected_token_for_identity() {
        let volume = identity_volume();
        assert_eq!(
            volume["projected"]["sources"][0]["serviceAccountToken"],
            json!({"audience": "identity.weft.dev", "expirationSeconds": 86400, "path": "token"})
        );
        assert!(serde_json::from_value::<Volume>(volume).is_ok());
    }
}
