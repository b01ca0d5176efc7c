//! Assembling the control plane: which templates, with which parameters, and
//! the two edits that templates cannot express as substitutions (`--ha`
//! anti-affinity, the URL form of the webhook).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_yaml::{Mapping, Value};

use crate::Error;
use crate::options::{
    CONTROL_NAME, INJECTOR_NAME, RenderOptions, TRUST_ANCHORS_CONFIGMAP_NAME, TRUST_ANCHORS_PATH,
    Tls, VERSION, WebhookTarget,
};
use crate::template::{self, Param, Params};

/// A template file: its name (for errors) and its text.
type Template = (&'static str, &'static str);

const NAMESPACE: Template = (
    "namespace.yaml",
    include_str!("../manifests/namespace.yaml"),
);
const RBAC: Template = ("rbac.yaml", include_str!("../manifests/rbac.yaml"));
const TLS_SECRET: Template = (
    "tls-secret.yaml",
    include_str!("../manifests/tls-secret.yaml"),
);
const CERT_MANAGER: Template = (
    "cert-manager.yaml",
    include_str!("../manifests/cert-manager.yaml"),
);
const SERVICE: Template = ("service.yaml", include_str!("../manifests/service.yaml"));
const DEPLOYMENT: Template = (
    "deployment.yaml",
    include_str!("../manifests/deployment.yaml"),
);
const PDB: Template = ("pdb.yaml", include_str!("../manifests/pdb.yaml"));
const WEBHOOK: Template = ("webhook.yaml", include_str!("../manifests/webhook.yaml"));
const CONTROL_RBAC: Template = (
    "control-rbac.yaml",
    include_str!("../manifests/control-rbac.yaml"),
);
const IDENTITY_CERTS: Template = (
    "identity-certs.yaml",
    include_str!("../manifests/identity-certs.yaml"),
);
const CONTROL_SERVICE: Template = (
    "control-service.yaml",
    include_str!("../manifests/control-service.yaml"),
);
const CONTROL_DEPLOYMENT: Template = (
    "control-deployment.yaml",
    include_str!("../manifests/control-deployment.yaml"),
);

/// The control plane as YAML documents (serde values), in apply order: the
/// namespace and RBAC first, then the certificates, Services and
/// Deployments, and the webhook configuration last so that the API server
/// only calls the injector once everything it needs exists. With
/// [`RenderOptions::identity`], weft-control's documents are interleaved
/// at the same stages.
///
/// The e2e harness picks single documents from here (e.g. the
/// `MutatingWebhookConfiguration` in the URL form).
pub fn render_documents(options: &RenderOptions) -> Result<Vec<Value>, Error> {
    options.validate()?;
    let params = params(options);

    let certificates = match options.tls {
        Tls::Bundled { .. } => TLS_SECRET,
        Tls::CertManager => CERT_MANAGER,
    };
    let identity = options.identity.is_some();
    let templates = [
        Some(NAMESPACE),
        Some(RBAC),
        identity.then_some(CONTROL_RBAC),
        Some(certificates),
        identity.then_some(IDENTITY_CERTS),
        Some(SERVICE),
        identity.then_some(CONTROL_SERVICE),
        Some(DEPLOYMENT),
        identity.then_some(CONTROL_DEPLOYMENT),
        Some(PDB),
        Some(WEBHOOK),
    ];
    let mut documents = Vec::new();
    for (file, text) in templates.into_iter().flatten() {
        documents.extend(template::render(file, text, &params)?);
    }

    if identity {
        mount_trust_anchors(find(
            &mut documents,
            "Deployment",
            INJECTOR_NAME,
            DEPLOYMENT.0,
        )?)?;
    }
    if options.ha {
        require_anti_affinity(find(
            &mut documents,
            "Deployment",
            INJECTOR_NAME,
            DEPLOYMENT.0,
        )?)?;
        if identity {
            require_anti_affinity(find(
                &mut documents,
                "Deployment",
                CONTROL_NAME,
                CONTROL_DEPLOYMENT.0,
            )?)?;
        }
    }
    if let WebhookTarget::Url(url) = &options.webhook_target {
        point_webhook_at_url(
            find(
                &mut documents,
                "MutatingWebhookConfiguration",
                INJECTOR_NAME,
                WEBHOOK.0,
            )?,
            url,
        )?;
    }
    Ok(documents)
}

/// The control plane as one multi-document YAML stream for
/// `kubectl apply -f -`.
pub fn render(options: &RenderOptions) -> Result<String, Error> {
    let documents = render_documents(options)?;
    let mut out = format!(
        "# weft v{VERSION} control plane (namespace {}). Apply with: kubectl apply -f -\n",
        options.namespace
    );
    let keys = match (&options.tls, options.identity.is_some()) {
        (Tls::Bundled { .. }, false) => Some("the webhook's private key"),
        (Tls::Bundled { .. }, true) => Some("the webhook's and the mesh issuer's private keys"),
        (Tls::CertManager, true) => Some("the mesh issuer's private key"),
        (Tls::CertManager, false) => None,
    };
    if let Some(keys) = keys {
        out.push_str(&format!(
            "# Holds {keys}: keep this output as safe as a Secret.\n"
        ));
    }
    for document in documents {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&document)?);
    }
    Ok(out)
}

fn params(options: &RenderOptions) -> Params {
    let mut params = Params::new();
    params.insert("namespace", options.namespace.as_str().into());
    params.insert("version", format!("v{VERSION}").into());
    params.insert("injector_image", options.injector_image.as_str().into());
    params.insert("proxy_image", options.proxy_image.as_str().into());
    params.insert("replicas", options.replicas.into());
    params.insert("trust_domain", options.trust_domain.as_str().into());
    params.insert("log_level", options.log_level.as_str().into());
    params.insert("timeout_seconds", options.webhook_timeout_seconds.into());
    params.insert("failure_policy", options.failure_policy.as_str().into());
    if let Some(identity) = &options.identity {
        params.insert("control_image", options.control_image.as_str().into());
        params.insert("trust_anchors", identity.trust_anchors_pem.as_str().into());
        params.insert(
            "issuer_crt",
            BASE64.encode(&identity.issuer_cert_pem).into(),
        );
        params.insert("issuer_key", BASE64.encode(&identity.issuer_key_pem).into());
    }
    match &options.tls {
        Tls::Bundled {
            ca_cert_pem,
            cert_pem,
            key_pem,
        } => {
            params.insert("ca_bundle", BASE64.encode(ca_cert_pem).into());
            params.insert("ca_crt", BASE64.encode(ca_cert_pem).into());
            params.insert("tls_crt", BASE64.encode(cert_pem).into());
            params.insert("tls_key", BASE64.encode(key_pem).into());
            params.insert("inject_ca_from", Param::Omit);
        }
        Tls::CertManager => {
            params.insert("ca_bundle", Param::Omit);
            // cainjector copies ca.crt of this Certificate's Secret.
            params.insert(
                "inject_ca_from",
                format!("{}/{INJECTOR_NAME}", options.namespace).into(),
            );
        }
    }
    params
}

/// The document of `kind` named `name`.
fn find<'d>(
    documents: &'d mut [Value],
    kind: &str,
    name: &str,
    file: &'static str,
) -> Result<&'d mut Value, Error> {
    documents
        .iter_mut()
        .find(|d| {
            d.get("kind").and_then(Value::as_str) == Some(kind)
                && d.get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                    == Some(name)
        })
        .ok_or_else(|| Error::Template {
            file,
            reason: format!("no {kind} named {name}"),
        })
}

/// The value at `path` under `value`.
fn at<'v>(value: &'v mut Value, path: &[&str], file: &'static str) -> Result<&'v mut Value, Error> {
    path.iter().try_fold(value, |v, key| {
        v.get_mut(*key).ok_or_else(|| Error::Template {
            file,
            reason: format!("missing {}", path.join(".")),
        })
    })
}

/// The injector writes the mesh's trust anchors into every pod
/// (`WEFT_PROXY_TRUST_ANCHORS`): mount the ConfigMap and pass the file.
/// The injector reads it at start, so a changed bundle reaches new pods
/// after `kubectl rollout restart deploy/weft-injector`.
fn mount_trust_anchors(deployment: &mut Value) -> Result<(), Error> {
    let file = DEPLOYMENT.0;
    let dir = TRUST_ANCHORS_PATH
        .rsplit_once('/')
        .map_or(TRUST_ANCHORS_PATH, |(dir, _)| dir);
    let pod = at(deployment, &["spec", "template", "spec"], file)?;
    let container = at(pod, &["containers"], file)?
        .get_mut(0)
        .ok_or_else(|| not_a("containers", "non-empty list", file))?;
    push(
        at(container, &["args"], file)?,
        format!("--trust-anchors-file={TRUST_ANCHORS_PATH}").into(),
        "args",
    )?;
    let mut mount = Mapping::new();
    mount.insert("name".into(), "trust-anchors".into());
    mount.insert("mountPath".into(), dir.into());
    mount.insert("readOnly".into(), true.into());
    push(
        at(container, &["volumeMounts"], file)?,
        Value::Mapping(mount),
        "volumeMounts",
    )?;
    let mut config_map = Mapping::new();
    config_map.insert("name".into(), TRUST_ANCHORS_CONFIGMAP_NAME.into());
    let mut volume = Mapping::new();
    volume.insert("name".into(), "trust-anchors".into());
    volume.insert("configMap".into(), Value::Mapping(config_map));
    push(
        at(pod, &["volumes"], file)?,
        Value::Mapping(volume),
        "volumes",
    )
}

/// Appends `item` to the list `list`.
fn push(list: &mut Value, item: Value, what: &str) -> Result<(), Error> {
    list.as_sequence_mut()
        .ok_or_else(|| not_a(what, "list", DEPLOYMENT.0))?
        .push(item);
    Ok(())
}

/// `--ha`: each replica (injector or weft-control) on its own node. The
/// template's preferred terms become required ones, so a node failure
/// never takes two replicas.
fn require_anti_affinity(deployment: &mut Value) -> Result<(), Error> {
    const PREFERRED: &str = "preferredDuringSchedulingIgnoredDuringExecution";
    const REQUIRED: &str = "requiredDuringSchedulingIgnoredDuringExecution";
    let path = ["spec", "template", "spec", "affinity", "podAntiAffinity"];
    let anti_affinity = at(deployment, &path, DEPLOYMENT.0)?
        .as_mapping_mut()
        .ok_or_else(|| not_a("podAntiAffinity", "mapping", DEPLOYMENT.0))?;
    let preferred = anti_affinity
        .remove(PREFERRED)
        .and_then(|v| v.as_sequence().cloned())
        .ok_or_else(|| not_a(PREFERRED, "list", DEPLOYMENT.0))?;
    let required = preferred
        .into_iter()
        .map(|weighted| {
            weighted
                .get("podAffinityTerm")
                .cloned()
                .ok_or_else(|| not_a("podAffinityTerm", "term", DEPLOYMENT.0))
        })
        .collect::<Result<Vec<_>, _>>()?;
    anti_affinity.insert(REQUIRED.into(), Value::Sequence(required));
    Ok(())
}

/// The URL form: the API server calls `url` instead of the Service. The
/// caBundle (or cert-manager annotation) is kept: the same CA signs both.
fn point_webhook_at_url(configuration: &mut Value, url: &str) -> Result<(), Error> {
    let webhooks = at(configuration, &["webhooks"], WEBHOOK.0)?
        .as_sequence_mut()
        .ok_or_else(|| not_a("webhooks", "list", WEBHOOK.0))?;
    for webhook in webhooks {
        let client_config = at(webhook, &["clientConfig"], WEBHOOK.0)?;
        let old = client_config
            .as_mapping()
            .ok_or_else(|| not_a("clientConfig", "mapping", WEBHOOK.0))?;
        // Rebuilt rather than edited so `url` reads first, where `service` was.
        let mut new = Mapping::new();
        new.insert("url".into(), url.into());
        for (key, value) in old {
            if key.as_str() != Some("service") {
                new.insert(key.clone(), value.clone());
            }
        }
        *client_config = Value::Mapping(new);
    }
    Ok(())
}

fn not_a(what: &str, kind: &str, file: &'static str) -> Error {
    Error::Template {
        file,
        reason: format!("{what} is not a {kind}"),
    }
}
