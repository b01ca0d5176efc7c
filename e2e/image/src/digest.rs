//! Content digests as OCI writes them: `sha256:` and 64 lowercase hex digits.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// The sha256 of a blob, in OCI's `sha256:<hex>` form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    pub(crate) fn from_hasher(hasher: Sha256) -> Self {
        let mut text = String::with_capacity(7 + 64);
        text.push_str("sha256:");
        for byte in hasher.finalize() {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Self(text)
    }

    /// A digest from its text, if it is `sha256:` and 64 lowercase hex
    /// digits.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("sha256:")?;
        let ok = hex.len() == 64 && hex.bytes().all(|b| HEX.contains(&b));
        ok.then(|| Self(text.to_owned()))
    }

    /// The whole digest, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex digits alone: the blob's file name under `blobs/sha256/`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_blob_has_the_well_known_digest() {
        let d = Digest::of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.hex().len(), 64);
        assert_eq!(Digest::parse(d.as_str()), Some(d));
    }

    #[test]
    fn only_sha256_with_64_lowercase_hex_digits_parses() {
        assert!(Digest::parse("sha256:abc").is_none());
        assert!(Digest::parse(&format!("sha512:{}", "a".repeat(64))).is_none());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_none());
    }
}
