//! JSON string escaping for the JSON renderers, fast on what they mostly write: log lines of
//! printable ASCII.
//!
//! Why hand-written: serde_json's `format_escaped_str` looks up every byte in a table and writes
//! each run through the `Write` trait; on the corpus stream it was the largest single cost of
//! `--progress json` (a quarter of its instructions, see BENCHMARKS.md section 8). Here the bytes
//! are tested 8 at a time as one `u64` (the bit tricks of "does this word hold a zero byte"; no
//! `unsafe`, no intrinsics, no reliance on the compiler's vectorizer), and the runs between
//! the rare bytes that need attention are copied whole. The output is exactly serde_json's for a `str` (the
//! `json` renderer) or Go's `encoding/json`'s (`rawjson`, in `gojson`): the tests compare
//! with serde_json on every byte value and on invalid UTF-8.

/// A byte of `1`s in each of a word's 8 bytes, and of the top bits.
const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const TOPS: u64 = u64::from_le_bytes([0x80; 8]);

/// The top bit of every byte of `x` that is below 0x20 or equal to one of `bytes` (and maybe
/// of some bytes after such a byte: only "none" is exact, which is all [`plain_prefix`]
/// needs). The classic "has a zero byte" test, `(y - 0x01…) & !y & 0x80…`, applied to `x`
/// (against 0x20…) and to `x` xor each byte.
#[inline]
fn marks(x: u64, bytes: &[u8]) -> u64 {
    let mut found = x.wrapping_sub(ONES * 0x20) & !x;
    for &b in bytes {
        let y = x ^ (ONES * u64::from(b));
        found |= y.wrapping_sub(ONES) & !y;
    }
    found & TOPS
}

/// The bytes that [`plain_prefix`] stops at, as a byte test and the same test on a word of 8
/// bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Special {
    /// Besides the control characters (below 0x20), these bytes.
    pub(crate) bytes: &'static [u8],
    /// And the bytes of 0x80 and above (non-ASCII).
    pub(crate) high: bool,
}

impl Special {
    #[inline]
    fn byte(self, b: u8) -> bool {
        b < 0x20 || (self.high && b >= 0x80) || self.bytes.contains(&b)
    }

    #[inline]
    fn word(self, x: u64) -> bool {
        let high = if self.high { x & TOPS } else { 0 };
        marks(x, self.bytes) | high != 0
    }
}

/// What serde_json escapes: control characters, `"` and `\`.
const SERDE: Special = Special {
    bytes: b"\"\\",
    high: false,
};

/// The length of the longest prefix of `s` in which no byte is `special`: 8 bytes at a time
/// while none is, then byte by byte within the word that holds one.
#[inline]
pub(crate) fn plain_prefix(s: &[u8], special: Special) -> usize {
    let words = s.chunks_exact(8);
    let tail = words.remainder();
    let whole = s.len() - tail.len();
    let mut start = 0;
    for word in words {
        if special.word(u64::from_le_bytes(word.try_into().expect("8 bytes"))) {
            break;
        }
        start += 8;
    }
    if start == whole {
        // The tail, padded with a byte that is never special (a space).
        let mut last = [b' '; 8];
        last[..tail.len()].copy_from_slice(tail);
        if !special.word(u64::from_le_bytes(last)) {
            return s.len();
        }
    }
    start
        + s[start..]
            .iter()
            .position(|&b| special.byte(b))
            .unwrap_or(s.len() - start)
}

/// Appends serde_json's escape of `b` (one of [`SERDE`]), which is also Go's for an ASCII
/// byte.
pub(crate) fn push_serde_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]),
    }
}

/// Appends the inside of the JSON string of `s` (valid UTF-8), as serde_json escapes it.
fn push_serde_body(out: &mut Vec<u8>, mut s: &[u8]) {
    loop {
        let run = plain_prefix(s, SERDE);
        out.extend_from_slice(&s[..run]);
        let Some(&b) = s.get(run) else {
            return;
        };
        push_serde_escape(out, b);
        s = &s[run + 1..];
    }
}

/// Appends `s` as serde_json writes a string, quotes included.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_serde_body(out, s.as_bytes());
    out.push(b'"');
}

/// Appends `String::from_utf8_lossy(bytes)` as serde_json writes it, quotes included, without
/// building the string: ASCII runs are copied as they are scanned, and only from a non-ASCII
/// byte on are the bytes checked as UTF-8 (each invalid sequence becomes one U+FFFD, as
/// `from_utf8_lossy` does).
pub(crate) fn push_lossy(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let mut s = bytes;
    loop {
        let run = plain_prefix(
            s,
            Special {
                high: true,
                ..SERDE
            },
        );
        out.extend_from_slice(&s[..run]);
        s = &s[run..];
        let Some(&b) = s.first() else {
            break;
        };
        if b < 0x80 {
            push_serde_escape(out, b);
            s = &s[1..];
            continue;
        }
        let Some(chunk) = s.utf8_chunks().next() else {
            break;
        };
        push_serde_body(out, chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(
                char::REPLACEMENT_CHARACTER
                    .encode_utf8(&mut [0; 4])
                    .as_bytes(),
            );
        }
        s = &s[chunk.valid().len() + chunk.invalid().len()..];
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        push_lossy(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    fn serde(bytes: &[u8]) -> String {
        serde_json::to_string(&String::from_utf8_lossy(bytes)).unwrap()
    }

    #[test]
    fn every_byte_is_escaped_as_serde_json_escapes_it() {
        for b in 0..=u8::MAX {
            // Alone, between ASCII runs, and past a 16-byte block.
            for (pre, post) in [(0, 0), (3, 2), (17, 40), (32, 0)] {
                let mut input = vec![b'a'; pre];
                input.push(b);
                input.extend(std::iter::repeat_n(b'z', post));
                assert_eq!(lossy(&input), serde(&input), "{input:?}");
                if let Ok(s) = std::str::from_utf8(&input) {
                    let mut out = Vec::new();
                    push_str(&mut out, s);
                    assert_eq!(String::from_utf8(out).unwrap(), serde(&input));
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_as_from_utf8_lossy_does() {
        let cases: &[&[u8]] = &[
            b"",
            b"plain ascii line with \"quotes\" and \\ and \t tab",
            "é\u{2028}✓ and 🦀 \u{7f}".as_bytes(),
            b"a\xffb",
            b"\xe2\x9c",
            b"\xe2\x9cx\"",
            b"\xed\xa0\x80 surrogate",
            b"\xf0\x9f\xa6 truncated crab then \xf0\x9f\xa6\x80 crab \x1b[31mred\x1b[0m",
            b"0123456789abcdef\xc3\xa90123456789abcdef\xc30123456789abcdef\n",
        ];
        for &case in cases {
            assert_eq!(lossy(case), serde(case), "{case:?}");
        }
    }
}
