//! Framing and typing of the `POST /build` response body (sans-IO).
//!
//! The daemon writes one JSON object per line, each ending in `\r\n` (`\n` alone is accepted
//! too). HTTP chunks do not follow lines: a line can be split across chunks, and one chunk can
//! hold many lines. [`LineSplitter`] reassembles lines without copying the ones that arrive
//! whole; [`parse_line`] types one line as a [`Message`], and [`decode_trace`] undoes the
//! base64 of a trace record's `aux`, giving the protobuf bytes of one `StatusResponse`.

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;

/// Default bound on one line of the body: 64 MiB. BuildKit splits its records at about 1 MiB
/// of log data (≈1.4 MB of base64), so real lines stay far below this.
pub const DEFAULT_MAX_LINE: usize = 64 << 20;

/// Splits a byte stream into lines, whatever the chunking.
///
/// ```
/// use bytes::Bytes;
/// use docker_build::ndjson::LineSplitter;
///
/// let mut lines = LineSplitter::new();
/// lines.push(Bytes::from_static(b"{\"stream\":\"a\"}\r\n{\"str"));
/// lines.push(Bytes::from_static(b"eam\":\"b\"}\r\n"));
/// let mut got = Vec::new();
/// while let Some(line) = lines.next_line() {
///     got.push(line.unwrap());
/// }
/// assert_eq!(got, [&b"{\"stream\":\"a\"}"[..], &b"{\"stream\":\"b\"}"[..]]);
/// assert!(lines.finish().is_none());
/// ```
#[derive(Debug)]
pub struct LineSplitter {
    /// Chunks received and not yet consumed, oldest first.
    chunks: std::collections::VecDeque<Bytes>,
    /// Start of a line whose end has not arrived yet.
    partial: BytesMut,
    /// Set while discarding the rest of a line that grew past `max_line`.
    discarding: Option<usize>,
    max_line: usize,
}

/// A line of the body that could not be used. The stream goes on after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The line grew past the configured bound and was dropped (its length so far is given).
    #[error("line {line}: longer than {max} bytes ({len} bytes), dropped")]
    TooLong {
        /// 1-based line number in the body.
        line: u64,
        /// Bytes seen before the line was dropped.
        len: usize,
        /// The bound in force.
        max: usize,
    },
    /// The line is not a JSON object the daemon would send.
    #[error("line {line}: not a JSON message ({reason}): {excerpt}")]
    NotJson {
        /// 1-based line number in the body.
        line: u64,
        /// What the JSON parser said.
        reason: String,
        /// The first bytes of the line, lossily decoded.
        excerpt: String,
    },
    /// The `aux` string of a `moby.buildkit.trace` line is not standard, padded base64.
    #[error("line {line}: trace record is not valid base64 (byte offset {offset})")]
    Base64 {
        /// 1-based line number in the body.
        line: u64,
        /// Byte offset in the `aux` string of the offending symbol, or the string's length
        /// when the string ends wrongly (truncated, bad padding).
        offset: usize,
        /// The base64 decoder's own description.
        #[source]
        source: Base64Error,
    },
    /// A `moby.buildkit.trace` record whose protobuf could not be decoded.
    ///
    /// The source's [`record`](buildkit_events::RecordError::record) index counts the records
    /// that reached the tracker; a line that failed as [`LineError::Base64`] is not among them.
    /// `line` is the position in the body.
    #[error("line {line}: trace record did not decode")]
    Trace {
        /// 1-based line number in the body.
        line: u64,
        /// What was wrong with the record.
        #[source]
        source: buildkit_events::RecordError,
    },
}

/// Why a trace record's `aux` is not base64 (the decoder's description, without tying this
/// crate's API to the base64 crate's version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(transparent)]
pub struct Base64Error(base64::DecodeError);

impl Default for LineSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl LineSplitter {
    /// A splitter with the default line bound ([`DEFAULT_MAX_LINE`]).
    pub fn new() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE)
    }

    /// A splitter that drops (and reports) lines longer than `max_line` bytes.
    pub fn with_max_line(max_line: usize) -> Self {
        Self {
            chunks: Default::default(),
            partial: BytesMut::new(),
            discarding: None,
            max_line: max_line.max(1),
        }
    }

    /// Queues the next chunk of the body.
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.chunks.push_back(chunk);
        }
    }

    /// The next complete line, without its `\n` or `\r\n`; `Err` for a line that was too long
    /// (given as the byte count seen); `None` until more input arrives.
    pub fn next_line(&mut self) -> Option<Result<Bytes, usize>> {
        while let Some(chunk) = self.chunks.front_mut() {
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    let head = chunk.split_to(i + 1);
                    if chunk.is_empty() {
                        self.chunks.pop_front();
                    }
                    if let Some(seen) = self.discarding.take() {
                        return Some(Err(seen + head.len()));
                    }
                    let line = if self.partial.is_empty() {
                        head
                    } else {
                        if self.partial.len() + head.len() > self.max_line + 2 {
                            let seen = self.partial.len() + head.len();
                            // Free the buffer: keeping its capacity would hold up to
                            // `max_line` bytes for the rest of the body.
                            self.partial = BytesMut::new();
                            return Some(Err(seen));
                        }
                        self.partial.extend_from_slice(&head);
                        self.partial.split().freeze()
                    };
                    if line.len() > self.max_line + 2 {
                        return Some(Err(line.len()));
                    }
                    return Some(Ok(trim_eol(line)));
                }
                None => {
                    let chunk = self.chunks.pop_front().expect("front exists");
                    if let Some(seen) = self.discarding.as_mut() {
                        *seen += chunk.len();
                    } else if self.partial.len() + chunk.len() > self.max_line + 2 {
                        self.discarding = Some(self.partial.len() + chunk.len());
                        self.partial = BytesMut::new();
                    } else {
                        self.partial.extend_from_slice(&chunk);
                    }
                }
            }
        }
        None
    }

    /// The end of the body: the last line if it had no newline (the daemon always ends lines,
    /// so this is a body cut mid-line), or the length of a dropped over-long line.
    pub fn finish(&mut self) -> Option<Result<Bytes, usize>> {
        debug_assert!(self.chunks.is_empty(), "call next_line until None first");
        if let Some(seen) = self.discarding.take() {
            return Some(Err(seen));
        }
        if self.partial.is_empty() {
            return None;
        }
        Some(Ok(trim_eol(self.partial.split().freeze())))
    }

    /// The line bound in force.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Bytes held for an unfinished line.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }
}

fn trim_eol(mut line: Bytes) -> Bytes {
    if line.last() == Some(&b'\n') {
        line.truncate(line.len() - 1);
    }
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    line
}

/// One line of the build response, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// `{"id":"moby.buildkit.trace","aux":"<base64>"}`: the base64 text of one protobuf
    /// `StatusResponse` ([`decode_trace`] gives the protobuf bytes for
    /// [`Tracker::handle_protobuf`](buildkit_events::Tracker::handle_protobuf)).
    Trace(Bytes),
    /// `{"id":"moby.image.id","aux":{"ID":…}}` (BuildKit) or `{"aux":{"ID":…}}` (classic).
    ImageId(String),
    /// `{"stream":"…"}`: text (the classic builder's output, `Successfully tagged …`).
    Stream(String),
    /// `{"status":"…","id":…,"progressDetail":…}`: pull progress of the classic builder.
    Status {
        /// Layer or image the status is about.
        id: Option<String>,
        /// e.g. `Downloading`, `Pull complete`.
        status: String,
        /// Bytes done so far, when the daemon says.
        current: Option<i64>,
        /// Bytes in all, when the daemon says.
        total: Option<i64>,
    },
    /// `{"errorDetail":{"message":…,"code":…},"error":…}`: the build failed.
    Error {
        /// The daemon's message (`errorDetail.message`, else the deprecated `error`).
        message: String,
        /// `errorDetail.code` (the classic builder's exit code), when present.
        code: Option<i64>,
    },
    /// Any other JSON object (kept so that nothing is silently lost).
    Other(Bytes),
}

const TRACE_PREFIX: &[u8] = br#"{"id":"moby.buildkit.trace","aux":""#;

#[derive(Deserialize)]
struct Line {
    id: Option<String>,
    aux: Option<serde_json::Value>,
    stream: Option<String>,
    status: Option<String>,
    #[serde(rename = "progressDetail")]
    progress_detail: Option<ProgressDetail>,
    error: Option<String>,
    #[serde(rename = "errorDetail")]
    error_detail: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ProgressDetail {
    current: Option<i64>,
    total: Option<i64>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
    code: Option<i64>,
}

/// Types one line of the body (as returned by [`LineSplitter`]). `line_no` only labels errors.
///
/// Trace records, which are nearly all of a BuildKit body, are recognised without a JSON
/// parser; everything else goes through serde_json.
///
/// ```
/// use bytes::Bytes;
/// use docker_build::ndjson::{parse_line, Message};
///
/// let line = Bytes::from_static(br#"{"id":"moby.buildkit.trace","aux":"CgA="}"#);
/// assert_eq!(parse_line(line, 1).unwrap(), Message::Trace(Bytes::from_static(b"CgA=")));
/// let line = Bytes::from_static(br#"{"errorDetail":{"message":"boom"},"error":"boom"}"#);
/// assert_eq!(
///     parse_line(line, 2).unwrap(),
///     Message::Error { message: "boom".into(), code: None }
/// );
/// ```
pub fn parse_line(line: Bytes, line_no: u64) -> Result<Message, LineError> {
    // The closing `"}` must follow the prefix, not overlap its last quote.
    if line.len() >= TRACE_PREFIX.len() + 2
        && line.starts_with(TRACE_PREFIX)
        && line.ends_with(b"\"}")
    {
        let body = line.slice(TRACE_PREFIX.len()..line.len() - 2);
        // Base64 never holds `"` or `\`; if this one does, let the JSON parser judge it.
        if memchr::memchr2(b'"', b'\\', &body).is_none() {
            return Ok(Message::Trace(body));
        }
    }
    let parsed: Line = serde_json::from_slice(&line).map_err(|e| LineError::NotJson {
        line: line_no,
        reason: e.to_string(),
        excerpt: String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned(),
    })?;
    if let Some(detail) = parsed.error_detail {
        let message = detail.message.or(parsed.error).unwrap_or_default();
        return Ok(Message::Error {
            message,
            code: detail.code,
        });
    }
    if let Some(message) = parsed.error {
        return Ok(Message::Error {
            message,
            code: None,
        });
    }
    match (parsed.id.as_deref(), parsed.aux) {
        (Some("moby.buildkit.trace"), Some(serde_json::Value::String(b64))) => {
            return Ok(Message::Trace(Bytes::from(b64.into_bytes())));
        }
        (Some("moby.image.id") | None, Some(serde_json::Value::Object(map))) => {
            if let Some(serde_json::Value::String(id)) = map.get("ID") {
                return Ok(Message::ImageId(id.clone()));
            }
        }
        _ => {}
    }
    if let Some(text) = parsed.stream {
        return Ok(Message::Stream(text));
    }
    if let Some(status) = parsed.status {
        let (current, total) = parsed
            .progress_detail
            .map(|p| (p.current, p.total))
            .unwrap_or_default();
        return Ok(Message::Status {
            id: parsed.id,
            status,
            current,
            total,
        });
    }
    Ok(Message::Other(line))
}

/// Decodes the base64 `aux` of a [`Message::Trace`] (standard alphabet, padded) into the
/// protobuf bytes of one `StatusResponse`. `line_no` only labels the error.
///
/// ```
/// use bytes::Bytes;
/// use docker_build::ndjson::{LineError, decode_trace};
///
/// assert_eq!(decode_trace(b"CgA=", 1).unwrap(), Bytes::from_static(b"\x0a\x00"));
/// let err = decode_trace(b"Cg*A", 7).unwrap_err();
/// assert!(matches!(err, LineError::Base64 { line: 7, offset: 2, .. }));
/// assert_eq!(err.to_string(), "line 7: trace record is not valid base64 (byte offset 2)");
/// ```
pub fn decode_trace(aux: &[u8], line_no: u64) -> Result<Bytes, LineError> {
    match base64::engine::general_purpose::STANDARD.decode(aux) {
        Ok(wire) => Ok(Bytes::from(wire)),
        Err(source) => Err(LineError::Base64 {
            line: line_no,
            offset: base64_offset(&source, aux.len()),
            source: Base64Error(source),
        }),
    }
}

/// The byte offset a base64 error points at.
fn base64_offset(err: &base64::DecodeError, input_len: usize) -> usize {
    match *err {
        base64::DecodeError::InvalidByte(offset, _)
        | base64::DecodeError::InvalidLastSymbol(offset, _) => offset,
        base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => input_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]], max: usize) -> Vec<Result<Vec<u8>, usize>> {
        let mut s = LineSplitter::with_max_line(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(Bytes::copy_from_slice(c));
            while let Some(l) = s.next_line() {
                out.push(l.map(|b| b.to_vec()));
            }
        }
        if let Some(l) = s.finish() {
            out.push(l.map(|b| b.to_vec()));
        }
        out
    }

    #[test]
    fn crlf_and_lf_lines_in_any_chunking() {
        let body = b"{\"a\":1}\r\n{\"b\":2}\n\r\n{\"c\":3}\r\n";
        let want: Vec<Result<Vec<u8>, usize>> = vec![
            Ok(b"{\"a\":1}".to_vec()),
            Ok(b"{\"b\":2}".to_vec()),
            Ok(b"".to_vec()),
            Ok(b"{\"c\":3}".to_vec()),
        ];
        for cut in 0..=body.len() {
            for cut2 in cut..=body.len() {
                let got = split_all(&[&body[..cut], &body[cut..cut2], &body[cut2..]], 1 << 20);
                assert_eq!(got, want, "cuts at {cut}, {cut2}");
            }
        }
    }

    #[test]
    fn body_cut_mid_line_returns_the_fragment_at_finish() {
        let got = split_all(&[b"{\"a\":1}\r\n{\"id\":\"moby.bu"], 1 << 20);
        assert_eq!(
            got,
            vec![Ok(b"{\"a\":1}".to_vec()), Ok(b"{\"id\":\"moby.bu".to_vec())]
        );
    }

    #[test]
    fn over_long_lines_are_dropped_and_reported_and_the_next_line_survives() {
        let long = vec![b'x'; 50];
        let mut body = long.clone();
        body.extend_from_slice(b"\r\nshort\r\n");
        for cut in [1, 10, 49, 50, 51, 52, 55] {
            let got = split_all(&[&body[..cut], &body[cut..]], 20);
            assert_eq!(got, vec![Err(52), Ok(b"short".to_vec())], "cut at {cut}");
        }
        // An over-long line cut off by the end of the body is reported too.
        assert_eq!(split_all(&[&long[..30], &long[30..]], 20), vec![Err(50)]);
    }

    #[test]
    fn whole_lines_are_not_copied() {
        let chunk = Bytes::from_static(b"{\"a\":1}\r\n");
        let mut s = LineSplitter::new();
        s.push(chunk.clone());
        let line = s.next_line().unwrap().unwrap();
        assert_eq!(
            line.as_ptr(),
            chunk.as_ptr(),
            "a line inside one chunk is a slice of it"
        );
    }

    #[test]
    fn message_kinds() {
        let p = |s: &str| parse_line(Bytes::copy_from_slice(s.as_bytes()), 7).unwrap();
        assert_eq!(
            p(r#"{"id":"moby.image.id","aux":{"ID":"sha256:ab"}}"#),
            Message::ImageId("sha256:ab".into())
        );
        assert_eq!(
            p(r#"{"aux":{"ID":"sha256:cd"}}"#),
            Message::ImageId("sha256:cd".into())
        );
        assert_eq!(
            p(r#"{"stream":"Step 1/2 : FROM x"}"#),
            Message::Stream("Step 1/2 : FROM x".into())
        );
        assert_eq!(
            p(r#"{"errorDetail":{"code":4,"message":"m"},"error":"m"}"#),
            Message::Error {
                message: "m".into(),
                code: Some(4)
            }
        );
        assert_eq!(
            p(r#"{"error":"old"}"#),
            Message::Error {
                message: "old".into(),
                code: None
            }
        );
        assert_eq!(
            p(r#"{"status":"Downloading","progressDetail":{"current":5,"total":9},"id":"abc"}"#),
            Message::Status {
                id: Some("abc".into()),
                status: "Downloading".into(),
                current: Some(5),
                total: Some(9)
            }
        );
        // Key order other than the daemon's still finds the trace record.
        assert_eq!(
            p(r#"{"aux":"CgA=","id":"moby.buildkit.trace"}"#),
            Message::Trace(Bytes::from_static(b"CgA="))
        );
        assert!(matches!(p(r#"{"something":"else"}"#), Message::Other(_)));
        // Found by fuzzing: the prefix's own closing quote is not the end of the aux string.
        let err = parse_line(
            Bytes::from_static(br#"{"id":"moby.buildkit.trace","aux":"}"#),
            3,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("line 3: not a JSON message"),
            "{err}"
        );
        assert_eq!(
            p(r#"{"id":"moby.buildkit.trace","aux":""}"#),
            Message::Trace(Bytes::new())
        );
        let err = parse_line(Bytes::from_static(b"not json"), 9).unwrap_err();
        assert!(
            err.to_string().starts_with("line 9: not a JSON message"),
            "{err}"
        );
    }
}
