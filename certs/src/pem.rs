//! Reading and writing PEM, and the few facts read back from a certificate.

use std::time::SystemTime;

use x509_parser::certificate::X509Certificate;

use crate::{Error, validity};

const CERTIFICATE: &str = "CERTIFICATE";

/// The DER of every `CERTIFICATE` block in `text`, in order.
pub(crate) fn certificates(text: &str) -> Result<Vec<Vec<u8>>, Error> {
    let ders: Vec<Vec<u8>> = ::pem::parse_many(text)?
        .into_iter()
        .filter(|block| block.tag() == CERTIFICATE)
        .map(::pem::Pem::into_contents)
        .collect();
    if ders.is_empty() {
        return Err(Error::NoPemBlock {
            expected: CERTIFICATE,
        });
    }
    Ok(ders)
}

/// The DER of the one `CERTIFICATE` block in `text`. A CA file that holds a
/// chain is refused rather than guessed at: the caBundle must be exactly
/// the certificate that signs.
pub(crate) fn single_certificate(text: &str) -> Result<Vec<u8>, Error> {
    let mut ders = certificates(text)?;
    match ders.len() {
        1 => Ok(ders.remove(0)),
        found => Err(Error::TooManyCertificates { found }),
    }
}

/// The PKCS#8 DER of the private key in `text`, with a hint for the other
/// encodings that ring cannot load.
pub(crate) fn private_key(text: &str) -> Result<Vec<u8>, Error> {
    let blocks = ::pem::parse_many(text)?;
    if let Some(block) = blocks.iter().find(|b| b.tag() == "PRIVATE KEY") {
        return Ok(block.contents().to_vec());
    }
    let reason = match blocks
        .iter()
        .map(::pem::Pem::tag)
        .find(|t| t.ends_with("PRIVATE KEY"))
    {
        Some("ENCRYPTED PRIVATE KEY") => {
            "the key is encrypted; decrypt it first: `openssl pkcs8 -in ca.key -out ca-plain.key`"
                .to_owned()
        }
        Some(tag) => format!(
            "the key is a {tag:?} block; convert it to PKCS#8: `openssl pkcs8 -topk8 -nocrypt -in ca.key -out ca-pkcs8.key`"
        ),
        None => "no PEM block labelled PRIVATE KEY found".to_owned(),
    };
    Err(Error::Key { reason })
}

/// PEM text for one DER object, with Unix line endings (the form Kubernetes
/// tools print and that diffs cleanly).
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    ::pem::encode_config(
        &::pem::Pem::new(label, der),
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    )
}

/// Parse one certificate's DER.
pub(crate) fn parse_x509(der: &[u8]) -> Result<X509Certificate<'_>, Error> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| Error::X509(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Error::X509(format!(
            "{} unexpected bytes after the certificate",
            rest.len()
        )));
    }
    Ok(cert)
}

/// The `notAfter` of a parsed certificate.
pub(crate) fn cert_not_after(cert: &X509Certificate<'_>) -> Result<SystemTime, Error> {
    let seconds = cert.validity().not_after.timestamp();
    validity::from_unix(seconds)
        .ok_or_else(|| Error::X509(format!("notAfter ({seconds} s) is out of range")))
}

/// When the first certificate in `cert_pem` expires (for a chain: the leaf).
/// `weft check` warns before this date.
pub fn not_after(cert_pem: &str) -> Result<SystemTime, Error> {
    let ders = certificates(cert_pem)?;
    let first = ders.first().ok_or(Error::NoPemBlock {
        expected: CERTIFICATE,
    })?;
    cert_not_after(&parse_x509(first)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for text in [
            "",
            "not pem at all",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nMIIB\n",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(not_after(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn non_pkcs8_keys_get_a_hint() {
        let sec1 = encode("EC PRIVATE KEY", &[1, 2, 3]);
        match private_key(&sec1) {
            Err(Error::Key { reason }) => assert!(reason.contains("openssl pkcs8 -topk8")),
            other => panic!("expected a key error, got {other:?}"),
        }
        assert!(matches!(private_key("nothing"), Err(Error::Key { .. })));
    }

    #[test]
    fn a_chain_is_not_a_single_certificate() {
        let one = encode(CERTIFICATE, &[1, 2, 3]);
        let two = format!("{one}{one}");
        assert!(single_certificate(&one).is_ok());
        assert!(matches!(
            single_certificate(&two),
            Err(Error::TooManyCertificates { found: 2 })
        ));
    }
}
