//! Reading a `/v1/watch` body: newline-delimited JSON that arrives in
//! chunks cut anywhere. [`LineBuffer`] reassembles the lines; [`read_line`]
//! says what each one is — a heartbeat, an answer, an answer the proxy
//! cannot use, or something that is not an answer at all.

use serde_json::{Map, Value};

use super::answer::{Answer, AnswerError, Resolution};

/// The longest line kept (an answer is a few hundred bytes; this bounds
/// what a broken server can make the proxy hold).
pub const MAX_LINE: usize = 1024 * 1024;

/// A line longer than [`MAX_LINE`]; its bytes up to the next newline are
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a watch line is longer than {MAX_LINE} bytes")]
pub struct LineTooLong;

/// Collects chunks into complete lines.
#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
    // Inside an over-long line: drop bytes until its newline.
    skipping: bool,
}

impl LineBuffer {
    /// Adds `chunk` and returns the lines it completes, without their end
    /// (`\n` or `\r\n`); blank lines are left out.
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<Result<Vec<u8>, LineTooLong>> {
        let mut lines = Vec::new();
        while !chunk.is_empty() {
            let (part, rest, ended) = match chunk.iter().position(|&b| b == b'\n') {
                Some(at) => (&chunk[..at], &chunk[at + 1..], true),
                None => (chunk, &[][..], false),
            };
            chunk = rest;
            if !self.skipping {
                if self.partial.len() + part.len() > MAX_LINE {
                    self.partial = Vec::new();
                    self.skipping = true;
                    lines.push(Err(LineTooLong));
                } else {
                    self.partial.extend_from_slice(part);
                }
            }
            if ended {
                let mut line = std::mem::take(&mut self.partial);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let skipped = std::mem::replace(&mut self.skipping, false);
                if !skipped && !line.trim_ascii().is_empty() {
                    lines.push(Ok(line));
                }
            }
        }
        lines
    }

    /// Bytes of an unfinished line held now.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

/// What one line of a watch says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `{}`: destination is alive and nothing changed.
    Heartbeat,
    /// The answer for the address, from now on.
    Answer(Resolution),
    /// A well-formed answer the proxy cannot use (meshed without an
    /// identity, an identity of another trust domain): the address is
    /// treated as a failed lookup until the next answer.
    Unusable(AnswerError),
    /// Not an answer at all (not JSON, wrong shape): ignored.
    Malformed(String),
}

/// Reads one line of a watch for an address in `trust_domain`.
pub fn read_line(line: &[u8], trust_domain: &str) -> Line {
    let object: Map<String, Value> = match serde_json::from_slice(line) {
        Ok(object) => object,
        Err(e) => return Line::Malformed(format!("not a JSON object: {e}")),
    };
    if object.is_empty() {
        return Line::Heartbeat;
    }
    let answer: Answer = match serde_json::from_value(Value::Object(object)) {
        Ok(answer) => answer,
        Err(e) => return Line::Malformed(format!("not an answer: {e}")),
    };
    match Resolution::from_answer(answer, trust_domain) {
        Ok(resolution) => Line::Answer(resolution),
        Err(e) => Line::Unusable(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TD: &str = "cluster.local";

    fn complete(lines: Vec<Result<Vec<u8>, LineTooLong>>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| l.map_or_else(|e| e.to_string(), |l| String::from_utf8_lossy(&l).into()))
            .collect()
    }

    #[test]
    fn lines_are_reassembled_across_chunks() {
        let mut buffer = LineBuffer::default();
        assert!(buffer.push(b"{\"addr\":").is_empty());
        assert!(buffer.push(b"\"10.0.0.1:80\",").is_empty());
        assert_eq!(buffer.pending(), 22);
        assert_eq!(
            complete(buffer.push(b"\"meshed\":false}\n{}\n{\"a")),
            [r#"{"addr":"10.0.0.1:80","meshed":false}"#, "{}"]
        );
        assert_eq!(complete(buffer.push(b"\":1}\r\n")), [r#"{"a":1}"#]);
        assert_eq!(buffer.pending(), 0);
    }

    #[test]
    fn a_chunk_of_one_byte_at_a_time_gives_the_same_lines() {
        let body = b"{}\n\n{\"meshed\":false}\r\n   \n{}\n";
        let mut buffer = LineBuffer::default();
        let lines: Vec<_> = body.iter().flat_map(|b| buffer.push(&[*b])).collect();
        assert_eq!(complete(lines), ["{}", r#"{"meshed":false}"#, "{}"]);
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_skipped_to_its_end() {
        let mut buffer = LineBuffer::default();
        let big = vec![b'x'; MAX_LINE];
        assert!(buffer.push(&big).is_empty());
        assert!(matches!(&buffer.push(b"yy")[..], [Err(LineTooLong)]));
        assert!(
            buffer.push(&big).is_empty(),
            "still skipping, reported once"
        );
        assert_eq!(buffer.pending(), 0, "nothing held while skipping");
        assert_eq!(complete(buffer.push(b"zz\n{}\n")), ["{}"]);
        // A line of exactly the limit is kept.
        let mut exact = vec![b' '; MAX_LINE - 2];
        exact.extend_from_slice(b"{}\n");
        assert!(buffer.push(&exact[..MAX_LINE - 1]).is_empty());
        assert!(
            matches!(&buffer.push(&exact[MAX_LINE - 1..])[..], [Ok(line)] if line.len() == MAX_LINE)
        );
    }

    #[test]
    fn lines_are_heartbeats_answers_unusable_or_malformed() {
        assert_eq!(read_line(b"{}", TD), Line::Heartbeat);
        assert_eq!(read_line(b" { } ", TD), Line::Heartbeat);
        assert_eq!(
            read_line(br#"{"addr":"10.0.0.1:80","meshed":false}"#, TD),
            Line::Answer(Resolution::default())
        );
        let meshed = read_line(
            br#"{"meshed":true,"identity":"spiffe://cluster.local/ns/a/sa/b"}"#,
            TD,
        );
        assert!(
            matches!(&meshed, Line::Answer(r) if r.identity.is_some()),
            "{meshed:?}"
        );
        assert_eq!(
            read_line(br#"{"meshed":true}"#, TD),
            Line::Unusable(AnswerError::NoIdentity)
        );
        assert!(matches!(
            read_line(
                br#"{"meshed":true,"identity":"spiffe://other/ns/a/sa/b"}"#,
                TD
            ),
            Line::Unusable(AnswerError::BadIdentity { .. })
        ));
        for garbage in [
            &b"not json"[..],
            b"[]",
            b"42",
            b"{\"meshed\":\"yes\"}",
            b"{\"error\":\"boom\"}",
            b"{\"meshed\":false",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(read_line(garbage, TD), Line::Malformed(_)),
                "{}",
                String::from_utf8_lossy(garbage)
            );
        }
    }
}
