//! The proxy's private key and its certificate signing request.
//!
//! The key (ECDSA P-256) is made in memory when the proxy starts and only
//! ever handed to rustls as a signing key: it is never written to disk or
//! sent anywhere. The CSR asks for exactly one name, the proxy's SPIFFE ID
//! as a URI SAN, which is what identity checks against the token. One key
//! serves the proxy's life; each renewal certifies it again.

use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::SigningKey;
use weft_certs::SpiffeId;

use crate::tls::provider;

/// Why the key or CSR could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// rcgen failed to generate the key or serialise the CSR.
    #[error("cannot make the key or CSR: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls cannot sign with the key.
    #[error("rustls cannot use the key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The in-memory key and the CSR for it.
pub struct LocalKey {
    signing: Arc<dyn SigningKey>,
    csr_pem: String,
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey")
            .field("key", &"[in memory]")
            .field("csr_pem", &self.csr_pem)
            .finish()
    }
}

impl LocalKey {
    /// A fresh key and a CSR for `identity`.
    pub fn generate(identity: &SpiffeId) -> Result<Self, KeyError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        // The issuer decides what a mesh certificate holds; the subject is
        // left empty so the CSR states nothing but the identity.
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(identity.to_string().try_into()?)];
        let csr_pem = params.serialize_request(&key)?.pem()?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = provider().key_provider.load_private_key(der)?;
        Ok(Self { signing, csr_pem })
    }

    /// The CSR (PEM `CERTIFICATE REQUEST`).
    pub fn csr_pem(&self) -> &str {
        &self.csr_pem
    }

    /// The key, for rustls.
    pub fn signing_key(&self) -> Arc<dyn SigningKey> {
        self.signing.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csr_asks_for_exactly_the_identity() -> Result<(), Box<dyn std::error::Error>> {
        let id = SpiffeId::new("cluster.local", "shop", "web")?;
        let key = LocalKey::generate(&id)?;
        let csr = weft_certs::CertificateRequest::from_pem(key.csr_pem())?;
        csr.check_identity(&id)?;
        let other = SpiffeId::new("cluster.local", "shop", "api")?;
        assert!(csr.check_identity(&other).is_err());
        Ok(())
    }

    #[test]
    fn every_proxy_gets_its_own_key() -> Result<(), Box<dyn std::error::Error>> {
        let id = SpiffeId::new("cluster.local", "shop", "web")?;
        let (a, b) = (LocalKey::generate(&id)?, LocalKey::generate(&id)?);
        assert_ne!(a.signing_key().public_key(), b.signing_key().public_key());
        Ok(())
    }
}
