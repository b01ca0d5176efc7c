//! The messages of the public emojivoto protos (`Emoji.proto`,
//! `Voting.proto`, package `emojivoto.v1`), encoded by hand: a few strings,
//! one int32 and repeated sub-messages do not need a code generator.
//!
//! Field numbers, as in the protos:
//!
//! | message | fields |
//! | --- | --- |
//! | `Emoji` | 1 `string unicode`, 2 `string shortcode` |
//! | `ListAllEmojiResponse` | 1 `repeated Emoji list` |
//! | `FindByShortcodeRequest` | 1 `string Shortcode` |
//! | `FindByShortcodeResponse` | 1 `Emoji Emoji` |
//! | `VotingResult` | 1 `string Shortcode`, 2 `int32 Votes` |
//! | `ResultsResponse` | 1 `repeated VotingResult results` |
//!
//! `ListAllEmojiRequest`, `VoteRequest`, `VoteResponse` and
//! `ResultsRequest` have no fields: [`Empty`].

pub mod wire;

pub use self::wire::DecodeError;
use self::wire::Reader;

/// A protobuf message this app sends or receives.
pub trait Message: Sized {
    fn encode_to(&self, buf: &mut Vec<u8>);

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;

    fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.encode_to(&mut buf);
        buf
    }
}

/// A message without fields (any fields received are ignored, as proto3
/// readers do, but must still be well-formed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Empty;

impl Message for Empty {
    fn encode_to(&self, _: &mut Vec<u8>) {}

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        while let Some((_, wire_type)) = r.key()? {
            r.skip(wire_type)?;
        }
        Ok(Empty)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Emoji {
    pub unicode: String,
    pub shortcode: String,
}

impl Message for Emoji {
    fn encode_to(&self, buf: &mut Vec<u8>) {
        wire::put_string(buf, 1, &self.unicode);
        wire::put_string(buf, 2, &self.shortcode);
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut emoji = Emoji::default();
        let mut r = Reader::new(bytes);
        while let Some((field, wt)) = r.key()? {
            match field {
                1 => emoji.unicode = r.string(field, wt)?,
                2 => emoji.shortcode = r.string(field, wt)?,
                _ => r.skip(wt)?,
            }
        }
        Ok(emoji)
    }
}

impl From<&crate::emoji::Emoji> for Emoji {
    fn from(emoji: &crate::emoji::Emoji) -> Self {
        Emoji {
            unicode: emoji.unicode.to_string(),
            shortcode: emoji.shortcode.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListAllEmojiResponse {
    pub list: Vec<Emoji>,
}

impl Message for ListAllEmojiResponse {
    fn encode_to(&self, buf: &mut Vec<u8>) {
        for emoji in &self.list {
            wire::put_len(buf, 1, &emoji.encode());
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut response = ListAllEmojiResponse::default();
        let mut r = Reader::new(bytes);
        while let Some((field, wt)) = r.key()? {
            match field {
                1 => response.list.push(nested(field, r.message(field, wt)?)?),
                _ => r.skip(wt)?,
            }
        }
        Ok(response)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindByShortcodeRequest {
    pub shortcode: String,
}

impl Message for FindByShortcodeRequest {
    fn encode_to(&self, buf: &mut Vec<u8>) {
        wire::put_string(buf, 1, &self.shortcode);
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut request = FindByShortcodeRequest::default();
        let mut r = Reader::new(bytes);
        while let Some((field, wt)) = r.key()? {
            match field {
                1 => request.shortcode = r.string(field, wt)?,
                _ => r.skip(wt)?,
            }
        }
        Ok(request)
    }
}

/// `emoji` is `None` for an unknown shortcode: the sample answers OK with
/// the field absent, not an error status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindByShortcodeResponse {
    pub emoji: Option<Emoji>,
}

impl Message for FindByShortcodeResponse {
    fn encode_to(&self, buf: &mut Vec<u8>) {
        if let Some(emoji) = &self.emoji {
            wire::put_len(buf, 1, &emoji.encode());
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut response = FindByShortcodeResponse::default();
        let mut r = Reader::new(bytes);
        while let Some((field, wt)) = r.key()? {
            match field {
                // A repeated occurrence of a message field merges into the
                // first; ours never repeat it, so the last one wins.
                1 => response.emoji = Some(nested(field, r.message(field, wt)?)?),
                _ => r.skip(wt)?,
            }
        }
        Ok(response)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VotingResult {
    pub shortcode: String,
    pub votes: i32,
}

impl Message for VotingResult {
    fn encode_to(&self, buf: &mut Vec<u8>) {
        wire::put_string(buf, 1, &self.shortcode);
        wire::put_int32(buf, 2, self.votes);
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut result = VotingResult::default();
        let mut r = Reader::new(bytes);
        while let Some((field, wt)) = r.key()? {
            match field {
                1 => result.shortcode = r.string(field, wt)?,
                2 => result.votes = r.int32(field, wt)?,
                _ => r.skip(wt)?,
            }
        }
        Ok(result)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultsResponse {
    pub results: Vec<VotingResult>,
}

impl Message for ResultsResponse {
    fn encode_to(&self, buf: &mut Vec<u8>) {
        for result in &self.results {
            wire::put_len(buf, 1, &result.encode());
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut response = ResultsResponse::default();
        let mut r = Reader::new(bytes);
        while let Some((field, wt)) = r.key()? {
            match field {
                1 => response.results.push(nested(field, r.message(field, wt)?)?),
                _ => r.skip(wt)?,
            }
        }
        Ok(response)
    }
}

fn nested<M: Message>(field: u32, bytes: &[u8]) -> Result<M, DecodeError> {
    M::decode(bytes).map_err(|source| DecodeError::Nested {
        field,
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doughnut() -> Emoji {
        Emoji {
            unicode: "\u{1F369}".into(),
            shortcode: ":doughnut:".into(),
        }
    }

    #[test]
    fn emoji_wire_bytes() {
        let bytes = doughnut().encode();
        let mut expected = vec![0x0a, 0x04, 0xf0, 0x9f, 0x8d, 0xa9, 0x12, 0x0a];
        expected.extend_from_slice(b":doughnut:");
        assert_eq!(bytes, expected);
        assert_eq!(Emoji::decode(&bytes), Ok(doughnut()));
    }

    #[test]
    fn list_all_response_wire_bytes() {
        let response = ListAllEmojiResponse {
            list: vec![doughnut(), Emoji::default()],
        };
        let bytes = response.encode();
        // Each Emoji is field 1, length-delimited; an empty one is `0a 00`.
        assert_eq!(bytes[..2], [0x0a, 18]);
        assert_eq!(bytes[20..], [0x0a, 0x00]);
        assert_eq!(ListAllEmojiResponse::decode(&bytes), Ok(response));
    }

    #[test]
    fn find_by_shortcode_wire_bytes() {
        let request = FindByShortcodeRequest {
            shortcode: ":joy:".into(),
        };
        assert_eq!(request.encode(), b"\x0a\x05:joy:");
        assert_eq!(
            FindByShortcodeRequest::decode(b"\x0a\x05:joy:"),
            Ok(request)
        );

        let found = FindByShortcodeResponse {
            emoji: Some(doughnut()),
        };
        let bytes = found.encode();
        assert_eq!(bytes[..2], [0x0a, 18]);
        assert_eq!(FindByShortcodeResponse::decode(&bytes), Ok(found));

        let missing = FindByShortcodeResponse::default();
        assert!(missing.encode().is_empty());
        assert_eq!(FindByShortcodeResponse::decode(&[]), Ok(missing));
    }

    #[test]
    fn results_wire_bytes() {
        let response = ResultsResponse {
            results: vec![VotingResult {
                shortcode: ":joy:".into(),
                votes: 300,
            }],
        };
        let bytes = response.encode();
        assert_eq!(bytes, b"\x0a\x0a\x0a\x05:joy:\x10\xac\x02");
        assert_eq!(ResultsResponse::decode(&bytes), Ok(response));
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // Emoji with an extra field 7 (varint) and field 8 (string).
        let mut bytes = vec![0x38, 0x01, 0x42, 0x01, b'x'];
        bytes.extend_from_slice(&doughnut().encode());
        assert_eq!(Emoji::decode(&bytes), Ok(doughnut()));
        assert_eq!(Empty::decode(&bytes), Ok(Empty));
    }

    #[test]
    fn garbage_is_an_error() {
        for garbage in [&[0xff_u8; 12][..], &[0x0a, 0x7f], &[0x0b], &[0x00]] {
            assert!(Empty::decode(garbage).is_err(), "{garbage:?}");
            assert!(
                FindByShortcodeRequest::decode(garbage).is_err(),
                "{garbage:?}"
            );
        }
        // A bad nested Emoji says where it was.
        let err = ListAllEmojiResponse::decode(&[0x0a, 0x02, 0x0a, 0x05]).expect_err("truncated");
        assert!(matches!(err, DecodeError::Nested { field: 1, .. }), "{err}");
        // The shortcode as a varint.
        assert!(FindByShortcodeRequest::decode(&[0x08, 0x01]).is_err());
    }
}
