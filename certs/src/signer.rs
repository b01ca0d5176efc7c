//! A CA certificate with its private key, loaded and checked once: the part
//! the webhook CA, the mesh trust anchor and the mesh issuer share.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};

use crate::{Error, pem, validity};

/// Bytes in a random serial number: 128 bits, well past RFC 5280's "at
/// least 64 bits of entropy" advice and under its 20-octet limit.
const SERIAL_BYTES: usize = 16;

/// A CA that can sign: its certificate, key and validity window.
pub(crate) struct Signer {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) issuer: Issuer<'static, KeyPair>,
    /// The CA's subject exactly as encoded: verifiers chain a certificate to
    /// its CA by comparing these bytes with the certificate's issuer.
    pub(crate) subject_der: Vec<u8>,
    /// The path length its basicConstraints allow (`None`: unlimited).
    pub(crate) path_len: Option<u32>,
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
}

impl Signer {
    /// Loads a CA from PEM. The certificate must be a single CA certificate
    /// allowed to sign certificates, and the key (PKCS#8) must be its own.
    pub(crate) fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Signer, Error> {
        let der = pem::single_certificate(cert_pem)?;
        let cert = pem::parse_x509(&der)?;

        let path_len = match cert.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => bc.value.path_len_constraint,
            Ok(_) => return Err(Error::NotCa("basicConstraints does not say CA:TRUE")),
            Err(e) => return Err(Error::X509(e.to_string())),
        };
        match cert.key_usage() {
            Ok(Some(ku)) if !ku.value.key_cert_sign() => {
                return Err(Error::NotCa("keyUsage does not allow keyCertSign"));
            }
            Ok(_) => {}
            Err(e) => return Err(Error::X509(e.to_string())),
        }

        let key =
            KeyPair::try_from(pem::private_key(key_pem)?.as_slice()).map_err(|e| Error::Key {
                reason: e.to_string(),
            })?;
        if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(Error::KeyMismatch);
        }

        let issuer = Issuer::from_ca_cert_der(&der.as_slice().into(), key)
            .map_err(|e| Error::UnsupportedCaSubject(e.to_string()))?;
        let not_before = validity::from_unix(cert.validity().not_before.timestamp())
            .ok_or_else(|| Error::X509("notBefore is out of range".to_owned()))?;
        let not_after = pem::cert_not_after(&cert)?;

        let signer = Signer {
            cert_pem: pem::encode("CERTIFICATE", &der),
            key_pem: issuer.key().serialize_pem(),
            subject_der: cert.subject().as_raw().to_vec(),
            path_len,
            issuer,
            not_before,
            not_after,
        };
        // rcgen rebuilds the subject from parsed attributes; refuse now, not
        // at a verifier, if that does not reproduce it byte for byte.
        signer.check_issues_verifiable_names()?;
        Ok(signer)
    }

    /// An error unless the CA is valid at `now`: nothing it signed outside
    /// its own window would verify.
    pub(crate) fn check_valid_at(&self, now: SystemTime) -> Result<(), Error> {
        if now < self.not_before || now >= self.not_after {
            return Err(Error::CaNotValidNow {
                not_after_unix: unix_seconds(self.not_after),
            });
        }
        Ok(())
    }

    /// Issue a throwaway leaf and check its issuer name is our subject.
    fn check_issues_verifiable_names(&self) -> Result<(), Error> {
        let mut params = CertificateParams::default();
        params.not_before = self.not_before.into();
        params.not_after = self.not_after.into();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let probe = params.signed_by(&key, &self.issuer)?;
        let parsed = pem::parse_x509(probe.der())?;
        if parsed.issuer().as_raw() != self.subject_der.as_slice() {
            return Err(Error::UnsupportedCaSubject(format!(
                "re-encoding {:?} changes it (repeated attribute types or uncommon string types)",
                parsed.issuer().to_string()
            )));
        }
        Ok(())
    }
}

/// A new self-signed ECDSA P-256 CA named `common_name`, valid from a few
/// minutes ago (clock skew) for `validity`, that may sign `path_len` levels
/// of CAs below it, with `key_usages`; returned as a [`Signer`] loaded from
/// its own PEM, so generated and loaded CAs go through one path.
pub(crate) fn self_signed_ca(
    common_name: &str,
    validity: Duration,
    path_len: u8,
    key_usages: Vec<KeyUsagePurpose>,
) -> Result<Signer, Error> {
    crate::ca::check_common_name(common_name)?;
    let (not_before, not_after) = validity::window(SystemTime::now(), validity)?;
    let params = ca_params(common_name, path_len, key_usages, not_before, not_after)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    Signer::from_pem(&cert.pem(), &key.serialize_pem())
}

/// What every CA certificate made here has: the common name
/// `common_name` (the caller has checked it), basicConstraints CA with `path_len`,
/// `key_usages`, a random serial, and the window `not_before..not_after`.
pub(crate) fn ca_params(
    common_name: &str,
    path_len: u8,
    key_usages: Vec<KeyUsagePurpose>,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = key_usages;
    params.serial_number = Some(random_serial()?);
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    Ok(params)
}

/// A fresh random serial number. rcgen's default derives the serial from the
/// public key, so two certificates for one key (a proxy renewing with the
/// same CSR) would share a serial, which RFC 5280 forbids.
pub(crate) fn random_serial() -> Result<SerialNumber, Error> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; SERIAL_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Key {
            reason: "the system random number generator failed".to_owned(),
        })?;
    // A positive INTEGER that never needs a leading zero byte, and never zero.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Unix seconds of `t`, saturating (for error messages).
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_and_distinct() -> Result<(), Error> {
        let a = random_serial()?;
        let b = random_serial()?;
        assert_ne!(a, b);
        for serial in [a, b] {
            let bytes = serial.to_bytes();
            assert_eq!(bytes.len(), SERIAL_BYTES);
            assert!(bytes[0] & 0x80 == 0 && bytes[0] != 0);
        }
        Ok(())
    }
}
