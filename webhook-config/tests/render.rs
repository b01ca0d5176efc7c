//! The default control plane, checked as the API server would read it:
//! parsed back from YAML, document by document, and against a golden file.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::*;
use pretty_assertions::assert_eq;
use weft_webhook_config::{RenderOptions, Tls, render, render_documents};

#[test]
fn every_document_is_a_kubernetes_object() -> TestResult {
    for options in [defaults(), RenderOptions::new(Tls::CertManager)] {
        let documents = parsed(&options)?;
        assert!(documents.len() >= 9);
        for d in &documents {
            assert!(
                d["apiVersion"].as_str().is_some_and(|s| !s.is_empty()),
                "{d:?}"
            );
            assert!(d["kind"].as_str().is_some_and(|s| !s.is_empty()), "{d:?}");
            assert!(
                d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{d:?}"
            );
        }
        // What render prints is exactly what render_documents returns.
        assert_eq!(documents, render_documents(&options)?);
    }
    Ok(())
}

#[test]
fn default_render_matches_the_golden_file() -> TestResult {
    // Regenerate with: WEFT_UPDATE_GOLDEN=1 cargo test -p weft-webhook-config
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/default.yaml");
    let rendered = render(&defaults())?;
    if std::env::var_os("WEFT_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &rendered)?;
    }
    let golden = std::fs::read_to_string(path)?;
    assert_eq!(golden, rendered);
    Ok(())
}

#[test]
fn default_render_holds_the_whole_control_plane_in_apply_order() -> TestResult {
    let documents = parsed(&defaults())?;
    assert_eq!(
        kinds(&documents),
        [
            "Namespace/weft",
            "ServiceAccount/weft-injector",
            "ClusterRole/weft-injector",
            "ClusterRoleBinding/weft-injector",
            "Secret/weft-injector-tls",
            "Service/weft-injector",
            "Deployment/weft-injector",
            "PodDisruptionBudget/weft-injector",
            "MutatingWebhookConfiguration/weft-injector",
        ]
    );
    Ok(())
}

#[test]
fn rbac_is_least_privilege() -> TestResult {
    let documents = parsed(&defaults())?;
    let role = find(&documents, "ClusterRole", "weft-injector")?;
    let rules: Vec<(Vec<String>, Vec<String>, Vec<String>)> = role["rules"]
        .as_sequence()
        .ok_or("no rules")?
        .iter()
        .map(|rule| {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_sequence()
                    .map(|s| s.iter().map(|v| str_at(v).to_owned()).collect())
                    .unwrap_or_default()
            };
            (list("apiGroups"), list("resources"), list("verbs"))
        })
        .collect();
    assert_eq!(
        rules,
        [
            (
                vec![String::new()],
                vec!["namespaces".to_owned()],
                vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()]
            ),
            (
                vec!["events.k8s.io".to_owned()],
                vec!["events".to_owned()],
                vec!["create".to_owned(), "patch".to_owned()]
            ),
        ]
    );
    let binding = find(&documents, "ClusterRoleBinding", "weft-injector")?;
    assert_eq!(binding["subjects"][0]["name"], "weft-injector");
    assert_eq!(binding["subjects"][0]["namespace"], "weft");
    Ok(())
}

#[test]
fn the_deployment_runs_restricted_and_probes_the_admin_port() -> TestResult {
    let documents = parsed(&defaults())?;
    let deployment = find(&documents, "Deployment", "weft-injector")?;
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(
        pod["securityContext"]["runAsUser"]
            .as_u64()
            .is_some_and(|uid| uid > 0)
    );

    let container = injector_container(&documents)?;
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin-http");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        "/var/run/weft/tls"
    );
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "weft-injector-tls"
    );

    let ports = container["ports"].as_sequence().ok_or("no ports")?;
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "admin-http" && p["containerPort"] == 9995)
    );
    assert!(ports.iter().any(|p| p["containerPort"] == 8443));

    // Arguments as docs/architecture.md lists the injector's flags.
    assert_eq!(
        args(&documents)?,
        [
            "--listen=0.0.0.0:8443",
            "--admin-listen=0.0.0.0:9995",
            "--tls-cert-file=/var/run/weft/tls/tls.crt",
            "--tls-key-file=/var/run/weft/tls/tls.key",
            "--proxy-image=ghcr.io/weft-dev/weft-proxy:v0.1.0",
            "--control-plane-namespace=weft",
            "--trust-domain=cluster.local",
            "--log=info",
        ]
    );

    let anti = &pod["affinity"]["podAntiAffinity"];
    assert_eq!(
        anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert!(
        anti.get("requiredDuringSchedulingIgnoredDuringExecution")
            .is_none()
    );

    let pdb = find(&documents, "PodDisruptionBudget", "weft-injector")?;
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let service = find(&documents, "Service", "weft-injector")?;
    assert_eq!(service["spec"]["ports"][0]["port"], 443);
    assert_eq!(service["spec"]["ports"][1]["name"], "admin-http");
    assert_eq!(service["spec"]["ports"][1]["port"], 9995);
    Ok(())
}

#[test]
fn the_webhook_sends_only_new_pods_outside_the_control_plane() -> TestResult {
    let documents = parsed(&defaults())?;
    let hook = webhook(&documents)?;
    assert_eq!(hook["name"], "inject.weft.dev");
    assert_eq!(hook["rules"][0]["operations"][0], "CREATE");
    assert_eq!(hook["rules"][0]["apiGroups"][0], "");
    assert_eq!(hook["rules"][0]["resources"][0], "pods");
    assert_eq!(hook["admissionReviewVersions"][0], "v1");
    assert_eq!(hook["sideEffects"], "NoneOnDryRun");
    assert_eq!(hook["timeoutSeconds"], 5);
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(hook["matchPolicy"], "Equivalent");
    assert_eq!(hook["reinvocationPolicy"], "Never");
    let expression = &hook["namespaceSelector"]["matchExpressions"][0];
    assert_eq!(expression["key"], "kubernetes.io/metadata.name");
    assert_eq!(expression["operator"], "NotIn");
    assert_eq!(expression["values"][0], "kube-system");
    assert_eq!(expression["values"][1], "weft");

    let service = &hook["clientConfig"]["service"];
    assert_eq!(service["namespace"], "weft");
    assert_eq!(service["name"], "weft-injector");
    assert_eq!(service["path"], "/mutate");
    assert_eq!(service["port"], 443);
    let ca_bundle = BASE64.decode(str_at(&hook["clientConfig"]["caBundle"]))?;
    assert_eq!(ca_bundle, DUMMY_CA.as_bytes());
    let configuration = find(&documents, "MutatingWebhookConfiguration", "weft-injector")?;
    assert!(configuration["metadata"].get("annotations").is_none());
    Ok(())
}

#[test]
fn the_secret_carries_the_serving_certificate() -> TestResult {
    let documents = parsed(&defaults())?;
    let secret = find(&documents, "Secret", "weft-injector-tls")?;
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["metadata"]["namespace"], "weft");
    let decode = |key: &str| BASE64.decode(str_at(&secret["data"][key]));
    assert_eq!(decode("tls.crt")?, DUMMY_CERT.as_bytes());
    assert_eq!(decode("tls.key")?, DUMMY_KEY.as_bytes());
    assert_eq!(decode("ca.crt")?, DUMMY_CA.as_bytes());
    Ok(())
}
