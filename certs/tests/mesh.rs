//! The mesh's certificates end to end, without a network: anchor → issuer →
//! leaf from a proxy's CSR, verified by rustls's webpki verifier against the
//! trust bundle the way a proxy verifies its peer, through issuer and anchor
//! rotations.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, KeyPair, SanType};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use weft_certs::{
    Ca, CertificateRequest, DEFAULT_ISSUER_NAME, DEFAULT_ISSUER_VALIDITY, DEFAULT_LEAF_VALIDITY,
    DEFAULT_TRUST_ANCHOR_NAME, DEFAULT_TRUST_ANCHOR_VALIDITY, Error, IssuedCertificate, Issuer,
    Role, SpiffeId, TrustAnchor, TrustBundle, summarize,
};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer as _;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type BoxError = Box<dyn std::error::Error>;

const DAY: Duration = Duration::from_secs(86_400);

fn ders(pem: &str) -> Result<Vec<CertificateDer<'static>>, BoxError> {
    let mut reader = Cursor::new(pem.as_bytes());
    Ok(rustls_pemfile::certs(&mut reader).collect::<Result<_, _>>()?)
}

/// Verify `issued` against `anchors_pem` as a proxy verifies a peer's
/// client certificate: chain through the sent intermediates to an anchor,
/// dates at `now`, the clientAuth usage.
fn verify(anchors_pem: &str, issued: &IssuedCertificate, now: SystemTime) -> Result<(), BoxError> {
    let mut roots = RootCertStore::empty();
    for anchor in ders(anchors_pem)? {
        roots.add(anchor)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
    let leaf = ders(&issued.cert_pem)?.remove(0);
    let mut intermediates = Vec::new();
    for pem in &issued.chain_pem {
        intermediates.extend(ders(pem)?);
    }
    let seconds = now.duration_since(SystemTime::UNIX_EPOCH)?.as_secs();
    verifier.verify_client_cert(
        &leaf,
        &intermediates,
        UnixTime::since_unix_epoch(Duration::from_secs(seconds)),
    )?;
    Ok(())
}

fn csr(uri: &str) -> Result<(KeyPair, CertificateRequest), BoxError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
    let csr = CertificateRequest::from_pem(&params.serialize_request(&key)?.pem()?)?;
    Ok((key, csr))
}

fn new_issuer(anchor: &TrustAnchor, validity: Duration) -> Result<Issuer, Error> {
    let pair = anchor.issue_issuer(DEFAULT_ISSUER_NAME, validity)?;
    Issuer::from_pem(&pair.cert_pem, &pair.key_pem)
}

fn web() -> Result<SpiffeId, Error> {
    SpiffeId::new("cluster.local", "shop", "web")
}

#[test]
fn a_leaf_from_a_csr_verifies_to_the_anchor_with_exactly_its_identity() -> TestResult {
    let anchor = TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, DEFAULT_TRUST_ANCHOR_VALIDITY)?;
    let issuer = new_issuer(&anchor, DEFAULT_ISSUER_VALIDITY)?;
    let (key, csr) = csr("spiffe://cluster.local/ns/shop/sa/web")?;
    csr.check_identity(&web()?)?;
    let now = SystemTime::now();
    let issued = issuer.certify(&csr, &web()?, DEFAULT_LEAF_VALIDITY, now)?;

    verify(anchor.cert_pem(), &issued, now)?;
    assert_eq!(issued.chain_pem, [issuer.cert_pem().to_owned()]);

    let der = ders(&issued.cert_pem)?.remove(0);
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der)?;
    // The leaf certifies the proxy's own key (the key never left it).
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
    let mut uris = Vec::new();
    let mut server_and_client = false;
    let mut san_critical = false;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                san_critical = ext.critical;
                for name in &san.general_names {
                    uris.push(name.to_string());
                }
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                server_and_client = eku.server_auth && eku.client_auth && !eku.any;
            }
            ParsedExtension::BasicConstraints(bc) => assert!(!bc.ca),
            _ => {}
        }
    }
    assert_eq!(uris, ["URI(spiffe://cluster.local/ns/shop/sa/web)"]);
    assert!(server_and_client, "both serverAuth and clientAuth");
    assert!(san_critical, "an empty subject needs a critical SAN");
    assert!(cert.subject().as_raw().len() <= 2, "no subject attributes");

    let lifetime = issued.not_after.duration_since(now)?;
    assert!(lifetime <= DEFAULT_LEAF_VALIDITY && lifetime > DEFAULT_LEAF_VALIDITY - DAY / 24);

    let summary = summarize(&issued.cert_pem)?;
    assert_eq!(summary[0].role, Role::Leaf);
    assert_eq!(summary[0].uris, ["spiffe://cluster.local/ns/shop/sa/web"]);
    Ok(())
}

#[test]
fn each_certificate_for_the_same_key_gets_its_own_serial() -> TestResult {
    let anchor = TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, DEFAULT_TRUST_ANCHOR_VALIDITY)?;
    let issuer = new_issuer(&anchor, DEFAULT_ISSUER_VALIDITY)?;
    let (_key, csr) = csr("spiffe://cluster.local/ns/shop/sa/web")?;
    let now = SystemTime::now();
    let serial = |issued: &IssuedCertificate| -> Result<Vec<u8>, BoxError> {
        let der = ders(&issued.cert_pem)?.remove(0);
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der)?;
        Ok(cert.raw_serial().to_vec())
    };
    let first = issuer.certify(&csr, &web()?, DEFAULT_LEAF_VALIDITY, now)?;
    let second = issuer.certify(&csr, &web()?, DEFAULT_LEAF_VALIDITY, now)?;
    assert_ne!(serial(&first)?, serial(&second)?);
    Ok(())
}

#[test]
fn the_issuer_signs_for_the_identity_given_not_the_one_asked() -> TestResult {
    // Identity refuses a mismatched CSR before signing; should a caller
    // skip that check, the leaf still names only the identity it passed.
    let anchor = TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, DEFAULT_TRUST_ANCHOR_VALIDITY)?;
    let issuer = new_issuer(&anchor, DEFAULT_ISSUER_VALIDITY)?;
    let (_key, csr) = csr("spiffe://cluster.local/ns/shop/sa/db")?;
    assert!(matches!(
        csr.check_identity(&web()?),
        Err(Error::IdentityMismatch { .. })
    ));
    let issued = issuer.certify(&csr, &web()?, DEFAULT_LEAF_VALIDITY, SystemTime::now())?;
    assert_eq!(
        summarize(&issued.cert_pem)?[0].uris,
        ["spiffe://cluster.local/ns/shop/sa/web"]
    );
    Ok(())
}

#[test]
fn roles_and_lifetimes_nest() -> TestResult {
    let anchor = TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, 30 * DAY)?;
    let issuer = new_issuer(&anchor, DEFAULT_ISSUER_VALIDITY)?;
    let anchor_summary = &summarize(anchor.cert_pem())?[0];
    assert_eq!(anchor_summary.role, Role::Root);
    assert!(anchor_summary.self_issued);
    let issuer_summary = &summarize(issuer.cert_pem())?[0];
    assert_eq!(issuer_summary.role, Role::Issuer);
    assert_eq!(issuer_summary.issuer, anchor_summary.subject);
    // An issuer asked to outlive its anchor stops with it; so does a leaf.
    assert_eq!(issuer.not_after(), anchor.not_after());

    let (_key, csr) = csr("spiffe://cluster.local/ns/shop/sa/web")?;
    let late = anchor.not_after() - Duration::from_secs(3600);
    let issued = issuer.certify(&csr, &web()?, DEFAULT_LEAF_VALIDITY, late)?;
    assert_eq!(issued.not_after, issuer.not_after());
    Ok(())
}

#[test]
fn an_issuer_outside_its_validity_refuses_to_sign() -> TestResult {
    let anchor = TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, DEFAULT_TRUST_ANCHOR_VALIDITY)?;
    let issuer = new_issuer(&anchor, DAY)?;
    let (_key, csr) = csr("spiffe://cluster.local/ns/shop/sa/web")?;
    for when in [
        issuer.not_after() + Duration::from_secs(1),
        issuer.not_before() - Duration::from_secs(1),
    ] {
        assert!(matches!(
            issuer.certify(&csr, &web()?, DEFAULT_LEAF_VALIDITY, when),
            Err(Error::CaNotValidNow { .. })
        ));
    }
    Ok(())
}

#[test]
fn a_new_issuer_from_the_same_anchor_needs_no_proxy_change() -> TestResult {
    let anchor = TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, DEFAULT_TRUST_ANCHOR_VALIDITY)?;
    let old = new_issuer(&anchor, DEFAULT_ISSUER_VALIDITY)?;
    let new = new_issuer(&anchor, DEFAULT_ISSUER_VALIDITY)?;
    let now = SystemTime::now();
    for issuer in [&old, &new] {
        let (_key, csr) = csr("spiffe://cluster.local/ns/shop/sa/web")?;
        let issued = issuer.certify(&csr, &web()?, DEFAULT_LEAF_VALIDITY, now)?;
        verify(anchor.cert_pem(), &issued, now)?;
    }
    Ok(())
}

#[test]
fn an_anchor_rotates_through_a_bundle_of_old_and_new() -> TestResult {
    let old_anchor =
        TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, DEFAULT_TRUST_ANCHOR_VALIDITY)?;
    let new_anchor =
        TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, DEFAULT_TRUST_ANCHOR_VALIDITY)?;
    let old_issuer = new_issuer(&old_anchor, DEFAULT_ISSUER_VALIDITY)?;
    let new_issuer = new_issuer(&new_anchor, DEFAULT_ISSUER_VALIDITY)?;
    let now = SystemTime::now();
    let (_k1, csr1) = csr("spiffe://cluster.local/ns/shop/sa/web")?;
    let (_k2, csr2) = csr("spiffe://cluster.local/ns/shop/sa/web")?;
    let from_old = old_issuer.certify(&csr1, &web()?, DEFAULT_LEAF_VALIDITY, now)?;
    let from_new = new_issuer.certify(&csr2, &web()?, DEFAULT_LEAF_VALIDITY, now)?;

    // Same subject name on both anchors: verifiers must try each.
    let old = TrustBundle::from_pem(old_anchor.cert_pem())?;
    let new = TrustBundle::from_pem(new_anchor.cert_pem())?;
    let both = TrustBundle::merge([&old, &new]);
    assert_eq!(both.anchors().len(), 2);
    assert_eq!(TrustBundle::merge([&both, &new]), both);
    for issued in [&from_old, &from_new] {
        verify(&both.to_pem(), issued, now)?;
    }
    // Each anchor alone accepts only its own chain.
    assert!(verify(&old.to_pem(), &from_new, now).is_err());
    assert!(verify(&new.to_pem(), &from_old, now).is_err());

    new_issuer.check_signed_by(&both)?;
    new_issuer.check_signed_by(&new)?;
    assert!(matches!(
        new_issuer.check_signed_by(&old),
        Err(Error::NotSignedByAnchor)
    ));
    Ok(())
}

#[test]
fn a_leaf_does_not_verify_against_another_mesh() -> TestResult {
    let ours = TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, DEFAULT_TRUST_ANCHOR_VALIDITY)?;
    let theirs = TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, DEFAULT_TRUST_ANCHOR_VALIDITY)?;
    let issuer = new_issuer(&theirs, DEFAULT_ISSUER_VALIDITY)?;
    let (_key, csr) = csr("spiffe://cluster.local/ns/shop/sa/web")?;
    let now = SystemTime::now();
    let issued = issuer.certify(&csr, &web()?, DEFAULT_LEAF_VALIDITY, now)?;
    assert!(verify(ours.cert_pem(), &issued, now).is_err());
    // Nor after it expires, against the right anchor.
    assert!(verify(theirs.cert_pem(), &issued, now + 2 * DAY).is_err());
    Ok(())
}

#[test]
fn an_anchor_must_be_able_to_sign_an_issuer() -> TestResult {
    // The webhook CA has path length 0: fine for serving certificates,
    // useless as a mesh root.
    let webhook_ca = Ca::generate("weft webhook CA", DAY)?;
    assert!(matches!(
        TrustAnchor::from_pem(webhook_ca.cert_pem(), webhook_ca.key_pem()),
        Err(Error::NotCa(_))
    ));
    let anchor = TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, DAY)?;
    let reloaded = TrustAnchor::from_pem(anchor.cert_pem(), anchor.key_pem())?;
    assert_eq!(reloaded.cert_pem(), anchor.cert_pem());
    // A key that is not the certificate's is refused.
    let other = TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, DAY)?;
    assert!(matches!(
        TrustAnchor::from_pem(anchor.cert_pem(), other.key_pem()),
        Err(Error::KeyMismatch)
    ));
    // A leaf is not a bundle anchor.
    let issuer = new_issuer(&anchor, DAY)?;
    let (_key, csr) = csr("spiffe://cluster.local/ns/shop/sa/web")?;
    let leaf = issuer.certify(&csr, &web()?, DAY, SystemTime::now())?;
    assert!(matches!(
        TrustBundle::from_pem(&leaf.cert_pem),
        Err(Error::NotCa(_))
    ));
    Ok(())
}

#[test]
fn the_control_planes_own_certificate_carries_its_identity_and_service_names() -> TestResult {
    let anchor = TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, DEFAULT_TRUST_ANCHOR_VALIDITY)?;
    let issuer = new_issuer(&anchor, DEFAULT_ISSUER_VALIDITY)?;
    let identity = SpiffeId::new("cluster.local", "weft", "weft-control")?;
    let names = vec!["weft-identity.weft.svc".to_owned()];
    let (pair, not_after) =
        issuer.issue_with_key(&identity, &names, DEFAULT_LEAF_VALIDITY, SystemTime::now())?;
    let chain = summarize(&pair.cert_pem)?;
    assert_eq!(chain.len(), 2, "leaf then issuer");
    assert_eq!(chain[0].uris, [identity.to_string()]);
    assert_eq!(chain[0].dns_names, names);
    assert_eq!(chain[0].not_after, not_after);
    assert_eq!(chain[1].role, Role::Issuer);
    Ok(())
}
