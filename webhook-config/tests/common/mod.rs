//! Helpers shared by the render tests: fixed certificates, and lookups in
//! rendered documents parsed back from YAML.
// Each test file uses a different subset of these.
#![allow(dead_code)]

use serde_yaml::Value;
use weft_webhook_config::{RenderOptions, Tls, render};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

// Fixed stand-ins: the renderer checks only that these are PEM blocks of the
// right kind, and the golden file must not change on every run.
pub const DUMMY_CA: &str = "-----BEGIN CERTIFICATE-----\nZHVtbXkgQ0E=\n-----END CERTIFICATE-----\n";
pub const DUMMY_CERT: &str =
    "-----BEGIN CERTIFICATE-----\nZHVtbXkgY2VydA==\n-----END CERTIFICATE-----\n";
pub const DUMMY_KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nZHVtbXkga2V5\n-----END PRIVATE KEY-----\n";

pub fn bundled() -> Tls {
    Tls::Bundled {
        ca_cert_pem: DUMMY_CA.to_owned(),
        cert_pem: DUMMY_CERT.to_owned(),
        key_pem: DUMMY_KEY.to_owned(),
    }
}

pub fn defaults() -> RenderOptions {
    RenderOptions::new(bundled())
}

/// Render, then parse the stream back into documents.
pub fn parsed(options: &RenderOptions) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let text = render(options)?;
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document)?;
        documents.push(value);
    }
    Ok(documents)
}

pub fn find<'d>(documents: &'d [Value], kind: &str, name: &str) -> Result<&'d Value, String> {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .ok_or_else(|| format!("no {kind} {name}"))
}

pub fn kinds(documents: &[Value]) -> Vec<String> {
    documents
        .iter()
        .map(|d| format!("{}/{}", str_at(&d["kind"]), str_at(&d["metadata"]["name"])))
        .collect()
}

pub fn str_at(v: &Value) -> &str {
    v.as_str().unwrap_or("<not a string>")
}

pub fn webhook(documents: &[Value]) -> Result<&Value, String> {
    let configuration = find(documents, "MutatingWebhookConfiguration", "weft-injector")?;
    Ok(&configuration["webhooks"][0])
}

pub fn injector_container(documents: &[Value]) -> Result<&Value, String> {
    Ok(
        &find(documents, "Deployment", "weft-injector")?["spec"]["template"]["spec"]["containers"]
            [0],
    )
}

pub fn args(documents: &[Value]) -> Result<Vec<String>, String> {
    let container = injector_container(documents)?;
    let args = container["args"].as_sequence().ok_or("no args")?;
    Ok(args.iter().map(|a| str_at(a).to_owned()).collect())
}
