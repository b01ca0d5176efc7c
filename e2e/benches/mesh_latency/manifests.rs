//! The manifests of the benchmark, as pure functions: voting as
//! examples/emojivoto.yml has it (in an injected or a plain namespace) and
//! the Job that runs the load generator once.

use std::time::Duration;

use serde::Deserialize as _;
use serde_json::{Value, json};
use weft_e2e::images;

use crate::{LOAD, POD_START, Path, READY_TIMEOUT_S};

/// The namespace (annotated for injection on the meshed path), the
/// ServiceAccounts, and voting's Deployment and Service as
/// examples/emojivoto.yml has them, with `replicas`.
pub fn voting_manifests(path: Path, replicas: u32) -> anyhow::Result<String> {
    let ns = path.namespace();
    let mut namespace = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ns},
    });
    if path.injected() {
        namespace["metadata"]["annotations"] = json!({"weft.dev/inject": "enabled"});
    }
    let account = |name: &str| {
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": ns},
        })
    };
    let labels = json!({"app": "voting-svc", "version": "v11"});
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "voting",
            "namespace": ns,
            "labels": {
                "app.kubernetes.io/name": "voting",
                "app.kubernetes.io/part-of": "emojivoto",
                "app.kubernetes.io/version": "v11",
            },
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "voting",
                    "enableServiceLinks": false,
                    "containers": [{
                        "name": "voting-svc",
                        "image": images::emojivoto_image(),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["emojivoto", "voting-svc"],
                        "args": ["--listen=0.0.0.0:8080", "--admin-listen=0.0.0.0:8801"],
                        "ports": [
                            {"name": "grpc", "containerPort": 8080},
                            {"name": "admin", "containerPort": 8801},
                        ],
                        // Every second rather than emojivoto.yml's 5 s:
                        // the bench waits for Ready three times.
                        "readinessProbe": {
                            "httpGet": {"path": "/healthz", "port": "admin"},
                            "periodSeconds": 1,
                        },
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz", "port": "admin"},
                            "periodSeconds": 10,
                        },
                        "resources": app_resources(),
                        "securityContext": app_security(),
                    }],
                },
            },
        },
    });
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "voting-svc", "namespace": ns},
        "spec": {
            "selector": {"app": "voting-svc"},
            "ports": [{
                "name": "grpc",
                "port": 8080,
                "targetPort": "grpc",
                "appProtocol": "kubernetes.io/h2c",
            }],
        },
    });
    yaml_stream(&[
        namespace,
        account("voting"),
        account(LOAD),
        deployment,
        service,
    ])
}

/// A Job running `emojivoto vote-load` once against voting-svc in the same
/// namespace.
pub fn load_job(
    path: Path,
    name: &str,
    rate: u32,
    seconds: u64,
    warmup: Duration,
) -> anyhow::Result<String> {
    let ns = path.namespace();
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": LOAD}},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": seconds + READY_TIMEOUT_S + POD_START.as_secs() + 60,
            "template": {
                "metadata": {"labels": {"app": LOAD}},
                "spec": {
                    "serviceAccountName": LOAD,
                    "restartPolicy": "Never",
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{
                        "name": LOAD,
                        "image": images::emojivoto_image(),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["emojivoto", LOAD],
                        "args": [
                            format!("--voting-addr=voting-svc.{ns}:8080"),
                            format!("--rate={rate}"),
                            format!("--duration={seconds}s"),
                            format!("--warmup={}ms", warmup.as_millis()),
                            format!("--ready-timeout={READY_TIMEOUT_S}s"),
                        ],
                        "resources": app_resources(),
                        "securityContext": app_security(),
                    }],
                },
            },
        },
    });
    yaml_stream(&[job])
}

/// emojivoto.yml's resources for each app container.
fn app_resources() -> Value {
    json!({"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}})
}

/// emojivoto.yml's security context for each app container.
fn app_security() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": true,
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

fn yaml_stream(objects: &[Value]) -> anyhow::Result<String> {
    let docs: Vec<String> = objects
        .iter()
        .map(serde_yaml::to_string)
        .collect::<Result<_, _>>()?;
    Ok(docs.join("---\n"))
}

/// The manifests are YAML kubectl can read, with the objects expected and
/// the annotation only on the meshed path.
pub fn check() -> anyhow::Result<()> {
    for path in [Path::Plain, Path::Mesh] {
        let text = voting_manifests(path, 3)?
            + "---\n"
            + &load_job(path, "vote-load-1", 100, 20, crate::WARMUP)?;
        let kinds: Vec<String> = serde_yaml::Deserializer::from_str(&text)
            .map(|doc| {
                Value::deserialize(doc).map(|v| v["kind"].as_str().unwrap_or_default().to_string())
            })
            .collect::<Result<_, _>>()?;
        anyhow::ensure!(
            kinds
                == [
                    "Namespace",
                    "ServiceAccount",
                    "ServiceAccount",
                    "Deployment",
                    "Service",
                    "Job"
                ],
            "{kinds:?}"
        );
        anyhow::ensure!(
            text.contains("weft.dev/inject") == path.injected(),
            "{text}"
        );
    }
    Ok(())
}
