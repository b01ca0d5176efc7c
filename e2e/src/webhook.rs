//! Registering a local [`Injector`] with a [`Cluster`]: the
//! `MutatingWebhookConfiguration` rendered by `weft-webhook-config` in its
//! URL form (the same template `weft install` ships, pointed at the local
//! process), and a wait until the API server really calls it.
//!
//! The API server only uses a new configuration once its informer has seen
//! it, so "applied" is not "live": [`wait_live`] creates a dry-run marker pod
//! in an enabled namespace until it comes back injected.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use serde_json::Value;
pub use weft_webhook_config::FailurePolicy;
use weft_webhook_config::{RenderOptions, Tls, WebhookTarget};

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::injector::Injector;
use crate::wait;

/// The namespace the marker pods are dry-run in.
pub const MARKER_NAMESPACE: &str = "weft-e2e-marker";
/// How long the API server gets to pick up a configuration.
const LIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The `MutatingWebhookConfiguration` for `injector` with `policy`, exactly
/// as `weft-webhook-config` renders it for a URL target.
pub fn configuration(injector: &Injector, policy: FailurePolicy) -> Result<Value> {
    let read = |path: std::path::PathBuf| {
        std::fs::read_to_string(&path).map_err(Error::io(format!("reading {}", path.display())))
    };
    let mut options = RenderOptions::new(Tls::Bundled {
        ca_cert_pem: injector.ca_pem().to_string(),
        cert_pem: read(injector.cert_file())?,
        key_pem: read(injector.key_file())?,
    });
    options.webhook_target = WebhookTarget::Url(injector.url());
    options.failure_policy = policy;
    let document = weft_webhook_config::render_documents(&options)?
        .into_iter()
        .find(|doc| {
            doc.get("kind").and_then(serde_yaml::Value::as_str)
                == Some("MutatingWebhookConfiguration")
        })
        .ok_or(Error::MissingDocument("MutatingWebhookConfiguration"))?;
    serde_json::to_value(&document).map_err(|source| Error::Json {
        what: "the rendered MutatingWebhookConfiguration".to_string(),
        source,
    })
}

/// Applies the configuration for `injector` with `policy` and waits until
/// the API server calls the injector.
pub async fn install(cluster: &Cluster, injector: &Injector, policy: FailurePolicy) -> Result<()> {
    apply(cluster, &configuration(injector, policy)?).await?;
    wait_live(cluster).await
}

/// `kubectl apply` of one object.
pub async fn apply(cluster: &Cluster, object: &Value) -> Result<()> {
    let yaml = serde_yaml::to_string(object)?;
    cluster
        .kubectl()
        .run_stdin(&["apply", "-f", "-"], &yaml)
        .await?;
    Ok(())
}

/// Waits until a dry-run pod in an enabled marker namespace comes back
/// injected (creating the namespace on first use).
pub async fn wait_live(cluster: &Cluster) -> Result<()> {
    let client = cluster.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(MARKER_NAMESPACE).await?.is_none() {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(MARKER_NAMESPACE.to_string()),
                annotations: Some(BTreeMap::from([(
                    "weft.dev/inject".to_string(),
                    "enabled".to_string(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces.create(&PostParams::default(), &ns).await?;
    }
    let pods: Api<Pod> = Api::namespaced(client, MARKER_NAMESPACE);
    let marker = Pod {
        metadata: ObjectMeta {
            name: Some("marker".to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "marker".to_string(),
                image: Some("registry.invalid/marker:1".to_string()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    wait::eventually("the webhook to inject a marker pod", LIVE_TIMEOUT, || {
        let pods = pods.clone();
        let marker = marker.clone();
        let dry_run = dry_run.clone();
        async move {
            let pod = pods
                .create(&dry_run, &marker)
                .await
                .map_err(|e| e.to_string())?;
            if is_injected(&pod) {
                Ok(())
            } else {
                Err("the marker pod came back without weft-proxy".to_string())
            }
        }
    })
    .await
}

/// Whether `pod` carries the `weft-proxy` container (native or classic).
pub fn is_injected(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| c.name == "weft-proxy")
}
