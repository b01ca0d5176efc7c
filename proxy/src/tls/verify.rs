//! The two certificate verifiers of mesh TLS.
//!
//! Both check the chain to the trust anchors with webpki (signatures,
//! validity period, CA constraints, key usage) and then the SPIFFE ID:
//! the server verifier accepts only the identity the outbound proxy asked
//! for in its server name, the client verifier any identity of the local
//! trust domain (which the inbound proxy then records). A certificate from
//! another CA, an expired one, one without exactly one SPIFFE ID, or with
//! the wrong identity fails the handshake.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};

use super::peer::{self, PeerIdError};
use super::{TlsError, TrustAnchors};

fn peer_error(error: PeerIdError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(error))))
}

/// Verifies an inbound peer's server certificate on outbound connections.
#[derive(Debug)]
pub struct MeshServerVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    trust_domain: String,
}

impl MeshServerVerifier {
    /// A verifier for identities of `trust_domain` chained to `anchors`.
    pub fn new(anchors: &TrustAnchors, trust_domain: &str, provider: Arc<CryptoProvider>) -> Self {
        Self {
            roots: anchors.roots(),
            provider,
            trust_domain: trust_domain.to_owned(),
        }
    }
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let presented = peer::spiffe_id(end_entity, &self.trust_domain).map_err(peer_error)?;
        let asked = match server_name {
            ServerName::DnsName(name) => name.as_ref(),
            _ => return Err(CertificateError::NotValidForName.into()),
        };
        if peer::server_name_text(&presented) != asked {
            return Err(CertificateError::NotValidForNameContext {
                expected: server_name.to_owned(),
                presented: vec![presented.to_string()],
            }
            .into());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Verifies a mesh client's certificate on inbound connections: webpki's
/// client verifier (chain, validity, clientAuth usage), then one SPIFFE ID
/// of the local trust domain.
#[derive(Debug)]
pub struct MeshClientVerifier {
    chain: Arc<dyn ClientCertVerifier>,
    trust_domain: String,
}

impl MeshClientVerifier {
    /// A verifier that requires a certificate chained to `anchors`.
    pub fn new(
        anchors: &TrustAnchors,
        trust_domain: &str,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let chain = WebPkiClientVerifier::builder_with_provider(anchors.roots(), provider)
            .build()
            .map_err(|e| TlsError::BadAnchor {
                index: 0,
                reason: e.to_string(),
            })?;
        Ok(Self {
            chain,
            trust_domain: trust_domain.to_owned(),
        })
    }
}

impl ClientCertVerifier for MeshClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .chain
            .verify_client_cert(end_entity, intermediates, now)?;
        peer::spiffe_id(end_entity, &self.trust_domain).map_err(peer_error)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
