//! Whether a response counts as a success or a failure (DESIGN.md): a 5xx
//! status, a failing gRPC status, or a reset stream is a failure.
//!
//! Pure functions: the HTTP layer feeds them what it saw on the wire.

use http::{HeaderMap, HeaderName, StatusCode};

/// Looked up in every response's headers and trailers: made once.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The `classification` label of `response_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Classification {
    /// The response completed and reported no server failure.
    Success,
    /// 5xx, a failing gRPC status, or the stream was reset.
    Failure,
}

impl Classification {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// gRPC status codes that mean the server failed (not that the caller erred):
/// Unknown, DeadlineExceeded, Internal, Unavailable, DataLoss.
const FAILING_GRPC: [u32; 5] = [2, 4, 13, 14, 15];

/// Classifies one response.
///
/// `grpc_status` comes from the trailers, or from the headers of a
/// trailers-only response; `reset` is true when the response stream ended
/// in an error or was abandoned before its end.
pub fn classify(status: StatusCode, grpc_status: Option<u32>, reset: bool) -> Classification {
    let failed = reset
        || status.is_server_error()
        || grpc_status.is_some_and(|code| FAILING_GRPC.contains(&code));
    if failed {
        Classification::Failure
    } else {
        Classification::Success
    }
}

/// The `grpc-status` in a header or trailer map, if present and numeric.
pub fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers.get(GRPC_STATUS)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn http_statuses() {
        for (code, expected) in [
            (200, Classification::Success),
            (204, Classification::Success),
            (302, Classification::Success),
            (404, Classification::Success),
            (429, Classification::Success),
            (500, Classification::Failure),
            (502, Classification::Failure),
            (503, Classification::Failure),
            (599, Classification::Failure),
        ] {
            let status = StatusCode::from_u16(code).expect("valid code");
            assert_eq!(classify(status, None, false), expected, "{code}");
        }
    }

    #[test]
    fn grpc_statuses() {
        let failing = [2, 4, 13, 14, 15];
        for code in 0..=16 {
            let expected = if failing.contains(&code) {
                Classification::Failure
            } else {
                Classification::Success
            };
            assert_eq!(
                classify(StatusCode::OK, Some(code), false),
                expected,
                "{code}"
            );
        }
    }

    #[test]
    fn reset_is_failure_whatever_the_status() {
        assert_eq!(
            classify(StatusCode::OK, None, true),
            Classification::Failure
        );
        assert_eq!(
            classify(StatusCode::OK, Some(0), true),
            Classification::Failure
        );
    }

    #[test]
    fn reads_grpc_status() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_status(&headers), None);
        headers.insert("grpc-status", HeaderValue::from_static("14"));
        assert_eq!(grpc_status(&headers), Some(14));
        headers.insert("grpc-status", HeaderValue::from_static("fourteen"));
        assert_eq!(grpc_status(&headers), None);
    }
}
