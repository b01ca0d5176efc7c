//! The verifiers against real certificates from `weft-certs`: the right
//! identity passes; another CA, an expired certificate, the wrong identity
//! or another trust domain fail.

use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use weft_certs::{Issuer, SpiffeId, TrustAnchor};

use super::*;
use crate::tls::{TrustAnchors, peer, provider};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const TD: &str = "cluster.local";
const HOUR: Duration = Duration::from_secs(3600);

/// A trust anchor and an issuer it signed.
struct Pki {
    anchor: TrustAnchor,
    issuer: Issuer,
}

impl Pki {
    fn new() -> TestResult<Self> {
        Self::named("test anchor")
    }

    fn named(anchor_name: &str) -> TestResult<Self> {
        let anchor = TrustAnchor::generate(anchor_name, 24 * HOUR)?;
        let pair = anchor.issue_issuer("test issuer", 12 * HOUR)?;
        let issuer = Issuer::from_pem(&pair.cert_pem, &pair.key_pem)?;
        Ok(Self { anchor, issuer })
    }

    fn anchors(&self) -> TestResult<TrustAnchors> {
        Ok(TrustAnchors::from_pem(self.anchor.cert_pem())?)
    }

    /// The leaf's chain (leaf, issuer) for `id`, issued as of `now`.
    fn chain(
        &self,
        id: &SpiffeId,
        validity: Duration,
        now: SystemTime,
    ) -> TestResult<Vec<CertificateDer<'static>>> {
        let (pair, _) = self.issuer.issue_with_key(id, &[], validity, now)?;
        let chain = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(chain)
    }

    fn fresh(&self, id: &SpiffeId) -> TestResult<Vec<CertificateDer<'static>>> {
        self.chain(id, HOUR, SystemTime::now())
    }
}

fn id(ns: &str, sa: &str) -> SpiffeId {
    SpiffeId::new(TD, ns, sa).expect("valid identity")
}

fn server_check(
    anchors: &TrustAnchors,
    chain: &[CertificateDer<'static>],
    asked: &SpiffeId,
) -> Result<ServerCertVerified, rustls::Error> {
    let verifier = MeshServerVerifier::new(anchors, TD, provider());
    let name = peer::server_name(asked).map_err(|e| rustls::Error::General(e.to_string()))?;
    verifier.verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
}

fn client_check(
    anchors: &TrustAnchors,
    chain: &[CertificateDer<'static>],
) -> Result<ClientCertVerified, rustls::Error> {
    let verifier = MeshClientVerifier::new(anchors, TD, provider())
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    verifier.verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
}

#[test]
fn the_announced_identity_is_accepted() -> TestResult {
    let pki = Pki::new()?;
    let web = id("shop", "web");
    let chain = pki.fresh(&web)?;
    server_check(&pki.anchors()?, &chain, &web)?;
    client_check(&pki.anchors()?, &chain)?;
    Ok(())
}

#[test]
fn another_identity_than_announced_is_refused() -> TestResult {
    let pki = Pki::new()?;
    let chain = pki.fresh(&id("shop", "api"))?;
    let error = server_check(&pki.anchors()?, &chain, &id("shop", "web"))
        .err()
        .ok_or("a certificate for shop/api passed as shop/web")?;
    assert!(
        matches!(
            error,
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
        ),
        "{error:?}"
    );
    // Same ServiceAccount name in another namespace is another identity.
    let other_ns = pki.fresh(&id("staging", "web"))?;
    assert!(server_check(&pki.anchors()?, &other_ns, &id("shop", "web")).is_err());
    Ok(())
}

#[test]
fn a_certificate_from_another_ca_is_refused() -> TestResult {
    let web = id("shop", "web");
    // Another CA of another name: no issuer found. Of the same name (two
    // installs with the default anchor name): the signature fails.
    for (theirs_name, expected) in [
        ("their anchor", CertificateError::UnknownIssuer),
        ("test anchor", CertificateError::BadSignature),
    ] {
        let (ours, theirs) = (Pki::new()?, Pki::named(theirs_name)?);
        let chain = theirs.fresh(&web)?;
        for error in [
            server_check(&ours.anchors()?, &chain, &web).err(),
            client_check(&ours.anchors()?, &chain).err(),
        ] {
            let error = error.ok_or("a foreign CA's certificate passed")?;
            assert_eq!(
                error,
                rustls::Error::InvalidCertificate(expected.clone()),
                "{theirs_name}"
            );
        }
    }
    Ok(())
}

#[test]
fn an_expired_certificate_is_refused() -> TestResult {
    let pki = Pki::new()?;
    let web = id("shop", "web");
    // Issued four minutes ago for one minute (the issuer is backdated five).
    let then = SystemTime::now() - Duration::from_secs(240);
    let chain = pki.chain(&web, Duration::from_secs(60), then)?;
    for error in [
        server_check(&pki.anchors()?, &chain, &web).err(),
        client_check(&pki.anchors()?, &chain).err(),
    ] {
        let error = error.ok_or("an expired certificate passed")?;
        assert!(
            matches!(
                error,
                rustls::Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. }
                )
            ),
            "{error:?}"
        );
    }
    Ok(())
}

#[test]
fn another_trust_domain_is_refused() -> TestResult {
    let pki = Pki::new()?;
    let foreign = SpiffeId::new("other.domain", "shop", "web")?;
    let chain = pki.fresh(&foreign)?;
    assert!(client_check(&pki.anchors()?, &chain).is_err());
    // Asked as the local identity of the same name: still refused.
    assert!(server_check(&pki.anchors()?, &chain, &id("shop", "web")).is_err());
    Ok(())
}

#[test]
fn a_bundle_with_old_and_new_anchors_accepts_both() -> TestResult {
    let (old, new) = (Pki::new()?, Pki::new()?);
    let bundle = TrustAnchors::from_pem(&format!(
        "{}{}",
        old.anchor.cert_pem(),
        new.anchor.cert_pem()
    ))?;
    let web = id("shop", "web");
    for pki in [&old, &new] {
        let chain = pki.fresh(&web)?;
        server_check(&bundle, &chain, &web)?;
        client_check(&bundle, &chain)?;
    }
    Ok(())
}

#[test]
fn a_leaf_without_its_issuer_does_not_chain() -> TestResult {
    let pki = Pki::new()?;
    let web = id("shop", "web");
    let chain = pki.fresh(&web)?;
    let leaf_only = &chain[..1];
    assert!(server_check(&pki.anchors()?, leaf_only, &web).is_err());
    assert!(client_check(&pki.anchors()?, leaf_only).is_err());
    Ok(())
}
