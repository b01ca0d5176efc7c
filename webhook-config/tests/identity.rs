//! The control plane with the mesh's identity material: weft-control
//! (identity and destination), its least-privilege RBAC, Services, the
//! issuer Secret and trust-anchor ConfigMap, and the injector reading the
//! anchors — parsed back as the API server would read them, and against a
//! golden file.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::*;
use pretty_assertions::assert_eq;
use serde_yaml::Value;
use weft_webhook_config::{IdentityCerts, RenderOptions, Tls, render};

const DUMMY_ANCHORS: &str =
    "-----BEGIN CERTIFICATE-----\nZHVtbXkgYW5jaG9y\n-----END CERTIFICATE-----\n";
const DUMMY_ISSUER: &str =
    "-----BEGIN CERTIFICATE-----\nZHVtbXkgaXNzdWVy\n-----END CERTIFICATE-----\n";
const DUMMY_ISSUER_KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nZHVtbXkgaXNzdWVyIGtleQ==\n-----END PRIVATE KEY-----\n";

fn with_identity(tls: Tls) -> RenderOptions {
    let mut options = RenderOptions::new(tls);
    options.identity = Some(IdentityCerts {
        trust_anchors_pem: DUMMY_ANCHORS.to_owned(),
        issuer_cert_pem: DUMMY_ISSUER.to_owned(),
        issuer_key_pem: DUMMY_ISSUER_KEY.to_owned(),
    });
    options
}

fn control_container(documents: &[Value]) -> Result<&Value, String> {
    Ok(
        &find(documents, "Deployment", "weft-control")?["spec"]["template"]["spec"]["containers"]
            [0],
    )
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| s.iter().map(|v| str_at(v).to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn identity_render_matches_the_golden_file() -> TestResult {
    // Regenerate with: WEFT_UPDATE_GOLDEN=1 cargo test -p weft-webhook-config
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/with-identity.yaml"
    );
    let rendered = render(&with_identity(bundled()))?;
    if std::env::var_os("WEFT_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &rendered)?;
    }
    let golden = std::fs::read_to_string(path)?;
    assert_eq!(golden, rendered);
    Ok(())
}

#[test]
fn weft_control_joins_each_stage_of_the_apply_order() -> TestResult {
    let documents = parsed(&with_identity(bundled()))?;
    assert_eq!(
        kinds(&documents),
        [
            "Namespace/weft",
            "ServiceAccount/weft-injector",
            "ClusterRole/weft-injector",
            "ClusterRoleBinding/weft-injector",
            "ServiceAccount/weft-control",
            "ClusterRole/weft-control",
            "ClusterRoleBinding/weft-control",
            "Secret/weft-injector-tls",
            "ConfigMap/weft-trust-anchors",
            "Secret/weft-identity-issuer",
            "Service/weft-injector",
            "Service/weft-identity",
            "Service/weft-destination",
            "Deployment/weft-injector",
            "Deployment/weft-control",
            "PodDisruptionBudget/weft-control",
            "PodDisruptionBudget/weft-injector",
            "MutatingWebhookConfiguration/weft-injector",
        ]
    );
    // Without identity material the render is the injector alone.
    let alone = parsed(&defaults())?;
    assert!(find(&alone, "Deployment", "weft-control").is_err());
    Ok(())
}

#[test]
fn weft_control_may_review_tokens_and_read_workloads_and_services_and_nothing_else() -> TestResult {
    let documents = parsed(&with_identity(bundled()))?;
    let role = find(&documents, "ClusterRole", "weft-control")?;
    let rules: Vec<(Vec<String>, Vec<String>, Vec<String>)> = role["rules"]
        .as_sequence()
        .ok_or("no rules")?
        .iter()
        .map(|r| {
            (
                strings(&r["apiGroups"]),
                strings(&r["resources"]),
                strings(&r["verbs"]),
            )
        })
        .collect();
    let read = vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()];
    // A reflector lists and watches; it never gets one object.
    let watch = vec!["list".to_owned(), "watch".to_owned()];
    assert_eq!(
        rules,
        [
            (
                vec!["authentication.k8s.io".to_owned()],
                vec!["tokenreviews".to_owned()],
                vec!["create".to_owned()]
            ),
            (
                vec![String::new()],
                vec!["pods".to_owned(), "namespaces".to_owned()],
                read.clone()
            ),
            (
                vec!["apps".to_owned()],
                vec!["replicasets".to_owned()],
                read.clone()
            ),
            (vec!["batch".to_owned()], vec!["jobs".to_owned()], read),
            (
                vec![String::new()],
                vec!["services".to_owned()],
                watch.clone()
            ),
            (
                vec!["discovery.k8s.io".to_owned()],
                vec!["endpointslices".to_owned()],
                watch
            ),
        ]
    );
    let binding = find(&documents, "ClusterRoleBinding", "weft-control")?;
    assert_eq!(binding["subjects"][0]["name"], "weft-control");
    assert_eq!(binding["subjects"][0]["namespace"], "weft");
    assert_eq!(binding["roleRef"]["name"], "weft-control");
    Ok(())
}

#[test]
fn the_issuer_and_anchors_reach_weft_control_and_the_anchors_reach_the_injector() -> TestResult {
    let documents = parsed(&with_identity(bundled()))?;
    let secret = find(&documents, "Secret", "weft-identity-issuer")?;
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let decode = |key: &str| BASE64.decode(str_at(&secret["data"][key]));
    assert_eq!(decode("tls.crt")?, DUMMY_ISSUER.as_bytes());
    assert_eq!(decode("tls.key")?, DUMMY_ISSUER_KEY.as_bytes());
    assert!(secret["data"].get("ca.key").is_none());
    let anchors = find(&documents, "ConfigMap", "weft-trust-anchors")?;
    assert_eq!(anchors["data"]["ca-bundle.crt"], DUMMY_ANCHORS);

    let control = control_container(&documents)?;
    assert_eq!(
        strings(&control["args"]),
        [
            "--identity-listen=0.0.0.0:8080",
            "--destination-listen=0.0.0.0:8086",
            "--admin-listen=0.0.0.0:9990",
            "--issuer-cert-file=/var/run/weft/identity/issuer/tls.crt",
            "--issuer-key-file=/var/run/weft/identity/issuer/tls.key",
            "--trust-anchors-file=/var/run/weft/identity/trust-anchors/ca-bundle.crt",
            "--trust-domain=cluster.local",
            "--control-plane-namespace=weft",
            "--log=info",
        ]
    );
    assert_eq!(control["image"], "ghcr.io/weft-dev/weft-control:v0.1.0");
    assert_eq!(control["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(control["livenessProbe"]["httpGet"]["path"], "/live");
    assert_eq!(control["securityContext"]["readOnlyRootFilesystem"], true);
    let pod = &find(&documents, "Deployment", "weft-control")?["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "weft-control");
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "weft-identity-issuer"
    );
    assert_eq!(pod["volumes"][0]["secret"]["defaultMode"], 288);
    assert_eq!(pod["volumes"][1]["configMap"]["name"], "weft-trust-anchors");

    let injector = injector_container(&documents)?;
    assert!(args(&documents)?.contains(
        &"--trust-anchors-file=/var/run/weft/identity/trust-anchors/ca-bundle.crt".to_owned()
    ));
    assert_eq!(
        injector["volumeMounts"][1]["mountPath"],
        "/var/run/weft/identity/trust-anchors"
    );
    let injector_pod =
        &find(&documents, "Deployment", "weft-injector")?["spec"]["template"]["spec"];
    assert_eq!(
        injector_pod["volumes"][1]["configMap"]["name"],
        "weft-trust-anchors"
    );

    for (service, port) in [("weft-identity", 8080), ("weft-destination", 8086)] {
        let svc = find(&documents, "Service", service)?;
        assert_eq!(svc["spec"]["ports"][0]["port"], port);
        assert_eq!(
            svc["spec"]["selector"]["weft.dev/control-plane-component"],
            "control"
        );
    }
    Ok(())
}

#[test]
fn ha_spreads_weft_control_too_and_cert_manager_keeps_identity() -> TestResult {
    let mut options = with_identity(bundled());
    options.ha = true;
    options.replicas = 3;
    let documents = parsed(&options)?;
    for name in ["weft-injector", "weft-control"] {
        let deployment = find(&documents, "Deployment", name)?;
        assert_eq!(deployment["spec"]["replicas"], 3);
        let anti = &deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
        assert!(anti["requiredDuringSchedulingIgnoredDuringExecution"].is_sequence());
    }

    let documents = parsed(&with_identity(Tls::CertManager))?;
    assert!(find(&documents, "Secret", "weft-identity-issuer").is_ok());
    assert!(find(&documents, "Deployment", "weft-control").is_ok());
    let text = render(&with_identity(Tls::CertManager))?;
    assert!(text.contains("# Holds the mesh issuer's private key"));
    Ok(())
}

#[test]
fn a_bad_control_image_is_refused() {
    let mut options = with_identity(bundled());
    options.control_image = "has space".to_owned();
    assert!(options.validate().is_err());
}
