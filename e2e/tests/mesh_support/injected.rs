//! What the injector gives a meshed pod, taken from its own planner: the
//! suite plans each pod with `weft_core::plan`, applies the patch, and runs
//! `weft-proxy init` with the `weft-init` container's arguments and
//! `weft-proxy run` with the `weft-proxy` container's environment. The
//! downward API's fields are filled in as the kubelet would; the token path
//! is the one thing replaced (the rig has no projected volume). So a change
//! on either side of the contract in `docs/architecture.md` breaks this
//! suite, not only the unit tests on each side.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::{Value, json};
use weft_core::{Decision, InjectorConfig, plan};

use super::{APP_PORT, NAMESPACE, TRUST_DOMAIN, TestResult};

/// The node name the proxies are given (`spec.nodeName`).
pub const NODE_NAME: &str = "rig";

/// The pod as the kubelet sees it: what the downward API reads.
pub struct PodFacts<'a> {
    pub name: &'a str,
    pub service_account: &'a str,
    pub ip: Ipv4Addr,
}

/// The injected `weft-init` arguments and `weft-proxy` environment.
#[derive(Debug)]
pub struct Injected {
    /// `weft-proxy` arguments of the init container (`init ...`).
    pub init_args: Vec<String>,
    /// `weft-proxy run`'s environment, every variable resolved.
    pub env: Vec<(String, String)>,
}

/// Plans the suite's application pod for `pod` with the webhook's defaults
/// and `anchors_pem`, and returns what the kubelet would run; the token
/// file is `token_file`.
pub fn injected(pod: &PodFacts<'_>, anchors_pem: &str, token_file: &Path) -> TestResult<Injected> {
    let spec = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": NAMESPACE, "labels": {"app": pod.service_account}},
        "spec": {
            "serviceAccountName": pod.service_account,
            "containers": [{
                "name": "app",
                "image": "registry.invalid/app:e2e",
                "ports": [{"name": "http", "containerPort": APP_PORT}],
            }],
        },
    });
    let config = InjectorConfig::new("weft", TRUST_DOMAIN).with_trust_anchors(anchors_pem);
    let enabled = BTreeMap::from([("weft.dev/inject".to_owned(), "enabled".to_owned())]);
    let planned = plan(&spec, NAMESPACE, &enabled, &config)?;
    if !matches!(planned.decision, Decision::Inject { .. }) {
        return Err(format!(
            "the injector did not inject {}: {:?}",
            pod.name, planned.decision
        )
        .into());
    }
    let mut patched = spec;
    json_patch::patch(&mut patched, &planned.patch)?;
    let init = container(&patched, "weft-init")?;
    let proxy = container(&patched, "weft-proxy")?;

    let init_args = strings(&init["args"])?;
    if init_args.first().map(String::as_str) != Some("init") {
        return Err(format!("weft-init's arguments do not start with init: {init_args:?}").into());
    }
    let mut env = Vec::new();
    for var in proxy["env"].as_array().ok_or("weft-proxy has no env")? {
        let name = var["name"].as_str().ok_or("an env entry without a name")?;
        let value = match (&var["value"], &var["valueFrom"]["fieldRef"]["fieldPath"]) {
            (Value::String(value), _) => value.clone(),
            (_, Value::String(path)) => field(pod, path)?,
            _ => return Err(format!("{name}: neither a value nor a fieldRef: {var}").into()),
        };
        let value = if name == "WEFT_PROXY_IDENTITY_TOKEN_FILE" {
            token_file.display().to_string()
        } else {
            value
        };
        env.push((name.to_owned(), value));
    }
    Ok(Injected { init_args, env })
}

/// A downward API field of `pod`, as the kubelet resolves it.
fn field(pod: &PodFacts<'_>, path: &str) -> TestResult<String> {
    Ok(match path {
        "metadata.name" => pod.name.to_owned(),
        "metadata.namespace" => NAMESPACE.to_owned(),
        "status.podIP" => pod.ip.to_string(),
        "spec.serviceAccountName" => pod.service_account.to_owned(),
        "spec.nodeName" => NODE_NAME.to_owned(),
        other => return Err(format!("the suite does not resolve fieldRef {other}").into()),
    })
}

/// The container (or init container) `name` of a patched pod.
fn container<'a>(pod: &'a Value, name: &str) -> TestResult<&'a Value> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|list| pod["spec"][list].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .ok_or_else(|| format!("the injected pod has no container {name}").into())
}

fn strings(list: &Value) -> TestResult<Vec<String>> {
    list.as_array()
        .ok_or("not a list")?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| "not a string".into())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_every_variable_the_injector_writes() -> TestResult {
        let facts = PodFacts {
            name: "web-1",
            service_account: "web",
            ip: Ipv4Addr::new(10, 244, 0, 9),
        };
        let got = injected(&facts, "PEM", Path::new("/tmp/token"))?;
        let get = |k: &str| {
            got.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("WEFT_PROXY_POD_NAME"), Some("web-1"));
        assert_eq!(get("WEFT_PROXY_POD_IP"), Some("10.244.0.9"));
        assert_eq!(get("WEFT_PROXY_SERVICE_ACCOUNT"), Some("web"));
        assert_eq!(get("WEFT_PROXY_IDENTITY_TOKEN_FILE"), Some("/tmp/token"));
        assert_eq!(get("WEFT_PROXY_TRUST_ANCHORS"), Some("PEM"));
        assert_eq!(got.init_args[0], "init");
        Ok(())
    }
}
