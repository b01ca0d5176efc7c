//! gRPC status: the code and message of a call's outcome, as carried in the
//! `grpc-status` and `grpc-message` trailers (the message percent-encoded,
//! per the gRPC HTTP/2 protocol spec).

use std::fmt;

/// The gRPC status codes used here (the numbers are the protocol's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Code {
    /// The code for a `grpc-status` number; numbers this app does not name
    /// map to `Unknown`, as the spec asks of unknown codes.
    pub fn from_number(n: u32) -> Code {
        match n {
            0 => Code::Ok,
            1 => Code::Cancelled,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            5 => Code::NotFound,
            7 => Code::PermissionDenied,
            8 => Code::ResourceExhausted,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            16 => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }

    pub fn number(self) -> u32 {
        self as u32
    }

    /// The code a client reports when the HTTP response is not 200, from
    /// the spec's table "HTTP to gRPC Status Code Mapping".
    pub fn from_http(status: http::StatusCode) -> Code {
        match status.as_u16() {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }
}

/// A call's failure: a non-OK code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As grpc-go prints a status, which the sample's web shows.
        write!(
            f,
            "rpc error: code = {:?} desc = {}",
            self.code, self.message
        )
    }
}

impl std::error::Error for Status {}

/// `grpc-message` encoding: bytes outside printable ASCII, and `%`
/// itself, become `%XX`. The result is always a valid header value.
pub fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &byte in message.as_bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The inverse of [`percent_encode`], lenient as the spec asks: a `%` not
/// followed by two hex digits stays as it is, and bytes that do not form
/// UTF-8 become U+FFFD.
pub fn percent_decode(encoded: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match encoded[i..] {
            [b'%', hi, lo, ..] if hex(hi).is_some() && hex(lo).is_some() => {
                let value = hex(hi).unwrap_or(0) * 16 + hex(lo).unwrap_or(0);
                bytes.push(value as u8);
                i += 3;
            }
            _ => {
                bytes.push(encoded[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_protocol_numbers() {
        assert_eq!(Code::Unknown.number(), 2);
        assert_eq!(Code::Unimplemented.number(), 12);
        assert_eq!(Code::Internal.number(), 13);
        for n in 0..20 {
            let code = Code::from_number(n);
            assert!(code.number() == n || code == Code::Unknown, "{n}");
        }
    }

    #[test]
    fn http_mapping() {
        assert_eq!(
            Code::from_http(http::StatusCode::NOT_FOUND),
            Code::Unimplemented
        );
        assert_eq!(
            Code::from_http(http::StatusCode::SERVICE_UNAVAILABLE),
            Code::Unavailable
        );
        assert_eq!(
            Code::from_http(http::StatusCode::IM_A_TEAPOT),
            Code::Unknown
        );
    }

    #[test]
    fn message_encoding() {
        assert_eq!(percent_encode("ERROR"), "ERROR");
        assert_eq!(percent_encode("50% off\n"), "50%25 off%0A");
        assert_eq!(percent_encode("\u{1F369}"), "%F0%9F%8D%A9");
        for text in ["ERROR", "50% off\n", "\u{1F369} :doughnut:", ""] {
            assert_eq!(percent_decode(percent_encode(text).as_bytes()), text);
            assert!(http::HeaderValue::from_str(&percent_encode(text)).is_ok());
        }
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
        assert_eq!(percent_decode(b"%FF"), "\u{FFFD}");
    }
}
