//! What each render option changes, and which values are refused.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::*;
use pretty_assertions::assert_eq;
use serde_yaml::Value;
use weft_webhook_config::{Error, FailurePolicy, RenderOptions, Tls, WebhookTarget, render};

#[test]
fn the_namespace_option_moves_everything() -> TestResult {
    let mut options = defaults();
    options.namespace = "mesh-system".to_owned();
    let documents = parsed(&options)?;
    let namespace = find(&documents, "Namespace", "mesh-system")?;
    assert_eq!(
        namespace["metadata"]["labels"]["weft.dev/control-plane-ns"],
        "mesh-system"
    );
    for d in &documents {
        let kind = str_at(&d["kind"]);
        let cluster_scoped = matches!(
            kind,
            "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "MutatingWebhookConfiguration"
        );
        if !cluster_scoped {
            assert_eq!(d["metadata"]["namespace"], "mesh-system", "{kind}");
        }
    }
    let hook = webhook(&documents)?;
    assert_eq!(hook["clientConfig"]["service"]["namespace"], "mesh-system");
    assert_eq!(
        hook["namespaceSelector"]["matchExpressions"][0]["values"][1],
        "mesh-system"
    );
    assert!(args(&documents)?.contains(&"--control-plane-namespace=mesh-system".to_owned()));
    let binding = find(&documents, "ClusterRoleBinding", "weft-injector")?;
    assert_eq!(binding["subjects"][0]["namespace"], "mesh-system");
    // No document still names the default namespace.
    assert!(!render(&options)?.contains("namespace: weft\n"));
    Ok(())
}

#[test]
fn images_log_level_trust_domain_policy_and_timeout_are_applied() -> TestResult {
    let mut options = defaults();
    options.injector_image = "registry.local:5000/weft/injector:dev".to_owned();
    options.proxy_image = "registry.local:5000/weft/proxy@sha256:abc123".to_owned();
    options.log_level = "weft_injector=debug,info".to_owned();
    options.trust_domain = "example.org".to_owned();
    options.failure_policy = FailurePolicy::Fail;
    options.webhook_timeout_seconds = 10;
    let documents = parsed(&options)?;

    assert_eq!(
        injector_container(&documents)?["image"],
        "registry.local:5000/weft/injector:dev"
    );
    let args = args(&documents)?;
    assert!(
        args.contains(&"--proxy-image=registry.local:5000/weft/proxy@sha256:abc123".to_owned())
    );
    assert!(args.contains(&"--log=weft_injector=debug,info".to_owned()));
    assert!(args.contains(&"--trust-domain=example.org".to_owned()));
    let hook = webhook(&documents)?;
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["timeoutSeconds"], 10);
    Ok(())
}

#[test]
fn ha_runs_three_injectors_on_distinct_nodes() -> TestResult {
    let mut options = defaults();
    options.ha = true;
    options.replicas = weft_webhook_config::HA_REPLICAS;
    let documents = parsed(&options)?;
    let deployment = find(&documents, "Deployment", "weft-injector")?;
    assert_eq!(deployment["spec"]["replicas"], 3);
    let anti = &deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
    assert!(
        anti.get("preferredDuringSchedulingIgnoredDuringExecution")
            .is_none()
    );
    let required = &anti["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(required["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        required["labelSelector"]["matchLabels"]["weft.dev/control-plane-component"],
        "injector"
    );
    assert!(find(&documents, "PodDisruptionBudget", "weft-injector").is_ok());
    Ok(())
}

#[test]
fn the_url_form_replaces_the_service_and_keeps_the_ca() -> TestResult {
    let mut options = defaults();
    options.webhook_target = WebhookTarget::Url("https://127.0.0.1:18443/mutate".to_owned());
    let documents = parsed(&options)?;
    let client_config = &webhook(&documents)?["clientConfig"];
    assert_eq!(client_config["url"], "https://127.0.0.1:18443/mutate");
    assert!(client_config.get("service").is_none());
    assert_eq!(
        BASE64.decode(str_at(&client_config["caBundle"]))?,
        DUMMY_CA.as_bytes()
    );

    // Everything else is the Service form's, from the same templates.
    let service_form = parsed(&defaults())?;
    let strip = |hook: &Value| {
        let mut hook = hook.clone();
        if let Some(m) = hook.as_mapping_mut() {
            m.remove("clientConfig");
        }
        hook
    };
    assert_eq!(strip(webhook(&documents)?), strip(webhook(&service_form)?));
    Ok(())
}

#[test]
fn cert_manager_replaces_the_secret_and_the_ca_bundle() -> TestResult {
    let documents = parsed(&RenderOptions::new(Tls::CertManager))?;
    assert!(find(&documents, "Secret", "weft-injector-tls").is_err());
    assert!(!documents.iter().any(|d| d["kind"] == "Secret"));

    let configuration = find(&documents, "MutatingWebhookConfiguration", "weft-injector")?;
    assert_eq!(
        configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "weft/weft-injector"
    );
    assert!(
        webhook(&documents)?["clientConfig"]
            .get("caBundle")
            .is_none()
    );

    let self_signed = find(&documents, "Issuer", "weft-selfsigned")?;
    assert!(self_signed["spec"]["selfSigned"].is_mapping());
    let ca = find(&documents, "Certificate", "weft-injector-ca")?;
    assert_eq!(ca["spec"]["isCA"], true);
    assert_eq!(ca["spec"]["issuerRef"]["name"], "weft-selfsigned");
    let ca_issuer = find(&documents, "Issuer", "weft-injector-ca")?;
    assert_eq!(
        ca_issuer["spec"]["ca"]["secretName"],
        ca["spec"]["secretName"]
    );

    let serving = find(&documents, "Certificate", "weft-injector")?;
    assert_eq!(serving["spec"]["secretName"], "weft-injector-tls");
    assert_eq!(serving["spec"]["issuerRef"]["name"], "weft-injector-ca");
    let dns_names: Vec<String> = serving["spec"]["dnsNames"]
        .as_sequence()
        .ok_or("no dnsNames")?
        .iter()
        .map(|n| str_at(n).to_owned())
        .collect();
    assert_eq!(
        dns_names,
        weft_certs::webhook_dns_names("weft-injector", "weft")
    );

    // Same lifetimes as the certificates `weft install` makes itself.
    let hours = |v: &Value| -> Result<u64, String> {
        let s = str_at(v);
        s.strip_suffix('h')
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| format!("{s:?} is not a duration in hours"))
    };
    assert_eq!(
        hours(&ca["spec"]["duration"])? * 3600,
        weft_certs::DEFAULT_CA_VALIDITY.as_secs()
    );
    assert_eq!(
        hours(&serving["spec"]["duration"])? * 3600,
        weft_certs::DEFAULT_SERVING_VALIDITY.as_secs()
    );
    Ok(())
}

#[test]
fn bad_options_are_errors_that_name_the_option() {
    type Breakage = Box<dyn Fn(&mut RenderOptions)>;
    let cases: Vec<(&str, Breakage)> = vec![
        (
            "namespace",
            Box::new(|o| o.namespace = "Not_A_Label".to_owned()),
        ),
        ("namespace", Box::new(|o| o.namespace = String::new())),
        (
            "injector image",
            Box::new(|o| o.injector_image = "weft injector".to_owned()),
        ),
        (
            "proxy image",
            Box::new(|o| o.proxy_image = "proxy:v1\n---\nkind: Secret".to_owned()),
        ),
        ("replicas", Box::new(|o| o.replicas = 0)),
        (
            "webhook timeout",
            Box::new(|o| o.webhook_timeout_seconds = 0),
        ),
        (
            "webhook timeout",
            Box::new(|o| o.webhook_timeout_seconds = 31),
        ),
        (
            "trust domain",
            Box::new(|o| o.trust_domain = "Example Org".to_owned()),
        ),
        (
            "log level",
            Box::new(|o| o.log_level = "verbose".to_owned()),
        ),
        (
            "webhook URL",
            Box::new(|o| {
                o.webhook_target = WebhookTarget::Url("http://127.0.0.1/mutate".to_owned())
            }),
        ),
        (
            "serving key",
            Box::new(|o| {
                o.tls = Tls::Bundled {
                    ca_cert_pem: DUMMY_CA.to_owned(),
                    cert_pem: DUMMY_CERT.to_owned(),
                    key_pem: String::new(),
                }
            }),
        ),
    ];
    for (field, break_it) in cases {
        let mut options = defaults();
        break_it(&mut options);
        match render(&options) {
            Err(Error::InvalidOption { field: named, .. }) => assert_eq!(named, field),
            other => panic!("{field}: expected an invalid-option error, got {other:?}"),
        }
    }
}
