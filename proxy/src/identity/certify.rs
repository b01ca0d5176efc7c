//! One certification: `POST /v1/certify` to identity with the projected
//! ServiceAccount token and the CSR, and the checks on what comes back.
//!
//! The token is read from its file at every attempt (the kubelet rotates
//! it). An answer is only installed when its chain verifies against the
//! trust anchors for exactly the proxy's own identity and the certificate
//! is for the proxy's key, so a confused or compromised identity service
//! cannot make the proxy present something its peers would refuse.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use weft_certs::SpiffeId;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::csr::LocalKey;
use crate::tls::control::{ControlClient, ControlError};
use crate::tls::verify::MeshServerVerifier;
use crate::tls::{TrustAnchors, peer, provider};

/// The certification endpoint.
pub const CERTIFY_PATH: &str = "/v1/certify";

/// The largest token file read (a projected token is about 1 KiB).
pub const MAX_TOKEN_BYTES: u64 = 64 * 1024;

#[derive(Serialize)]
struct CertifyRequest<'a> {
    token: &'a str,
    csr: &'a str,
}

#[derive(Deserialize)]
struct CertifyResponse {
    certificate: String,
    #[serde(default)]
    chain: Vec<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// Why a certification attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    /// The token file could not be read.
    #[error("cannot read the token {path}: {source}")]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Identity could not be reached.
    #[error(transparent)]
    Unreachable(#[from] ControlError),
    /// Identity refused (4xx) or failed (5xx).
    #[error("identity answered {status}: {reason}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// Identity's `error`, or the start of the body.
        reason: String,
    },
    /// The answer is not a usable certificate for this proxy.
    #[error("identity's answer is not usable: {0}")]
    InvalidResponse(String),
}

impl CertifyError {
    /// The `result` label of `identity_certify_total`.
    pub fn result(&self) -> &'static str {
        match self {
            Self::Token { .. } => "no_token",
            Self::Unreachable(_) => "unreachable",
            Self::Refused { status, .. } => match status.as_u16() {
                400 | 408 | 413 => "bad_request",
                401 => "unauthenticated",
                403 => "forbidden",
                503 => "unavailable",
                _ => "error",
            },
            Self::InvalidResponse(_) => "invalid_response",
        }
    }
}

/// A verified certificate for the proxy's key.
pub struct Issued {
    /// Chain and key, for rustls.
    pub key: CertifiedKey,
    /// The leaf's expiry.
    pub not_after: SystemTime,
}

/// Asks identity for certificates.
pub struct Certifier {
    client: ControlClient,
    token_file: PathBuf,
    key: Arc<LocalKey>,
    identity: SpiffeId,
    verifier: MeshServerVerifier,
}

impl std::fmt::Debug for Certifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certifier")
            .field("identity", &self.identity.to_string())
            .field("client", &self.client)
            .field("token_file", &self.token_file)
            .finish()
    }
}

impl Certifier {
    /// A certifier for `key` as `identity`, proving it with `token_file`.
    pub fn new(
        client: ControlClient,
        token_file: PathBuf,
        key: Arc<LocalKey>,
        identity: SpiffeId,
        anchors: &TrustAnchors,
    ) -> Self {
        let verifier = MeshServerVerifier::new(anchors, identity.trust_domain(), provider());
        Self {
            client,
            token_file,
            key,
            identity,
            verifier,
        }
    }

    /// One attempt: read the token, ask identity, check the answer.
    pub async fn certify(&self) -> Result<Issued, CertifyError> {
        let token = self.read_token().await?;
        let body = serde_json::to_vec(&CertifyRequest {
            token: token.trim(),
            csr: self.key.csr_pem(),
        })
        .map_err(|e| CertifyError::InvalidResponse(format!("cannot encode the request: {e}")))?;
        let answer = self.client.post_json(CERTIFY_PATH, body).await?;
        if !answer.status.is_success() {
            let reason = match serde_json::from_slice::<ErrorBody>(&answer.body) {
                Ok(body) => body.error,
                Err(_) => {
                    String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)]).into_owned()
                }
            };
            return Err(CertifyError::Refused {
                status: answer.status,
                reason,
            });
        }
        let response: CertifyResponse = serde_json::from_slice(&answer.body)
            .map_err(|e| CertifyError::InvalidResponse(format!("not the expected JSON: {e}")))?;
        self.check(&response)
    }

    async fn read_token(&self) -> Result<String, CertifyError> {
        let error = |source| CertifyError::Token {
            path: self.token_file.clone(),
            source,
        };
        let len = tokio::fs::metadata(&self.token_file)
            .await
            .map_err(error)?
            .len();
        if len > MAX_TOKEN_BYTES {
            return Err(error(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{len} bytes, more than a token's {MAX_TOKEN_BYTES}"),
            )));
        }
        let token = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(error)?;
        if token.trim().is_empty() {
            return Err(error(io::Error::new(
                io::ErrorKind::InvalidData,
                "the file is empty",
            )));
        }
        Ok(token)
    }

    fn check(&self, response: &CertifyResponse) -> Result<Issued, CertifyError> {
        let invalid = |reason: String| CertifyError::InvalidResponse(reason);
        let mut chain = Vec::new();
        for pem in std::iter::once(&response.certificate).chain(&response.chain) {
            for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                chain.push(der.map_err(|e| invalid(format!("a certificate is not PEM: {e}")))?);
            }
        }
        let Some(leaf) = chain.first() else {
            return Err(invalid("no certificate".to_owned()));
        };
        let own_name = peer::server_name(&self.identity).map_err(|e| invalid(e.to_string()))?;
        self.verifier
            .verify_server_cert(leaf, &chain[1..], &own_name, &[], UnixTime::now())
            .map_err(|e| invalid(format!("the certificate does not verify as ours: {e}")))?;
        let not_after = not_after(leaf).map_err(invalid)?;
        let key = CertifiedKey::new(chain, self.key.signing_key());
        key.keys_match()
            .map_err(|e| invalid(format!("the certificate is not for our key: {e}")))?;
        Ok(Issued { key, not_after })
    }
}

/// The expiry of a certificate.
pub fn not_after(cert: &CertificateDer<'_>) -> Result<SystemTime, String> {
    let (_, parsed) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let seconds = parsed.validity().not_after.timestamp();
    let seconds = u64::try_from(seconds).map_err(|_| "expiry before 1970".to_owned())?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}
