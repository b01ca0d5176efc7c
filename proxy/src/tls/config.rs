//! The rustls configurations the proxy uses: mesh server (inbound), mesh
//! client (outbound), and the control-plane client.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::server::ResolvesServerCert;
use rustls::version::TLS13;
use rustls::{ClientConfig, ServerConfig};

use super::verify::{MeshClientVerifier, MeshServerVerifier};
use super::{MESH_ALPN, TlsError, TrustAnchors, provider};

/// Inbound mesh TLS: TLS 1.3, ALPN `weft/1`, a client certificate required
/// and verified on every connection, the proxy's own certificate from
/// `certs`.
///
/// No session resumption: a TLS 1.3 resumed handshake carries no client
/// certificate, so a client whose certificate has since expired (or whose
/// issuer was rotated out) would get in on the strength of an old session.
/// A full handshake per connection is the price of checking every time.
pub fn mesh_server(
    anchors: &TrustAnchors,
    trust_domain: &str,
    certs: Arc<dyn ResolvesServerCert>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let verifier = MeshClientVerifier::new(anchors, trust_domain, provider.clone())?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![MESH_ALPN.to_vec()];
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Outbound mesh TLS: TLS 1.3, ALPN `weft/1`, the proxy's own certificate
/// from `certs`, the server checked against the identity in the server name.
pub fn mesh_client(
    anchors: &TrustAnchors,
    trust_domain: &str,
    certs: Arc<dyn ResolvesClientCert>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let verifier = MeshServerVerifier::new(anchors, trust_domain, provider.clone());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(certs);
    config.alpn_protocols = vec![MESH_ALPN.to_vec()];
    // The server refuses resumption (see `mesh_server`); don't offer it.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// The control plane (identity, destination): the standard webpki check of
/// its certificate and host name against the mesh anchors, no client
/// certificate (a proxy asking for its first one has none), HTTP/2.
pub fn control_client(anchors: &TrustAnchors) -> Result<Arc<ClientConfig>, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(anchors.roots())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weft_certs::{SpiffeId, TrustAnchor};

    use super::*;
    use crate::identity::store::IdentityStore;

    #[test]
    fn mesh_tls_never_resumes_a_session() -> Result<(), Box<dyn std::error::Error>> {
        let anchor = TrustAnchor::generate("test anchor", Duration::from_secs(3600))?;
        let anchors = TrustAnchors::from_pem(anchor.cert_pem())?;
        let store = Arc::new(IdentityStore::new(SpiffeId::new(
            "cluster.local",
            "ns",
            "sa",
        )?));

        let server = mesh_server(&anchors, "cluster.local", store.clone())?;
        assert_eq!(server.send_tls13_tickets, 0, "no TLS 1.3 tickets");
        assert!(
            !server.session_storage.can_cache(),
            "no server-side session cache"
        );

        let client = mesh_client(&anchors, "cluster.local", store)?;
        let disabled = rustls::client::Resumption::disabled();
        assert_eq!(
            format!("{:?}", client.resumption),
            format!("{disabled:?}"),
            "the client offers no resumption"
        );
        Ok(())
    }
}
