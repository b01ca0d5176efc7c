//! `weft certs`, `weft check` and `weft install --identity-*` as an operator
//! runs them: the built binary, the files it writes, and what the mesh
//! would make of them (chains checked with the same code identity uses).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_yaml::Value;
use weft_certs::{Issuer, Role, TrustAnchor, TrustBundle, summarize};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type BoxError = Box<dyn std::error::Error>;

const DAY: Duration = Duration::from_secs(86_400);

fn weft(args: &[&str]) -> Result<Output, BoxError> {
    Ok(Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()?)
}

/// Runs `weft ARGS` and requires success.
fn ok(args: &[&str]) -> Result<Output, BoxError> {
    let output = weft(args)?;
    if !output.status.success() {
        return Err(format!(
            "weft {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(output)
}

fn path(p: &Path) -> Result<&str, BoxError> {
    Ok(p.to_str().ok_or("non-UTF-8 path")?)
}

fn read(p: &Path) -> Result<String, BoxError> {
    Ok(std::fs::read_to_string(p)?)
}

/// `weft certs anchor` into `dir/anchor`, `weft certs issuer` into
/// `dir/issuer`, with extra issuer flags.
fn anchor_and_issuer(dir: &Path, issuer_flags: &[&str]) -> Result<(), BoxError> {
    let anchor = dir.join("anchor");
    let issuer = dir.join("issuer");
    ok(&["certs", "anchor", "--out", path(&anchor)?])?;
    let mut args = vec![
        "certs",
        "issuer",
        "--anchor",
        path(&anchor)?,
        "--out",
        path(&issuer)?,
    ];
    args.extend_from_slice(issuer_flags);
    ok(&args)?;
    Ok(())
}

#[test]
fn anchor_then_issuer_make_a_chain_identity_accepts() -> TestResult {
    let dir = tempfile::tempdir()?;
    anchor_and_issuer(dir.path(), &[])?;
    let anchor_dir = dir.path().join("anchor");
    let issuer_dir = dir.path().join("issuer");

    let mode = |p: &Path| -> Result<u32, BoxError> {
        Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
    };
    assert_eq!(mode(&anchor_dir.join("ca.key"))?, 0o600);
    assert_eq!(mode(&issuer_dir.join("issuer.key"))?, 0o600);
    assert_eq!(mode(&issuer_dir.join("issuer.crt"))?, 0o644);

    // Both load as what they claim to be, and the issuer chains to the anchor.
    TrustAnchor::from_pem(
        &read(&anchor_dir.join("ca.crt"))?,
        &read(&anchor_dir.join("ca.key"))?,
    )?;
    let issuer = Issuer::from_pem(
        &read(&issuer_dir.join("issuer.crt"))?,
        &read(&issuer_dir.join("issuer.key"))?,
    )?;
    issuer.check_signed_by(&TrustBundle::from_pem(&read(&anchor_dir.join("ca.crt"))?)?)?;

    let anchor = &summarize(&read(&anchor_dir.join("ca.crt"))?)?[0];
    assert_eq!(anchor.role, Role::Root);
    let life = anchor.not_after.duration_since(SystemTime::now())?;
    assert!(life > 3649 * DAY && life <= 3650 * DAY, "{life:?}");
    let issuer = &summarize(&read(&issuer_dir.join("issuer.crt"))?)?[0];
    assert_eq!(issuer.role, Role::Issuer);
    let life = issuer.not_after.duration_since(SystemTime::now())?;
    assert!(life > 364 * DAY && life <= 365 * DAY, "{life:?}");
    Ok(())
}

#[test]
fn nothing_is_overwritten_without_force() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("anchor");
    ok(&["certs", "anchor", "--out", path(&out)?])?;
    let key = read(&out.join("ca.key"))?;
    let again = weft(&["certs", "anchor", "--out", path(&out)?])?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(read(&out.join("ca.key"))?, key, "the key survived");
    ok(&["certs", "anchor", "--out", path(&out)?, "--force"])?;
    assert_ne!(read(&out.join("ca.key"))?, key);
    Ok(())
}

#[test]
fn a_bundle_holds_old_and_new_anchors_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    ok(&["certs", "anchor", "--out", path(&old)?])?;
    ok(&["certs", "anchor", "--out", path(&new)?])?;
    let (old_crt, new_crt) = (old.join("ca.crt"), new.join("ca.crt"));
    let output = ok(&[
        "certs",
        "bundle",
        path(&old_crt)?,
        path(&new_crt)?,
        path(&new_crt)?,
    ])?;
    let bundle = TrustBundle::from_pem(&String::from_utf8(output.stdout)?)?;
    assert_eq!(bundle.anchors().len(), 2);
    assert_eq!(bundle.anchors()[0].cert_pem(), read(&old_crt)?);

    let out = dir.path().join("ca-bundle.crt");
    ok(&[
        "certs",
        "bundle",
        path(&old_crt)?,
        path(&new_crt)?,
        "--out",
        path(&out)?,
    ])?;
    assert_eq!(TrustBundle::from_pem(&read(&out)?)?, bundle);

    // A key is not an anchor.
    let refused = weft(&["certs", "bundle", path(&old.join("ca.key"))?])?;
    assert!(!refused.status.success());
    Ok(())
}

#[test]
fn bad_lifetimes_and_missing_anchors_are_clear_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = path(dir.path())?;
    for (args, expected) in [
        (
            vec!["certs", "anchor", "--out", out, "--validity", "0d"],
            "--validity",
        ),
        (
            vec!["certs", "anchor", "--out", out, "--validity", "ten years"],
            "--validity",
        ),
        (
            vec!["certs", "issuer", "--anchor", out, "--out", out],
            "ca.crt",
        ),
    ] {
        let output = weft(&args)?;
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    Ok(())
}

fn decode(value: &Value) -> Result<String, BoxError> {
    Ok(String::from_utf8(
        BASE64.decode(value.as_str().ok_or("not a string")?)?,
    )?)
}

fn documents(output: &Output) -> Result<Vec<Value>, BoxError> {
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(std::str::from_utf8(&output.stdout)?) {
        documents.push(serde::Deserialize::deserialize(document)?);
    }
    Ok(documents)
}

fn find<'d>(documents: &'d [Value], kind: &str, name: &str) -> Result<&'d Value, String> {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .ok_or_else(|| format!("no {kind} {name}"))
}

#[test]
fn install_ships_the_operators_anchor_and_issuer() -> TestResult {
    let dir = tempfile::tempdir()?;
    anchor_and_issuer(dir.path(), &[])?;
    let anchors = dir.path().join("anchor/ca.crt");
    let cert = dir.path().join("issuer/issuer.crt");
    let key = dir.path().join("issuer/issuer.key");
    let output = ok(&[
        "install",
        "--identity-trust-anchors-file",
        path(&anchors)?,
        "--identity-issuer-certificate-file",
        path(&cert)?,
        "--identity-issuer-key-file",
        path(&key)?,
        "--control-image",
        "registry.local/weft/control:dev",
    ])?;
    let documents = documents(&output)?;
    let config_map = find(&documents, "ConfigMap", "weft-trust-anchors")?;
    assert_eq!(config_map["data"]["ca-bundle.crt"], read(&anchors)?);
    let secret = find(&documents, "Secret", "weft-identity-issuer")?;
    assert_eq!(decode(&secret["data"]["tls.crt"])?, read(&cert)?);
    assert_eq!(decode(&secret["data"]["tls.key"])?, read(&key)?);
    let control = find(&documents, "Deployment", "weft-control")?;
    assert_eq!(
        control["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/weft/control:dev"
    );
    // The anchor's key is nowhere in the output.
    let stdout = String::from_utf8(output.stdout.clone())?;
    let anchor_key = read(&dir.path().join("anchor/ca.key"))?;
    assert!(!stdout.contains(&BASE64.encode(&anchor_key)));
    assert!(!stdout.contains(anchor_key.trim()));
    Ok(())
}

#[test]
fn install_without_identity_files_makes_a_chain_and_says_so() -> TestResult {
    let output = ok(&["install"])?;
    assert!(String::from_utf8_lossy(&output.stderr).contains("new mesh trust anchor"));
    let documents = documents(&output)?;
    let anchors = find(&documents, "ConfigMap", "weft-trust-anchors")?["data"]["ca-bundle.crt"]
        .as_str()
        .ok_or("no bundle")?
        .to_owned();
    let secret = find(&documents, "Secret", "weft-identity-issuer")?;
    let issuer = Issuer::from_pem(
        &decode(&secret["data"]["tls.crt"])?,
        &decode(&secret["data"]["tls.key"])?,
    )?;
    issuer.check_signed_by(&TrustBundle::from_pem(&anchors)?)?;
    Ok(())
}

#[test]
fn install_refuses_an_issuer_from_another_anchor() -> TestResult {
    let dir = tempfile::tempdir()?;
    anchor_and_issuer(dir.path(), &[])?;
    let other = dir.path().join("other");
    ok(&["certs", "anchor", "--out", path(&other)?])?;
    let output = weft(&[
        "install",
        "--identity-trust-anchors-file",
        path(&other.join("ca.crt"))?,
        "--identity-issuer-certificate-file",
        path(&dir.path().join("issuer/issuer.crt"))?,
        "--identity-issuer-key-file",
        path(&dir.path().join("issuer/issuer.key"))?,
    ])?;
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not chain"));

    // The three files go together.
    let output = weft(&[
        "install",
        "--identity-issuer-certificate-file",
        path(&dir.path().join("issuer/issuer.crt"))?,
    ])?;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--identity-trust-anchors-file"));
    Ok(())
}

#[test]
fn check_passes_healthy_certificates_and_warns_before_expiry() -> TestResult {
    let dir = tempfile::tempdir()?;
    anchor_and_issuer(dir.path(), &["--validity", "30d"])?;
    let anchor = dir.path().join("anchor");
    let issuer = dir.path().join("issuer");
    let output = ok(&[
        "check",
        "--certs-dir",
        path(&anchor)?,
        "--certs-dir",
        path(&issuer)?,
    ])?;
    let stdout = String::from_utf8(output.stdout)?;
    assert!(stdout.contains("√ trust anchor"), "{stdout}");
    assert!(stdout.contains("‼ issuer"), "{stdout}");
    assert!(stdout.contains("expires in 29 days"), "{stdout}");
    assert!(stdout.contains("√ issuer") && stdout.contains("signed by a trust anchor"));
    assert!(stdout.contains("(0 errors, 1 warning)"), "{stdout}");

    let output = ok(&[
        "check",
        "--trust-anchors-file",
        path(&anchor.join("ca.crt"))?,
        "--issuer-certificate-file",
        path(&issuer.join("issuer.crt"))?,
        "--warn-within",
        "7d",
    ])?;
    assert!(String::from_utf8(output.stdout)?.contains("(0 errors, 0 warnings)"));
    Ok(())
}

#[test]
fn check_fails_an_issuer_that_does_not_chain() -> TestResult {
    let dir = tempfile::tempdir()?;
    anchor_and_issuer(dir.path(), &[])?;
    let other = dir.path().join("other");
    ok(&["certs", "anchor", "--out", path(&other)?])?;
    let output = weft(&[
        "check",
        "--trust-anchors-file",
        path(&other.join("ca.crt"))?,
        "--issuer-certificate-file",
        path(&dir.path().join("issuer/issuer.crt"))?,
    ])?;
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout)?;
    assert!(stdout.contains("× issuer"), "{stdout}");
    assert!(
        stdout.contains("not signed by any trust anchor"),
        "{stdout}"
    );

    let nothing = weft(&["check"])?;
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("nothing to check"));
    Ok(())
}
