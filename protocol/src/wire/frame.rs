//! The framing every record on the wire shares: a sequence of fields, each a tag byte, a
//! little-endian `u32` length and that many bytes; and [`WireError`], why bytes were refused.
//! What the tags mean is up to each record ([`super`] for messages, `isolation` for the
//! isolation record inside one).

/// Why a datagram was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Empty, truncated or oversized datagram.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// A kind byte this version does not know.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// A field this message kind does not have.
    #[error("unexpected field {0} in message")]
    UnknownField(u8),
    /// A required field is absent.
    #[error("message lacks field {0}")]
    Missing(&'static str),
}

/// Builds a record field by field.
#[derive(Debug, Default)]
pub(super) struct Writer(Vec<u8>);

impl Writer {
    /// A writer whose record starts with the byte `kind`.
    pub(super) fn with_kind(kind: u8) -> Self {
        let mut out = Vec::with_capacity(64);
        out.push(kind);
        Writer(out)
    }

    /// Appends one field.
    pub(super) fn field(&mut self, tag: u8, value: &[u8]) {
        self.0.push(tag);
        // Lengths are bounded by MAX_MESSAGE long before u32 overflows.
        self.0.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_le_bytes());
        self.0.extend_from_slice(value);
    }

    /// Appends one field when there is a value.
    pub(super) fn opt(&mut self, tag: u8, value: &Option<Vec<u8>>) {
        if let Some(v) = value {
            self.field(tag, v);
        }
    }

    /// The record's bytes.
    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// What a reader says when a field's header is cut short, and when its length runs past the
/// end of the record.
#[derive(Debug, Clone, Copy)]
pub(super) struct Framing {
    /// Fewer than five bytes where a field starts.
    pub(super) truncated: &'static str,
    /// A length longer than what is left.
    pub(super) overlong: &'static str,
}

/// Reads a record's fields in order, as `(tag, value)`; after the first error, nothing more.
#[derive(Debug)]
pub(super) struct Fields<'a> {
    rest: &'a [u8],
    framing: Framing,
}

impl<'a> Fields<'a> {
    /// The fields of `data`, which holds nothing else.
    pub(super) fn new(data: &'a [u8], framing: Framing) -> Self {
        Fields { rest: data, framing }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u8, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let data = std::mem::take(&mut self.rest);
        if data.is_empty() {
            return None;
        }
        let Some((&[tag, a, b, c, d], body)) = data.split_first_chunk::<5>() else {
            return Some(Err(WireError::Malformed(self.framing.truncated)));
        };
        let len = u32::from_le_bytes([a, b, c, d]) as usize;
        if body.len() < len {
            return Some(Err(WireError::Malformed(self.framing.overlong)));
        }
        let (value, rest) = body.split_at(len);
        self.rest = rest;
        Some(Ok((tag, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAMING: Framing = Framing { truncated: "short header", overlong: "long value" };

    fn read(data: &[u8]) -> Vec<Result<(u8, &[u8]), WireError>> {
        Fields::new(data, FRAMING).collect()
    }

    #[test]
    fn fields_read_back_what_the_writer_wrote() {
        let mut w = Writer::with_kind(42);
        w.field(1, b"abc");
        w.opt(2, &None);
        w.opt(3, &Some(vec![]));
        let bytes = w.into_bytes();
        assert_eq!(bytes, [42, 1, 3, 0, 0, 0, b'a', b'b', b'c', 3, 0, 0, 0, 0]);
        assert_eq!(read(&bytes[1..]), [Ok((1, &b"abc"[..])), Ok((3, &b""[..]))]);
        assert!(read(&[]).is_empty());
        assert!(Writer::default().into_bytes().is_empty());
    }

    #[test]
    fn a_bad_frame_is_the_last_thing_read() {
        assert_eq!(read(&[1, 0, 0, 0, 0, 2, 0]), [Ok((1, &b""[..])), Err(WireError::Malformed("short header"))]);
        assert_eq!(read(&[1, 2, 0, 0, 0, b'x']), [Err(WireError::Malformed("long value"))]);
        assert_eq!(read(&[1, 255, 255, 255, 255]), [Err(WireError::Malformed("long value"))]);
    }
}
