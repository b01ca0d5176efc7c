//! The serving certificate as a TLS client sees it: verified with rustls's
//! webpki verifier against the CA, the way the API server checks a webhook
//! against its `caBundle`.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use weft_certs::{Ca, DEFAULT_CA_VALIDITY, DEFAULT_SERVING_VALIDITY, webhook_dns_names};
use x509_parser::extensions::GeneralName;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn der(pem: &str) -> Result<CertificateDer<'static>, Box<dyn std::error::Error>> {
    let mut reader = Cursor::new(pem.as_bytes());
    let first = rustls_pemfile::certs(&mut reader).next();
    Ok(first.ok_or("no certificate in PEM")??)
}

/// Verify `leaf_pem` for `name` against `ca_pem` only.
fn verify(ca_pem: &str, leaf_pem: &str, name: &str) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = der(ca_pem).map_err(|e| rustls::Error::General(e.to_string()))?;
    roots.add(ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let leaf = der(leaf_pem).map_err(|e| rustls::Error::General(e.to_string()))?;
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|e| rustls::Error::General(e.to_string()))?;
    verifier.verify_server_cert(&leaf, &[], &server_name, &[], UnixTime::now())?;
    Ok(())
}

fn webhook_leaf(ca: &Ca) -> Result<weft_certs::CertifiedKeyPem, weft_certs::Error> {
    ca.issue_serving(
        &webhook_dns_names("weft-injector", "weft"),
        DEFAULT_SERVING_VALIDITY,
    )
}

#[test]
fn leaf_verifies_for_every_service_name() -> TestResult {
    let ca = Ca::generate("weft webhook CA", DEFAULT_CA_VALIDITY)?;
    let leaf = webhook_leaf(&ca)?;
    for name in webhook_dns_names("weft-injector", "weft") {
        verify(ca.cert_pem(), &leaf.cert_pem, &name)
            .map_err(|e| format!("{name} should verify: {e}"))?;
    }
    Ok(())
}

#[test]
fn leaf_fails_for_a_name_it_does_not_carry() -> TestResult {
    let ca = Ca::generate("weft webhook CA", DEFAULT_CA_VALIDITY)?;
    let leaf = webhook_leaf(&ca)?;
    for wrong in ["weft-injector.other.svc", "evil.example.com", "weft"] {
        let err = verify(ca.cert_pem(), &leaf.cert_pem, wrong)
            .err()
            .ok_or_else(|| format!("{wrong} must not verify"))?;
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                    | rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForNameContext { .. }
                    )
            ),
            "{wrong}: {err:?}"
        );
    }
    Ok(())
}

#[test]
fn leaf_fails_against_another_ca() -> TestResult {
    let ca = Ca::generate("weft webhook CA", DEFAULT_CA_VALIDITY)?;
    // Same name, different key: only the signature tells them apart.
    let other = Ca::generate("weft webhook CA", DEFAULT_CA_VALIDITY)?;
    let leaf = webhook_leaf(&ca)?;
    let err = verify(other.cert_pem(), &leaf.cert_pem, "weft-injector.weft.svc")
        .err()
        .ok_or("a leaf must not verify against another CA")?;
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn ip_entries_become_ip_sans_and_verify() -> TestResult {
    let ca = Ca::generate("weft webhook CA", DEFAULT_CA_VALIDITY)?;
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let leaf = ca.issue_serving(&names, DEFAULT_SERVING_VALIDITY)?;

    let der = der(&leaf.cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)?;
    let sans = cert
        .subject_alternative_name()?
        .ok_or("no SAN extension")?
        .value
        .general_names
        .clone();
    let dns: Vec<&str> = sans
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(*d),
            _ => None,
        })
        .collect();
    let ips: Vec<&[u8]> = sans
        .iter()
        .filter_map(|n| match n {
            GeneralName::IPAddress(ip) => Some(*ip),
            _ => None,
        })
        .collect();
    assert_eq!(dns, ["localhost"]);
    assert_eq!(ips.len(), 2);
    assert_eq!(ips[0], [127, 0, 0, 1]);
    assert_eq!(ips[1].len(), 16);

    verify(ca.cert_pem(), &leaf.cert_pem, "127.0.0.1")?;
    verify(ca.cert_pem(), &leaf.cert_pem, "localhost")?;
    assert!(verify(ca.cert_pem(), &leaf.cert_pem, "127.0.0.2").is_err());
    Ok(())
}

#[test]
fn leaf_is_a_server_certificate_not_a_ca() -> TestResult {
    let ca = Ca::generate("weft webhook CA", DEFAULT_CA_VALIDITY)?;
    let leaf = webhook_leaf(&ca)?;
    let der = der(&leaf.cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)?;

    let bc = cert.basic_constraints()?.ok_or("no basicConstraints")?;
    assert!(!bc.value.ca);
    let ku = cert.key_usage()?.ok_or("no keyUsage")?;
    assert!(ku.value.digital_signature());
    assert!(!ku.value.key_cert_sign());
    let eku = cert.extended_key_usage()?.ok_or("no extendedKeyUsage")?;
    assert!(eku.value.server_auth);
    assert!(!eku.value.client_auth);
    assert_eq!(cert.subject().to_string(), "CN=weft-injector");
    assert_eq!(cert.issuer().to_string(), "CN=weft webhook CA");

    // A leaf cannot be used to sign: webpki refuses a chain through it.
    let grandchild = Ca::generate("x", DEFAULT_CA_VALIDITY)?
        .issue_serving(&["a".to_owned()], DEFAULT_SERVING_VALIDITY)?;
    assert!(Ca::from_pem(&leaf.cert_pem, &leaf.key_pem).is_err());
    assert!(verify(&leaf.cert_pem, &grandchild.cert_pem, "a").is_err());
    Ok(())
}

fn seconds_between(a: SystemTime, b: SystemTime) -> i64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[test]
fn validity_is_as_asked_and_backdated() -> TestResult {
    let start = SystemTime::now();
    let ca = Ca::generate("weft webhook CA", DEFAULT_CA_VALIDITY)?;
    let leaf = ca.issue_serving(&["a.b".to_owned()], Duration::from_secs(3600))?;

    let ca_after = weft_certs::not_after(ca.cert_pem())?;
    let leaf_after = weft_certs::not_after(&leaf.cert_pem)?;
    assert_eq!(ca_after, ca.not_after());
    // X.509 dates have one-second resolution; allow a few seconds for the test.
    let ca_delta = seconds_between(start, ca_after) - DEFAULT_CA_VALIDITY.as_secs() as i64;
    assert!(
        (-2..=5).contains(&ca_delta),
        "CA notAfter off by {ca_delta}s"
    );
    let leaf_delta = seconds_between(start, leaf_after) - 3600;
    assert!(
        (-2..=5).contains(&leaf_delta),
        "leaf notAfter off by {leaf_delta}s"
    );

    let der = der(&leaf.cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)?;
    let backdate = start.duration_since(SystemTime::UNIX_EPOCH)?.as_secs() as i64
        - cert.validity().not_before.timestamp();
    let skew = weft_certs::CLOCK_SKEW_ALLOWANCE.as_secs() as i64;
    assert!(
        (skew - 5..=skew + 2).contains(&backdate),
        "backdated {backdate}s"
    );
    Ok(())
}

#[test]
fn leaf_never_outlives_its_ca() -> TestResult {
    let ca = Ca::generate("short-lived CA", Duration::from_secs(600))?;
    let leaf = ca.issue_serving(&["a".to_owned()], DEFAULT_SERVING_VALIDITY)?;
    assert_eq!(weft_certs::not_after(&leaf.cert_pem)?, ca.not_after());
    Ok(())
}

#[test]
fn from_pem_round_trips_and_keeps_issuing_verifiable_leaves() -> TestResult {
    let ca = Ca::generate("weft webhook CA", DEFAULT_CA_VALIDITY)?;
    let loaded = Ca::from_pem(ca.cert_pem(), ca.key_pem())?;
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    assert_eq!(loaded.key_pem(), ca.key_pem());
    assert_eq!(loaded.not_after(), ca.not_after());

    let leaf = webhook_leaf(&loaded)?;
    verify(
        ca.cert_pem(),
        &leaf.cert_pem,
        "weft-injector.weft.svc.cluster.local",
    )?;
    Ok(())
}

#[test]
fn from_pem_refuses_a_key_that_is_not_the_cas() -> TestResult {
    let ca = Ca::generate("a", DEFAULT_CA_VALIDITY)?;
    let other = Ca::generate("b", DEFAULT_CA_VALIDITY)?;
    assert!(matches!(
        Ca::from_pem(ca.cert_pem(), other.key_pem()),
        Err(weft_certs::Error::KeyMismatch)
    ));
    Ok(())
}

#[test]
fn from_pem_refuses_garbage_without_panicking() -> TestResult {
    let ca = Ca::generate("a", DEFAULT_CA_VALIDITY)?;
    let truncated = &ca.cert_pem()[..ca.cert_pem().len() / 2];
    let chain = format!("{}{}", ca.cert_pem(), ca.cert_pem());
    let cases: [(&str, &str); 7] = [
        ("", ""),
        ("garbage", ca.key_pem()),
        (truncated, ca.key_pem()),
        (&chain, ca.key_pem()),
        (ca.cert_pem(), "garbage"),
        (ca.cert_pem(), ca.cert_pem()),
        (
            "-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n",
            ca.key_pem(),
        ),
    ];
    for (cert, key) in cases {
        assert!(
            Ca::from_pem(cert, key).is_err(),
            "cert {cert:?} with key {key:?} must be refused"
        );
    }
    Ok(())
}

#[test]
fn bad_requests_are_errors() -> TestResult {
    let ca = Ca::generate("a", DEFAULT_CA_VALIDITY)?;
    assert!(ca.issue_serving(&[], DEFAULT_SERVING_VALIDITY).is_err());
    assert!(
        ca.issue_serving(&["has space".to_owned()], DEFAULT_SERVING_VALIDITY)
            .is_err()
    );
    assert!(ca.issue_serving(&["a".to_owned()], Duration::ZERO).is_err());
    assert!(Ca::generate("", DEFAULT_CA_VALIDITY).is_err());
    assert!(Ca::generate("a", Duration::ZERO).is_err());
    Ok(())
}

#[test]
fn debug_output_never_shows_a_key() -> TestResult {
    let ca = Ca::generate("a", DEFAULT_CA_VALIDITY)?;
    let leaf = webhook_leaf(&ca)?;
    assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    assert!(!format!("{leaf:?}").contains("PRIVATE KEY"));
    Ok(())
}

// Made once with OpenSSL so that `from_pem` is proven on a CA weft did not
// make (PrintableString and UTF8String attributes, OpenSSL's extensions):
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
//     -keyout openssl-ca.key -out openssl-ca.crt -days 36500 \
//     -subj "/C=US/O=Example Org/CN=Example Webhook CA" \
//     -addext "basicConstraints=critical,CA:TRUE" \
//     -addext "keyUsage=critical,keyCertSign,cRLSign"
//   openssl ec -in openssl-ca.key -out openssl-ca.sec1.key
const OPENSSL_CA: &str = include_str!("fixtures/openssl-ca.crt");
const OPENSSL_CA_KEY: &str = include_str!("fixtures/openssl-ca.key");
const OPENSSL_CA_SEC1_KEY: &str = include_str!("fixtures/openssl-ca.sec1.key");

#[test]
fn an_openssl_made_ca_issues_leaves_that_verify() -> TestResult {
    let ca = Ca::from_pem(OPENSSL_CA, OPENSSL_CA_KEY)?;
    let leaf = webhook_leaf(&ca)?;
    verify(OPENSSL_CA, &leaf.cert_pem, "weft-injector.weft.svc")?;
    Ok(())
}

#[test]
fn a_sec1_key_is_refused_with_the_command_that_converts_it() {
    match Ca::from_pem(OPENSSL_CA, OPENSSL_CA_SEC1_KEY) {
        Err(weft_certs::Error::Key { reason }) => {
            assert!(reason.contains("openssl pkcs8 -topk8"), "{reason}");
        }
        other => panic!("expected a key error with a hint, got {other:?}"),
    }
}
