//! The one error type of `weft-certs`.

use std::time::Duration;

/// Why a certificate could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The PEM text is malformed (bad framing, bad base64).
    #[error("invalid PEM: {0}")]
    Pem(#[from] ::pem::PemError),
    /// The PEM text holds no block with the expected label.
    #[error("no PEM block labelled {expected} found")]
    NoPemBlock {
        /// The label that was looked for, e.g. `CERTIFICATE`.
        expected: &'static str,
    },
    /// The PEM text holds more than the one certificate asked for.
    #[error("expected exactly one CERTIFICATE block, found {found}")]
    TooManyCertificates {
        /// How many CERTIFICATE blocks were found.
        found: usize,
    },
    /// The certificate's DER does not parse as X.509.
    #[error("not a valid X.509 certificate: {0}")]
    X509(String),
    /// The private key could not be read.
    #[error("could not read the private key: {reason}")]
    Key {
        /// What is wrong, and what to do about it.
        reason: String,
    },
    /// The private key is not the one the certificate was issued for.
    #[error("the private key does not match the certificate's public key")]
    KeyMismatch,
    /// The certificate cannot sign other certificates.
    #[error("the certificate is not a CA: {0}")]
    NotCa(&'static str),
    /// The CA's subject cannot be reproduced exactly in the certificates it
    /// signs, so clients could not chain them to it.
    #[error(
        "the CA's subject name is not supported (use a CA whose subject is a plain list of single attributes): {0}"
    )]
    UnsupportedCaSubject(String),
    /// The CA has expired (or is not valid yet), so nothing it signs would verify.
    #[error("the CA is not valid now (valid until {not_after_unix} s after the Unix epoch)")]
    CaNotValidNow {
        /// The CA's notAfter as Unix seconds.
        not_after_unix: i64,
    },
    /// A requested lifetime is zero or absurdly long.
    #[error("invalid validity {validity:?}: must be between 1 second and {max:?}")]
    InvalidValidity {
        /// The lifetime asked for.
        validity: Duration,
        /// The longest lifetime accepted.
        max: Duration,
    },
    /// A name cannot go into a certificate.
    #[error("invalid certificate name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A certificate signing request is malformed, unsigned by its key, or
    /// asks for a key type the mesh does not use.
    #[error("invalid certificate signing request: {reason}")]
    InvalidCsr {
        /// What is wrong with it.
        reason: String,
    },
    /// A CSR asks for other names than the one identity its requester holds.
    #[error("the CSR asks for [{}] but may only ask for {allowed}", requested.join(", "))]
    IdentityMismatch {
        /// The names the CSR asked for.
        requested: Vec<String>,
        /// The one SPIFFE ID it may ask for.
        allowed: String,
    },
    /// An issuer is not signed by any anchor of the trust bundle, so
    /// proxies would reject everything it signs.
    #[error("the issuer certificate is not signed by any of the trust anchors")]
    NotSignedByAnchor,
    /// rcgen refused to generate a key or sign a certificate.
    #[error("could not generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
}
