//! A small JSON writer that produces exactly what Go's `encoding/json` produces for structs:
//! fields in declaration order, `omitempty` decided by the caller, Go's string escaping
//! (HTML-safe: `<`, `>`, `&` as `\u003c`…, U+2028/U+2029 escaped, invalid UTF-8 as `\ufffd`)
//! and `[]byte` as standard base64 with padding.

use base64::Engine as _;
use buildkit_events::Time;

use crate::escape::{Special, plain_prefix};
use crate::format::Rfc3339;

/// What Go escapes in a string, besides the control characters: `"`, `\`, and (HTML-safe)
/// `<`, `>`, `&`; non-ASCII bytes are looked at one character at a time.
const GO: Special = Special {
    bytes: b"\"\\<>&",
    high: true,
};

/// Builds one JSON object (or array) into a byte buffer (always UTF-8), reused from one
/// object to the next ([`GoJson::clear`]).
#[derive(Debug, Default)]
pub struct GoJson {
    out: Vec<u8>,
    /// Whether the innermost open object/array already has a member.
    has_member: Vec<bool>,
    /// A key was written and its value has not been.
    pending_key: bool,
    times: Rfc3339,
}

impl GoJson {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The text written so far.
    #[cfg(test)]
    pub fn finish(self) -> String {
        String::from_utf8(self.out).expect("the writer writes UTF-8")
    }

    /// The bytes written so far (UTF-8).
    pub fn bytes_written(&self) -> &[u8] {
        &self.out
    }

    /// Appends raw bytes after the JSON (e.g. a newline).
    pub fn push_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Empties the buffer for the next object, keeping its room and the time cache.
    pub fn clear(&mut self) {
        self.out.clear();
        self.has_member.clear();
        self.pending_key = false;
    }

    fn separate(&mut self) {
        if let Some(has) = self.has_member.last_mut() {
            if *has {
                self.out.push(b',');
            }
            *has = true;
        }
    }

    /// Opens an object as a value (top level, array element or after [`GoJson::key`]).
    pub fn begin_object(&mut self) {
        self.separate_value();
        self.out.push(b'{');
        self.has_member.push(false);
    }

    /// Closes the innermost object.
    pub fn end_object(&mut self) {
        self.has_member.pop();
        self.out.push(b'}');
    }

    /// Opens an array as a value.
    pub fn begin_array(&mut self) {
        self.separate_value();
        self.out.push(b'[');
        self.has_member.push(false);
    }

    /// Closes the innermost array.
    pub fn end_array(&mut self) {
        self.has_member.pop();
        self.out.push(b']');
    }

    /// Writes `"name":` inside an object; the value follows.
    pub fn key(&mut self, name: &str) {
        self.separate();
        write_string(&mut self.out, name.as_bytes());
        self.out.push(b':');
        self.pending_key = true;
    }

    fn separate_value(&mut self) {
        if self.pending_key {
            self.pending_key = false;
        } else {
            self.separate();
        }
    }

    /// A Go `string` value (bytes that may not be valid UTF-8).
    pub fn string(&mut self, s: impl AsRef<[u8]>) {
        self.separate_value();
        write_string(&mut self.out, s.as_ref());
    }

    /// A Go `[]byte` value: base64, or `null` for an empty (nil) slice.
    pub fn bytes(&mut self, b: &[u8]) {
        self.separate_value();
        if b.is_empty() {
            self.out.extend_from_slice(b"null");
        } else {
            self.out.push(b'"');
            let start = self.out.len();
            let len = base64::encoded_len(b.len(), true).expect("a slice's base64 fits in memory");
            self.out.resize(start + len, 0);
            base64::engine::general_purpose::STANDARD
                .encode_slice(b, &mut self.out[start..])
                .expect("room made above");
            self.out.push(b'"');
        }
    }

    /// An integer value.
    pub fn int(&mut self, n: i64) {
        self.separate_value();
        // Two digits at a time would be faster; integers are rare here (streams, sizes).
        self.out.extend_from_slice(n.to_string().as_bytes());
    }

    /// A boolean value.
    pub fn bool(&mut self, b: bool) {
        self.separate_value();
        self.out
            .extend_from_slice(if b { b"true" } else { b"false" });
    }

    /// A pre-formatted JSON value (e.g. a number).
    pub fn raw(&mut self, json: &str) {
        self.separate_value();
        self.out.extend_from_slice(json.as_bytes());
    }

    /// A time value: Go's `time.Time` in UTC, quoted.
    pub fn time(&mut self, t: Time) {
        self.separate_value();
        self.out.push(b'"');
        self.times.push(&mut self.out, t);
        self.out.push(b'"');
    }
}

/// Appends `s` as a JSON string the way Go's `encoding/json` (with HTML escaping, its default)
/// writes it. Runs of ASCII that need no escape are found 8 bytes at a time and copied whole
/// (see `escape`); the rest goes one character at a time.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut rest = s;
    loop {
        let run = plain_prefix(rest, GO);
        out.extend_from_slice(&rest[..run]);
        rest = &rest[run..];
        let Some(&b) = rest.first() else {
            break;
        };
        if b < 0x80 {
            // Go and serde_json escape the same ASCII bytes the same way.
            crate::escape::push_serde_escape(out, b);
            rest = &rest[1..];
            continue;
        }
        match decode_utf8(rest) {
            Some((c, len)) => {
                match c {
                    '\u{2028}' => out.extend_from_slice(b"\\u2028"),
                    '\u{2029}' => out.extend_from_slice(b"\\u2029"),
                    _ => out.extend_from_slice(&rest[..len]),
                }
                rest = &rest[len..];
            }
            None => {
                out.extend_from_slice(b"\\ufffd");
                rest = &rest[1..];
            }
        }
    }
    out.push(b'"');
}

/// The first UTF-8 encoded char of `s` and its length, or `None` if `s` does not start with a
/// valid encoding (Go then consumes one byte and writes U+FFFD).
fn decode_utf8(s: &[u8]) -> Option<(char, usize)> {
    let len = match s[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let bytes = s.get(..len)?;
    let text = std::str::from_utf8(bytes).ok()?;
    text.chars().next().map(|c| (c, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &[u8]) -> String {
        let mut out = Vec::new();
        write_string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_like_go_encoding_json() {
        assert_eq!(quoted(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            quoted(b"x > y && z < 1"),
            r#""x \u003e y \u0026\u0026 z \u003c 1""#
        );
        assert_eq!(
            quoted(b"\n\r\t\x08\x0c\x01\x1b\x7f"),
            "\"\\n\\r\\t\\b\\f\\u0001\\u001b\x7f\""
        );
        assert_eq!(quoted("é\u{2028}✓".as_bytes()), "\"é\\u2028✓\"");
    }

    #[test]
    fn invalid_utf8_becomes_one_replacement_per_bad_byte() {
        assert_eq!(quoted(b"a\xffb"), r#""a\ufffdb""#);
        // A truncated 3-byte sequence: each byte is replaced on its own, as Go does.
        assert_eq!(quoted(b"\xe2\x9c"), r#""\ufffd\ufffd""#);
        // An encoded surrogate is invalid in Go too.
        assert_eq!(quoted(b"\xed\xa0\x80"), r#""\ufffd\ufffd\ufffd""#);
    }

    #[test]
    fn objects_arrays_and_bytes() {
        let mut j = GoJson::new();
        j.begin_object();
        j.key("a");
        j.begin_array();
        j.string("x");
        j.int(-3);
        j.end_array();
        j.key("b");
        j.bytes(b"hi");
        j.key("c");
        j.bytes(b"");
        j.key("d");
        j.begin_object();
        j.end_object();
        j.key("e");
        j.bool(true);
        j.end_object();
        assert_eq!(
            j.finish(),
            r#"{"a":["x",-3],"b":"aGk=","c":null,"d":{},"e":true}"#
        );
    }
}
