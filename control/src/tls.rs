//! TLS for the control plane's HTTPS ports: ring as the only crypto
//! provider, certificates built from PEM, HTTP/2 and HTTP/1.1 by ALPN.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;

/// Why a certificate cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The issuer could not sign it.
    #[error("cannot issue the serving certificate: {0}")]
    Issue(#[source] weft_certs::Error),
    /// The PEM holds no usable certificate chain.
    #[error("no valid PEM certificate: {0}")]
    Certificate(String),
    /// The PEM holds no usable private key.
    #[error("no valid PEM private key: {0}")]
    Key(String),
    /// rustls refused the pair or the configuration.
    #[error("rustls refused it: {0}")]
    Rejected(#[source] rustls::Error),
}

/// The crypto provider of every TLS endpoint here.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A servable pair from PEM: the chain (leaf first) and its key.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Certificate("no CERTIFICATE block".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Rejected)
}

/// A server configuration that takes its certificate from `resolver` at
/// each handshake: TLS 1.2 and 1.3, no client certificates (a proxy asking
/// for its first certificate has none), `h2` and `http/1.1` by ALPN.
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rejected)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(
            certified_key(b"", b""),
            Err(TlsError::Certificate(_))
        ));
        let cert = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            certified_key(cert, b""),
            Err(TlsError::Certificate(_))
        ));
    }
}
