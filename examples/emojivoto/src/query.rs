//! `application/x-www-form-urlencoded`, as query strings and form bodies
//! carry it: `choice=%3Adoughnut%3A` or `choice=:doughnut:` (the sample's
//! bot sends the colons unescaped, which is allowed).

/// Why a query string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("bad percent-escape at byte {0}")]
    BadEscape(usize),
    #[error("value of {0:?} is not UTF-8")]
    NotUtf8(String),
}

/// The first value of `name` in `query` (`a=1&b=2`), decoded; `None` if
/// absent. A malformed pair anywhere is an error, even if not `name`'s.
pub fn param(query: &str, name: &str) -> Result<Option<String>, QueryError> {
    let mut found = None;
    let mut offset = 0;
    for pair in query.split('&') {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(raw_key, offset)?;
        let value = decode(raw_value, offset + raw_key.len() + 1)?;
        if found.is_none() && key == name {
            found = Some(value);
        }
        offset += pair.len() + 1;
    }
    Ok(found)
}

fn decode(text: &str, offset: usize) -> Result<String, QueryError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(QueryError::BadEscape(offset + i))?;
                out.push(hex);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| QueryError::NotUtf8(text.to_string()))
}

/// `value` made safe for a query string: everything but unreserved
/// characters and `:` is percent-encoded.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &byte in value.as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_decodes() {
        assert_eq!(
            param("choice=:doughnut:", "choice"),
            Ok(Some(":doughnut:".into()))
        );
        assert_eq!(
            param("x=1&choice=%3Ajoy%3A&choice=2", "choice"),
            Ok(Some(":joy:".into()))
        );
        assert_eq!(param("a+b=c+d", "a b"), Ok(Some("c d".into())));
        assert_eq!(param("choice", "choice"), Ok(Some(String::new())));
        assert_eq!(param("", "choice"), Ok(None));
        assert_eq!(param("other=1", "choice"), Ok(None));
        assert_eq!(param("c=%F0%9F%8D%A9", "c"), Ok(Some("\u{1F369}".into())));
    }

    #[test]
    fn malformed() {
        assert_eq!(param("choice=%zz", "choice"), Err(QueryError::BadEscape(7)));
        assert_eq!(param("a=1&b=%4", "a"), Err(QueryError::BadEscape(6)));
        assert!(matches!(param("c=%FF", "c"), Err(QueryError::NotUtf8(_))));
    }

    #[test]
    fn encodes() {
        assert_eq!(encode(":point_up_2:"), ":point_up_2:");
        assert_eq!(encode("a b&c"), "a%20b%26c");
        assert_eq!(
            param(&format!("c={}", encode("&=+ %")), "c"),
            Ok(Some("&=+ %".into()))
        );
    }
}
