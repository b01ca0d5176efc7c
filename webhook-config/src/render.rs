//! Assembling the control plane: which templates, with which parameters, and
//! the two edits that templates cannot express as substitutions (`--ha`
//! anti-affinity, the URL form of the webhook).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_yaml::{Mapping, Value};

use crate::Error;
use crate::options::{INJECTOR_NAME, RenderOptions, Tls, VERSION, WebhookTarget};
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

/// The control plane as YAML documents (serde values), in apply order: the
/// namespace and RBAC first, the webhook configuration last so that the API
/// server only calls the injector once everything it needs exists.
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
    let mut documents = Vec::new();
    for (file, text) in [
        NAMESPACE,
        RBAC,
        certificates,
        SERVICE,
        DEPLOYMENT,
        PDB,
        WEBHOOK,
    ] {
        documents.extend(template::render(file, text, &params)?);
    }

    if options.ha {
        require_anti_affinity(find(&mut documents, "Deployment", DEPLOYMENT.0)?)?;
    }
    if let WebhookTarget::Url(url) = &options.webhook_target {
        point_webhook_at_url(
            find(&mut documents, "MutatingWebhookConfiguration", WEBHOOK.0)?,
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
    if matches!(options.tls, Tls::Bundled { .. }) {
        out.push_str("# Holds the webhook's private key: keep this output as safe as a Secret.\n");
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

/// The document of `kind` named `weft-injector`.
fn find<'d>(
    documents: &'d mut [Value],
    kind: &str,
    file: &'static str,
) -> Result<&'d mut Value, Error> {
    documents
        .iter_mut()
        .find(|d| {
            d.get("kind").and_then(Value::as_str) == Some(kind)
                && d.get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                    == Some(INJECTOR_NAME)
        })
        .ok_or_else(|| Error::Template {
            file,
            reason: format!("no {kind} named {INJECTOR_NAME}"),
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

/// `--ha`: each injector on its own node. The template's preferred terms
/// become required ones, so a node failure never takes two injectors.
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
