//! The mesh's identity material for `weft install`: the operator's trust
//! anchors and issuer (`--identity-*` flags, made with `weft certs`), or a
//! new anchor and issuer made for this install.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use weft_certs::{
    DEFAULT_ISSUER_NAME, DEFAULT_ISSUER_VALIDITY, DEFAULT_TRUST_ANCHOR_NAME,
    DEFAULT_TRUST_ANCHOR_VALIDITY, Issuer, TrustAnchor, TrustBundle,
};
use weft_webhook_config::IdentityCerts;

/// An issuer closer than this to its expiry gets a warning.
const WARN_WITHIN: Duration = Duration::from_secs(60 * 24 * 60 * 60);

/// A new trust anchor and an issuer signed by it. The anchor's key is
/// dropped here: nothing can sign another issuer for this anchor later.
pub(super) fn generate() -> anyhow::Result<IdentityCerts> {
    let anchor = TrustAnchor::generate(DEFAULT_TRUST_ANCHOR_NAME, DEFAULT_TRUST_ANCHOR_VALIDITY)
        .context("making the mesh trust anchor")?;
    let issuer = anchor
        .issue_issuer(DEFAULT_ISSUER_NAME, DEFAULT_ISSUER_VALIDITY)
        .context("making the mesh issuer")?;
    eprintln!(
        "note: made a new mesh trust anchor and issuer for this install; the anchor's key is not kept.\n\
         \x20     Re-running without --identity-* flags replaces them (every meshed pod must then restart).\n\
         \x20     For a stable mesh, make them with `weft certs anchor` and `weft certs issuer`."
    );
    Ok(IdentityCerts {
        trust_anchors_pem: anchor.cert_pem().to_owned(),
        issuer_cert_pem: issuer.cert_pem,
        issuer_key_pem: issuer.key_pem,
    })
}

/// The operator's anchors and issuer, checked: the issuer must load with
/// its key, chain to one of the anchors, and be valid now.
pub(super) fn load(anchors: &Path, cert: &Path, key: &Path) -> anyhow::Result<IdentityCerts> {
    let read = |path: &Path, flag: &str| {
        std::fs::read_to_string(path)
            .with_context(|| format!("could not read {flag} {}", path.display()))
    };
    let anchors_pem = read(anchors, "--identity-trust-anchors-file")?;
    let cert_pem = read(cert, "--identity-issuer-certificate-file")?;
    let key_pem = read(key, "--identity-issuer-key-file")?;

    let bundle = TrustBundle::from_pem(&anchors_pem).with_context(|| {
        format!(
            "--identity-trust-anchors-file {} is not a bundle of CA certificates",
            anchors.display()
        )
    })?;
    let issuer = Issuer::from_pem(&cert_pem, &key_pem).with_context(|| {
        format!(
            "cannot sign with the issuer in {} and {} (pass one PEM CA certificate and its PKCS#8 key, as `weft certs issuer` writes them)",
            cert.display(),
            key.display()
        )
    })?;
    issuer.check_signed_by(&bundle).with_context(|| {
        format!(
            "the issuer {} does not chain to {}: proxies would refuse every certificate it signs",
            cert.display(),
            anchors.display()
        )
    })?;
    let now = SystemTime::now();
    match issuer.not_after().duration_since(now) {
        Err(_) => bail!(
            "the issuer {} has expired: make a new one with `weft certs issuer`",
            cert.display()
        ),
        Ok(left) if left < WARN_WITHIN => eprintln!(
            "warning: the issuer {} expires in {} days; make a new one soon with `weft certs issuer`",
            cert.display(),
            left.as_secs() / 86_400
        ),
        Ok(_) => {}
    }
    Ok(IdentityCerts {
        trust_anchors_pem: bundle.to_pem(),
        issuer_cert_pem: issuer.cert_pem().to_owned(),
        issuer_key_pem: key_pem,
    })
}
