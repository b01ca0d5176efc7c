//! gRPC message framing ("Length-Prefixed-Message"): a 1-byte compressed
//! flag, a 4-byte big-endian length, then the message. A unary call carries
//! exactly one message each way.

use bytes::{BufMut, Bytes, BytesMut};

use super::status::{Code, Status};

/// The largest message accepted, as gRPC's default (4 MiB).
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

const HEADER: usize = 5;

/// Why a body is not exactly one uncompressed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("no message")]
    Empty,
    #[error("{0} bytes, shorter than a 5-byte message header")]
    ShortHeader(usize),
    #[error("compressed message without a grpc-encoding")]
    Compressed,
    #[error("compressed flag {0}, neither 0 nor 1")]
    BadFlag(u8),
    #[error("message of {len} bytes, above the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("message header says {declared} bytes, {available} follow")]
    Truncated { declared: usize, available: usize },
    #[error("{0} bytes after the message of a unary call")]
    Trailing(usize),
}

impl From<FrameError> for Status {
    /// gRPC's conventions: too large is RESOURCE_EXHAUSTED, the rest is a
    /// protocol error, INTERNAL.
    fn from(err: FrameError) -> Status {
        let code = match err {
            FrameError::TooLarge { .. } => Code::ResourceExhausted,
            _ => Code::Internal,
        };
        Status::new(code, err.to_string())
    }
}

/// `message`, framed.
pub fn encode(message: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(HEADER + message.len());
    buf.put_u8(0);
    // Messages here are a few KiB; u32::MAX would be a bug upstream.
    buf.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    buf.put_slice(message);
    buf.freeze()
}

/// The one message of a unary body, at most `max` bytes.
pub fn decode_unary(body: &[u8], max: usize) -> Result<&[u8], FrameError> {
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    let Some((header, rest)) = body.split_first_chunk::<HEADER>() else {
        return Err(FrameError::ShortHeader(body.len()));
    };
    match header[0] {
        0 => {}
        1 => return Err(FrameError::Compressed),
        flag => return Err(FrameError::BadFlag(flag)),
    }
    let declared = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if declared > max {
        return Err(FrameError::TooLarge { len: declared, max });
    }
    if declared > rest.len() {
        return Err(FrameError::Truncated {
            declared,
            available: rest.len(),
        });
    }
    let (message, trailing) = rest.split_at(declared);
    if !trailing.is_empty() {
        return Err(FrameError::Trailing(trailing.len()));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let framed = encode(b"\x0a\x05:joy:");
        assert_eq!(&framed[..], b"\x00\x00\x00\x00\x07\x0a\x05:joy:");
        assert_eq!(
            decode_unary(&framed, MAX_MESSAGE),
            Ok(&b"\x0a\x05:joy:"[..])
        );
        assert_eq!(&encode(b"")[..], [0, 0, 0, 0, 0]);
        assert_eq!(decode_unary(&[0, 0, 0, 0, 0], MAX_MESSAGE), Ok(&[][..]));
    }

    #[test]
    fn malformed() {
        let max = 16;
        for (body, err) in [
            (&[][..], FrameError::Empty),
            (&[0, 0, 0], FrameError::ShortHeader(3)),
            (&[1, 0, 0, 0, 0], FrameError::Compressed),
            (&[7, 0, 0, 0, 0], FrameError::BadFlag(7)),
            (
                &[0, 0xff, 0xff, 0xff, 0xff],
                FrameError::TooLarge {
                    len: u32::MAX as usize,
                    max,
                },
            ),
            (
                &[0, 0, 0, 0, 4, 1, 2],
                FrameError::Truncated {
                    declared: 4,
                    available: 2,
                },
            ),
            (&[0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0], FrameError::Trailing(5)),
        ] {
            assert_eq!(decode_unary(body, max), Err(err.clone()), "{body:?}");
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(
            Status::from(FrameError::TooLarge { len: 9, max: 1 }).code,
            Code::ResourceExhausted
        );
        assert_eq!(Status::from(FrameError::Empty).code, Code::Internal);
    }
}
