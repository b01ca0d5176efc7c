//! The protobuf wire format, as far as emojivoto's messages need it:
//! varints, field keys, length-delimited fields, and skipping the fields a
//! reader does not know (proto3 readers must ignore them).
//!
//! Every read is bounds-checked and returns [`DecodeError`]: the input is
//! whatever a client sent.

/// Why bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message ends inside a field")]
    Truncated,
    #[error("varint longer than 10 bytes")]
    VarintTooLong,
    #[error("field number 0")]
    FieldZero,
    #[error("field number {0} above 2^29 - 1")]
    FieldNumber(u64),
    #[error("unsupported wire type {0}")]
    WireType(u8),
    #[error("field {field}: wire type {found}, expected {expected}")]
    WrongType { field: u32, found: u8, expected: u8 },
    #[error("field {0}: string is not UTF-8")]
    NotUtf8(u32),
    #[error("field {field}: {source}")]
    Nested {
        field: u32,
        #[source]
        source: Box<DecodeError>,
    },
}

/// The wire types of protobuf; groups (3, 4) are long deprecated and
/// rejected.
pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const FIXED32: u8 = 5;

/// The largest field number protobuf allows.
const MAX_FIELD: u64 = (1 << 29) - 1;

/// A cursor over an encoded message.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// The next field's (number, wire type), or `None` at the end.
    pub fn key(&mut self) -> Result<Option<(u32, u8)>, DecodeError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire_type = (key & 7) as u8;
        match key >> 3 {
            0 => Err(DecodeError::FieldZero),
            field @ 1..=MAX_FIELD => Ok(Some((field as u32, wire_type))),
            field => Err(DecodeError::FieldNumber(field)),
        }
    }

    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&byte, rest) = self.rest.split_first().ok_or(DecodeError::Truncated)?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintTooLong)
    }

    /// A length-delimited payload.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError::Truncated)?;
        if len > self.rest.len() {
            return Err(DecodeError::Truncated);
        }
        let (payload, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(payload)
    }

    fn take(&mut self, n: usize) -> Result<(), DecodeError> {
        if n > self.rest.len() {
            return Err(DecodeError::Truncated);
        }
        self.rest = &self.rest[n..];
        Ok(())
    }

    /// Skips the value of a field this reader does not know.
    pub fn skip(&mut self, wire_type: u8) -> Result<(), DecodeError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4),
            other => Err(DecodeError::WireType(other)),
        }
    }

    /// A `string` field's value, checked for its wire type and UTF-8.
    pub fn string(&mut self, field: u32, wire_type: u8) -> Result<String, DecodeError> {
        expect(field, wire_type, LEN)?;
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NotUtf8(field))
    }

    /// An `int32` field's value: the low 32 bits of the varint, as
    /// protobuf defines (negative numbers arrive sign-extended to 64 bits).
    pub fn int32(&mut self, field: u32, wire_type: u8) -> Result<i32, DecodeError> {
        expect(field, wire_type, VARINT)?;
        Ok(self.varint()? as u32 as i32)
    }

    /// An embedded message's bytes.
    pub fn message(&mut self, field: u32, wire_type: u8) -> Result<&'a [u8], DecodeError> {
        expect(field, wire_type, LEN)?;
        self.bytes()
    }
}

fn expect(field: u32, found: u8, expected: u8) -> Result<(), DecodeError> {
    if found == expected {
        Ok(())
    } else {
        Err(DecodeError::WrongType {
            field,
            found,
            expected,
        })
    }
}

pub fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn put_key(buf: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(buf, (u64::from(field) << 3) | u64::from(wire_type));
}

/// A length-delimited field (string, bytes or embedded message), always
/// written: callers decide about proto3 defaults.
pub fn put_len(buf: &mut Vec<u8>, field: u32, payload: &[u8]) {
    put_key(buf, field, LEN);
    put_varint(buf, payload.len() as u64);
    buf.extend_from_slice(payload);
}

/// A `string` field; proto3 leaves out the default (empty) value.
pub fn put_string(buf: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        put_len(buf, field, value.as_bytes());
    }
}

/// An `int32` field; proto3 leaves out 0. Negative numbers take 10 bytes,
/// sign-extended, as protobuf defines.
pub fn put_int32(buf: &mut Vec<u8>, field: u32, value: i32) {
    if value != 0 {
        put_key(buf, field, VARINT);
        put_varint(buf, i64::from(value) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for (value, bytes) in [
            (0u64, &[0x00][..]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            assert_eq!(buf, bytes, "{value}");
            assert_eq!(Reader::new(bytes).varint(), Ok(value));
        }
        assert_eq!(
            Reader::new(&[0x80; 11]).varint(),
            Err(DecodeError::VarintTooLong)
        );
        assert_eq!(Reader::new(&[0x80]).varint(), Err(DecodeError::Truncated));
    }

    #[test]
    fn int32_negative_is_ten_bytes() {
        let mut buf = Vec::new();
        put_int32(&mut buf, 2, -1);
        assert_eq!(buf.len(), 11);
        let mut r = Reader::new(&buf);
        let (field, wt) = r.key().expect("key").expect("a field");
        assert_eq!((field, wt), (2, VARINT));
        assert_eq!(r.int32(field, wt), Ok(-1));
    }

    #[test]
    fn defaults_are_left_out() {
        let mut buf = Vec::new();
        put_string(&mut buf, 1, "");
        put_int32(&mut buf, 2, 0);
        assert!(buf.is_empty());
    }

    #[test]
    fn skips_every_wire_type() {
        // field 9 varint, field 10 fixed64, field 11 len, field 12 fixed32.
        let bytes = [
            0x48, 0x96, 0x01, //
            0x51, 1, 2, 3, 4, 5, 6, 7, 8, //
            0x5a, 0x02, b'h', b'i', //
            0x65, 1, 2, 3, 4,
        ];
        let mut r = Reader::new(&bytes);
        let mut seen = Vec::new();
        while let Some((field, wt)) = r.key().expect("key") {
            seen.push(field);
            r.skip(wt).expect("skip");
        }
        assert_eq!(seen, [9, 10, 11, 12]);
    }

    #[test]
    fn bad_input() {
        // A group (wire type 3), field 0, a length past the end.
        let mut r = Reader::new(&[0x0b]);
        let (_, wt) = r.key().expect("key").expect("a field");
        assert_eq!(r.skip(wt), Err(DecodeError::WireType(3)));
        assert_eq!(Reader::new(&[0x02]).key(), Err(DecodeError::FieldZero));
        assert_eq!(
            Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x10]).key(),
            Err(DecodeError::FieldNumber(1 << 29))
        );
        assert_eq!(
            Reader::new(&[0x05, b'a']).bytes(),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            Reader::new(&[0x02, 0xff, 0xfe]).string(1, LEN),
            Err(DecodeError::NotUtf8(1))
        );
        assert_eq!(
            Reader::new(&[0x01]).string(1, VARINT),
            Err(DecodeError::WrongType {
                field: 1,
                found: VARINT,
                expected: LEN
            })
        );
    }
}
