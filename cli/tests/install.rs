//! `weft install` as an operator runs it: the built binary, its stdout parsed
//! as `kubectl apply -f -` would, and the webhook certificate checked with a
//! real TLS handshake (in memory) against the caBundle it prints.

use std::io::Cursor;
use std::process::{Command, Output};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use serde_yaml::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type BoxError = Box<dyn std::error::Error>;

fn weft_install(args: &[&str]) -> Result<Output, BoxError> {
    Ok(Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("install")
        .args(args)
        .output()?)
}

/// Run `weft install ARGS`, require success, and parse stdout into documents.
fn install(args: &[&str]) -> Result<Vec<Value>, BoxError> {
    let output = weft_install(args)?;
    if !output.status.success() {
        return Err(format!(
            "weft install {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let text = String::from_utf8(output.stdout)?;
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document)?;
        documents.push(value);
    }
    Ok(documents)
}

fn find<'d>(documents: &'d [Value], kind: &str, name: &str) -> Result<&'d Value, String> {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .ok_or_else(|| format!("no {kind} {name} in the output"))
}

fn webhook(documents: &[Value]) -> Result<&Value, String> {
    Ok(&find(documents, "MutatingWebhookConfiguration", "weft-injector")?["webhooks"][0])
}

fn decode(value: &Value) -> Result<String, BoxError> {
    let text = value.as_str().ok_or("not a string")?;
    Ok(String::from_utf8(BASE64.decode(text)?)?)
}

/// The CA (from the caBundle) and the serving certificate and key (from the
/// Secret) that `weft install` printed.
struct Printed {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn printed(documents: &[Value]) -> Result<Printed, BoxError> {
    let secret = find(documents, "Secret", "weft-injector-tls")?;
    Ok(Printed {
        ca_pem: decode(&webhook(documents)?["clientConfig"]["caBundle"])?,
        cert_pem: decode(&secret["data"]["tls.crt"])?,
        key_pem: decode(&secret["data"]["tls.key"])?,
    })
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, BoxError> {
    let mut reader = Cursor::new(pem.as_bytes());
    Ok(rustls_pemfile::certs(&mut reader).collect::<Result<_, _>>()?)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, BoxError> {
    let mut reader = Cursor::new(pem.as_bytes());
    Ok(rustls_pemfile::private_key(&mut reader)?.ok_or("no private key")?)
}

/// A TLS handshake, in memory, between a server holding the printed serving
/// certificate and key and a client that trusts only the printed caBundle and
/// asks for `name`: what the API server does when it calls the webhook.
fn handshake(printed: &Printed, name: &str) -> Result<(), BoxError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs(&printed.cert_pem)?, key(&printed.key_pem)?)?;
    let mut roots = RootCertStore::empty();
    for ca in certs(&printed.ca_pem)? {
        roots.add(ca)?;
    }
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();

    let mut client =
        ClientConnection::new(Arc::new(client), ServerName::try_from(name.to_owned())?)?;
    let mut server = ServerConnection::new(Arc::new(server))?;
    // A handshake is a few flights; more rounds than that means it is stuck.
    for _ in 0..10 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
        let mut flight = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut flight)?;
        }
        server.read_tls(&mut flight.as_slice())?;
        server.process_new_packets()?;
        let mut flight = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut flight)?;
        }
        client.read_tls(&mut flight.as_slice())?;
        client.process_new_packets()?;
    }
    Err("the TLS handshake did not finish".into())
}

#[test]
fn default_output_parses_into_kubernetes_objects() -> TestResult {
    let documents = install(&[])?;
    // The injector's 9 documents and weft-control's 9 (RBAC 3, trust
    // anchors and issuer 2, Services 2, Deployment and its budget 2).
    assert_eq!(documents.len(), 18);
    for d in &documents {
        assert!(d["apiVersion"].is_string(), "{d:?}");
        assert!(d["kind"].is_string(), "{d:?}");
        assert!(d["metadata"]["name"].is_string(), "{d:?}");
    }
    let hook = webhook(&documents)?;
    assert_eq!(hook["clientConfig"]["service"]["namespace"], "weft");
    assert_eq!(hook["failurePolicy"], "Ignore");
    Ok(())
}

#[test]
fn the_ca_bundle_verifies_the_serving_certificate_for_the_service() -> TestResult {
    let documents = install(&[])?;
    let printed = printed(&documents)?;
    for name in [
        "weft-injector.weft.svc",
        "weft-injector.weft.svc.cluster.local",
    ] {
        handshake(&printed, name).map_err(|e| format!("{name}: {e}"))?;
    }
    // The Secret's ca.crt (for `weft check` and cert-manager parity) is the caBundle.
    let secret = find(&documents, "Secret", "weft-injector-tls")?;
    assert_eq!(decode(&secret["data"]["ca.crt"])?, printed.ca_pem);
    // A name the certificate was not made for fails, as it would at the API server.
    let err = handshake(&printed, "weft-injector.other.svc")
        .err()
        .ok_or("a foreign name must fail")?;
    assert!(err.to_string().contains("not valid for name"), "{err}");
    Ok(())
}

#[test]
fn every_run_makes_fresh_certificates() -> TestResult {
    let first = printed(&install(&[])?)?;
    let second = printed(&install(&[])?)?;
    assert_ne!(first.ca_pem, second.ca_pem);
    assert_ne!(first.key_pem, second.key_pem);
    // The new serving certificate does not verify against the old caBundle.
    let mixed = Printed {
        ca_pem: first.ca_pem,
        ..second
    };
    let err = handshake(&mixed, "weft-injector.weft.svc")
        .err()
        .ok_or("another CA must fail")?;
    // Same subject, different key: the signature gives it away.
    assert!(err.to_string().contains("BadSignature"), "{err}");
    Ok(())
}

#[test]
fn options_are_reflected_in_the_manifests() -> TestResult {
    let documents = install(&[
        "--control-plane-namespace",
        "mesh",
        "--ha",
        "--injector-image",
        "registry.local/weft/injector:dev",
        "--proxy-image",
        "registry.local/weft/proxy:dev",
        "--webhook-failure-policy",
        "Fail",
        "--webhook-timeout-seconds",
        "10",
        "--trust-domain",
        "example.org",
        "--log-level",
        "debug",
    ])?;
    find(&documents, "Namespace", "mesh")?;
    let deployment = find(&documents, "Deployment", "weft-injector")?;
    assert_eq!(deployment["metadata"]["namespace"], "mesh");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(
        pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            .is_sequence()
    );
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "registry.local/weft/injector:dev");
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .ok_or("no args")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        "--proxy-image=registry.local/weft/proxy:dev",
        "--control-plane-namespace=mesh",
        "--trust-domain=example.org",
        "--log=debug",
    ] {
        assert!(args.contains(&expected), "{expected} not in {args:?}");
    }
    let hook = webhook(&documents)?;
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["timeoutSeconds"], 10);
    assert_eq!(hook["clientConfig"]["service"]["namespace"], "mesh");

    // The certificate follows the namespace.
    let printed = printed(&documents)?;
    handshake(&printed, "weft-injector.mesh.svc")?;
    assert!(handshake(&printed, "weft-injector.weft.svc").is_err());
    Ok(())
}

#[test]
fn image_tag_sets_the_tag_of_both_default_images() -> TestResult {
    let documents = install(&["--image-tag", "v9.9.9", "--replicas", "4"])?;
    let deployment = find(&documents, "Deployment", "weft-injector")?;
    assert_eq!(deployment["spec"]["replicas"], 4);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ghcr.io/weft-dev/weft-injector:v9.9.9");
    assert!(
        container["args"]
            .as_sequence()
            .ok_or("no args")?
            .iter()
            .any(|a| a == "--proxy-image=ghcr.io/weft-dev/weft-proxy:v9.9.9")
    );
    Ok(())
}

#[test]
fn registry_names_the_three_default_images() -> TestResult {
    let documents = install(&["--registry", "localhost/weft", "--image-tag", "v1.2.3"])?;
    let injector = find(&documents, "Deployment", "weft-injector")?;
    let container = &injector["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "localhost/weft/weft-injector:v1.2.3");
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert!(
        container["args"]
            .as_sequence()
            .ok_or("no args")?
            .iter()
            .any(|a| a == "--proxy-image=localhost/weft/weft-proxy:v1.2.3")
    );
    let control = find(&documents, "Deployment", "weft-control")?;
    assert_eq!(
        control["spec"]["template"]["spec"]["containers"][0]["image"],
        "localhost/weft/weft-control:v1.2.3"
    );
    Ok(())
}

#[test]
fn cert_manager_prints_no_secret_and_asks_for_ca_injection() -> TestResult {
    let output = weft_install(&["--cert-manager"])?;
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cert-manager"));
    let documents = install(&["--cert-manager"])?;
    // cert-manager makes the webhook's Secret; the mesh issuer's is ours.
    assert!(find(&documents, "Secret", "weft-injector-tls").is_err());
    find(&documents, "Secret", "weft-identity-issuer")?;
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
    let serving = find(&documents, "Certificate", "weft-injector")?;
    assert_eq!(serving["spec"]["secretName"], "weft-injector-tls");
    assert!(!String::from_utf8(output.stdout)?.contains("PRIVATE KEY"));
    Ok(())
}

#[test]
fn an_existing_ca_signs_the_serving_certificate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ca = weft_certs::Ca::generate("operator CA", weft_certs::DEFAULT_CA_VALIDITY)?;
    let cert_file = dir.path().join("ca.crt");
    let key_file = dir.path().join("ca.key");
    std::fs::write(&cert_file, ca.cert_pem())?;
    std::fs::write(&key_file, ca.key_pem())?;
    let documents = install(&[
        "--ca-cert-file",
        cert_file.to_str().ok_or("path")?,
        "--ca-key-file",
        key_file.to_str().ok_or("path")?,
    ])?;
    let printed = printed(&documents)?;
    assert_eq!(printed.ca_pem, ca.cert_pem());
    handshake(&printed, "weft-injector.weft.svc")?;
    Ok(())
}

#[test]
fn the_url_form_points_at_the_url_and_its_host_is_in_the_certificate() -> TestResult {
    let documents = install(&["--webhook-url", "https://127.0.0.1:18443/mutate"])?;
    let client_config = &webhook(&documents)?["clientConfig"];
    assert_eq!(client_config["url"], "https://127.0.0.1:18443/mutate");
    assert!(client_config.get("service").is_none());
    handshake(&printed(&documents)?, "127.0.0.1")?;
    Ok(())
}

#[test]
fn bad_flags_fail_with_a_message_that_names_the_flag() -> TestResult {
    let dir = tempfile::tempdir()?;
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate")?;
    let garbage = garbage.to_str().ok_or("path")?;
    let cases: [(&[&str], &str); 14] = [
        (
            &["--control-plane-namespace", "Not_Valid"],
            "--control-plane-namespace",
        ),
        (
            &["--injector-image", "weft injector:v1"],
            "--injector-image",
        ),
        (
            &["--proxy-image", "proxy\n---\nkind: Secret"],
            "--proxy-image",
        ),
        (
            &["--webhook-failure-policy", "Sometimes"],
            "--webhook-failure-policy",
        ),
        (
            &["--webhook-timeout-seconds", "0"],
            "--webhook-timeout-seconds",
        ),
        (
            &["--webhook-timeout-seconds", "31"],
            "--webhook-timeout-seconds",
        ),
        (&["--log-level", "loud"], "--log-level"),
        (&["--image-tag", "v1 beta"], "--image-tag"),
        (&["--registry", "localhost/weft/"], "--registry"),
        (&["--registry", "Registry With Spaces"], "--registry"),
        (
            &[
                "--cert-manager",
                "--ca-cert-file",
                garbage,
                "--ca-key-file",
                garbage,
            ],
            "--cert-manager",
        ),
        (&["--ca-cert-file", garbage], "--ca-key-file"),
        (
            &[
                "--cert-manager",
                "--webhook-url",
                "https://127.0.0.1:8443/mutate",
            ],
            "--webhook-url",
        ),
        (
            &["--ca-cert-file", garbage, "--ca-key-file", garbage],
            "PKCS#8",
        ),
    ];
    for (args, expected) in cases {
        let output = weft_install(args)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(output.stdout.is_empty(), "{args:?} printed manifests");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} should mention {expected}"
        );
    }
    Ok(())
}
