//! Recordings of a build other than a `POST /build` body, and telling the formats apart
//! (sans-IO, no async runtime: usable without the `daemon` feature).
//!
//! Three formats carry a build's BuildKit progress:
//! - [`Format::BuildBody`]: the daemon's `POST /build` response body (NDJSON, BuildKit or
//!   classic builder), what [`BuildDecoder`] reads and `bktrace build --record` writes;
//! - [`Format::HistoryBlob`]: a finished build's logs blob from BuildKit's history (media type
//!   `application/vnd.buildkit.status.v0`): records one after another, each a 4-byte
//!   little-endian length and that many bytes of `StatusResponse` protobuf
//!   ([`BlobDecoder`]);
//! - [`Format::RawJson`]: `docker buildx build --progress=rawjson` output, one JSON
//!   `SolveStatus` per line, Go's field names, RFC 3339 times, byte fields in base64
//!   ([`RawJsonDecoder`], [`parse_solve_status`]).
//!
//! [`Format::detect`] tells them apart from the first bytes, and [`RecordingDecoder`] takes
//! any of them, in any chunking, and gives the [`BuildEvent`]s a [`BuildDecoder`] gives for a
//! body: every record goes through the same tracker, so every renderer works on every format.
//! Memory is bounded by one record (or line) plus the chunk being pushed.
//!
//! ```
//! use docker_build::recording::{Format, RecordingDecoder};
//! use docker_build::{BuildEvent, Event};
//!
//! let rawjson = concat!(
//!     r#"{"vertexes":[{"digest":"sha256:a","name":"[1/1] RUN echo hi","started":"2026-01-01T00:00:00Z"}]}"#, "\n",
//!     r#"{"logs":[{"vertex":"sha256:a","stream":1,"data":"aGkK","timestamp":"2026-01-01T00:00:00.5Z"}]}"#, "\n",
//! );
//! assert_eq!(Format::detect(rawjson.as_bytes()), Some(Format::RawJson));
//! let mut decoder = RecordingDecoder::new();
//! decoder.push(rawjson).unwrap();
//! decoder.finish().unwrap();
//! let lines: Vec<String> = std::iter::from_fn(|| decoder.poll_event())
//!     .filter_map(|e| match e {
//!         BuildEvent::Vertex(Event::Log(l)) => Some(l.text().into_owned()),
//!         _ => None,
//!     })
//!     .collect();
//! assert_eq!(lines, ["hi"]);
//! ```

use std::collections::HashMap;

use base64::Engine as _;
use buildkit_events::Time;
use buildkit_proto::pb::{
    Definition, ExportCache, LinuxResources, Location, Locations, OpMetadata, Position,
    ProgressGroup, Range, Source, SourceInfo,
};
use buildkit_proto::{
    Message as _, StatusResponse, Timestamp, Vertex, VertexLog, VertexStatus, VertexWarning,
};
use bytes::{Buf as _, Bytes, BytesMut};
use serde::Deserialize;

use crate::decode::{BuildDecoder, BuildEvent, BuildFailure, DecoderConfig};
use crate::ndjson::{DEFAULT_MAX_LINE, LineError, LineSplitter};

/// Default bound on one record of a history logs blob: 64 MiB, as for a body line (BuildKit
/// writes records far smaller).
pub const DEFAULT_MAX_RECORD: usize = DEFAULT_MAX_LINE;

/// The kind of a recording, as [`Format::detect`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// A `POST /build` response body (NDJSON: `{"stream":…}`, `{"id":…,"aux":…}`, …).
    BuildBody,
    /// A BuildKit history logs blob: length-prefixed `StatusResponse` protobufs.
    HistoryBlob,
    /// buildx `--progress=rawjson` output: one `SolveStatus` JSON object per line.
    RawJson,
}

impl Format {
    /// How many leading bytes [`Format::detect`] looks at, at most.
    pub const DETECT_LEN: usize = 64;

    /// The format of a recording from its first bytes: give it the first
    /// [`Format::DETECT_LEN`] bytes, or the whole recording if it is shorter. `None`: none of
    /// the three.
    ///
    /// A JSON object whose first key is one of `SolveStatus`'s (`vertexes`, `statuses`,
    /// `logs`, `warnings`; or `{}`) is rawjson; any other JSON object is a body line; an
    /// empty input is an (empty) body. Otherwise the first 4 bytes must be a little-endian
    /// length from 1 to [`DEFAULT_MAX_RECORD`] followed by the tag of one of
    /// `StatusResponse`'s four fields (the first byte BuildKit's Go protobuf writes).
    ///
    /// ```
    /// use docker_build::recording::Format;
    /// assert_eq!(Format::detect(b"{\"stream\":\"Step 1/2\"}\r\n"), Some(Format::BuildBody));
    /// assert_eq!(Format::detect(b"{\"statuses\":[]}\n"), Some(Format::RawJson));
    /// assert_eq!(Format::detect(&[3, 0, 0, 0, 0x0a, 1, 0]), Some(Format::HistoryBlob));
    /// assert_eq!(Format::detect(b"GIF89a"), None);
    /// ```
    pub fn detect(prefix: &[u8]) -> Option<Format> {
        let text = prefix.trim_ascii_start();
        if prefix.is_empty() || (text.is_empty() && prefix.len() < Self::DETECT_LEN) {
            return Some(Format::BuildBody);
        }
        if let Some(object) = text.strip_prefix(b"{") {
            let object = object.trim_ascii_start();
            if object.starts_with(b"}") {
                return Some(Format::RawJson);
            }
            let keys: [&[u8]; 4] = [
                b"\"vertexes\"",
                b"\"statuses\"",
                b"\"logs\"",
                b"\"warnings\"",
            ];
            if keys.iter().any(|k| object.starts_with(k)) {
                return Some(Format::RawJson);
            }
            return Some(Format::BuildBody);
        }
        if let [a, b, c, d, tag, ..] = *prefix {
            let len = u32::from_le_bytes([a, b, c, d]) as usize;
            let field = matches!(tag, 0x0a | 0x12 | 0x1a | 0x22);
            if field && (1..=DEFAULT_MAX_RECORD).contains(&len) {
                return Some(Format::HistoryBlob);
            }
        }
        None
    }
}

/// Why a history logs blob cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// A record's length is over the bound: the rest cannot be framed.
    #[error(
        "record {record} at byte {offset} claims {len} bytes, more than the limit of {max} \
         (not a history logs blob, or a damaged one)"
    )]
    TooLarge {
        /// 0-based index of the record.
        record: u64,
        /// Byte offset of its length prefix.
        offset: u64,
        /// The length it claims.
        len: u64,
        /// The bound in force.
        max: usize,
    },
    /// The blob ends inside a record (or its length prefix).
    #[error(
        "the blob is cut short: record {record} at byte {offset} needs {need} bytes, only \
         {have} are there"
    )]
    Truncated {
        /// 0-based index of the record.
        record: u64,
        /// Byte offset of its length prefix.
        offset: u64,
        /// Bytes the record needs, its 4-byte prefix included (4 if the prefix itself is cut).
        need: u64,
        /// Bytes there are.
        have: u64,
    },
}

/// Frames a history logs blob into records, whatever the chunking (sans-IO).
///
/// ```
/// use bytes::Bytes;
/// use docker_build::recording::BlobDecoder;
///
/// let mut blob = BlobDecoder::new();
/// blob.push(Bytes::from_static(&[2, 0, 0, 0, 0x1a]));
/// assert!(blob.next_record().is_none()); // one byte of the record is still missing
/// blob.push(Bytes::from_static(&[0]));
/// assert_eq!(blob.next_record().unwrap().unwrap(), &[0x1a, 0][..]);
/// assert!(blob.finish().is_ok());
/// ```
#[derive(Debug)]
pub struct BlobDecoder {
    buf: BytesMut,
    /// Offset of `buf`'s first byte in the blob.
    offset: u64,
    record: u64,
    max_record: usize,
    failed: bool,
}

impl Default for BlobDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BlobDecoder {
    /// A decoder with the default bound ([`DEFAULT_MAX_RECORD`]).
    pub fn new() -> Self {
        Self::with_max_record(DEFAULT_MAX_RECORD)
    }

    /// A decoder refusing records longer than `max_record` bytes.
    pub fn with_max_record(max_record: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            offset: 0,
            record: 0,
            max_record,
            failed: false,
        }
    }

    /// Feeds the next bytes of the blob. Nothing is kept after an error.
    pub fn push(&mut self, chunk: impl AsRef<[u8]>) {
        if !self.failed {
            self.buf.extend_from_slice(chunk.as_ref());
        }
    }

    /// How many records have been framed.
    pub fn records(&self) -> u64 {
        self.record
    }

    /// The protobuf bytes of the next whole record; `None` until more bytes arrive. After a
    /// [`BlobError::TooLarge`], always `None`.
    pub fn next_record(&mut self) -> Option<Result<Bytes, BlobError>> {
        if self.failed || self.buf.len() < 4 {
            return None;
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let len = len as usize;
        if len > self.max_record {
            self.failed = true;
            self.buf = BytesMut::new();
            return Some(Err(BlobError::TooLarge {
                record: self.record,
                offset: self.offset,
                len: len as u64,
                max: self.max_record,
            }));
        }
        if self.buf.len() < 4 + len {
            // Room for the rest of the record, so it is not grown chunk by chunk.
            self.buf.reserve(4 + len - self.buf.len());
            return None;
        }
        self.buf.advance(4);
        let record = self.buf.split_to(len).freeze();
        self.offset += 4 + len as u64;
        self.record += 1;
        Some(Ok(record))
    }

    /// The end of the blob: an error if it ends inside a record. Call after
    /// [`BlobDecoder::next_record`] has returned `None`.
    pub fn finish(&mut self) -> Result<(), BlobError> {
        if self.failed || self.buf.is_empty() {
            return Ok(());
        }
        let have = self.buf.len() as u64;
        let need = match *self.buf {
            [a, b, c, d, ..] => 4 + u64::from(u32::from_le_bytes([a, b, c, d])),
            _ => 4,
        };
        self.failed = true;
        Err(BlobError::Truncated {
            record: self.record,
            offset: self.offset,
            need,
            have,
        })
    }
}

/// Reads buildx `--progress=rawjson` output, one `SolveStatus` per line, whatever the
/// chunking (sans-IO). Empty lines are skipped.
#[derive(Debug)]
pub struct RawJsonDecoder {
    lines: LineSplitter,
    line_no: u64,
}

impl Default for RawJsonDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RawJsonDecoder {
    /// A decoder with the default line bound ([`DEFAULT_MAX_LINE`]).
    pub fn new() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE)
    }

    /// A decoder dropping (and reporting) lines longer than `max_line` bytes.
    pub fn with_max_line(max_line: usize) -> Self {
        Self {
            lines: LineSplitter::with_max_line(max_line),
            line_no: 0,
        }
    }

    /// Feeds the next bytes.
    pub fn push(&mut self, chunk: impl Into<Bytes>) {
        self.lines.push(chunk.into());
    }

    /// The next record; `None` until more bytes arrive. A line that is not a `SolveStatus`
    /// gives its [`LineError`], and the lines after it are read on.
    pub fn next_record(&mut self) -> Option<Result<StatusResponse, LineError>> {
        loop {
            let line = self.lines.next_line()?;
            if let Some(record) = self.line(line) {
                return Some(record);
            }
        }
    }

    /// The end of the input: the last line, if it had no newline.
    pub fn finish(&mut self) -> Option<Result<StatusResponse, LineError>> {
        let line = self.lines.finish()?;
        self.line(line)
    }

    fn line(&mut self, line: Result<Bytes, usize>) -> Option<Result<StatusResponse, LineError>> {
        self.line_no += 1;
        let line_no = self.line_no;
        match line {
            Ok(line) if line.trim_ascii().is_empty() => None,
            Ok(line) => Some(
                parse_solve_status(&line).map_err(|reason| LineError::NotJson {
                    line: line_no,
                    reason,
                    excerpt: String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned(),
                }),
            ),
            Err(len) => Some(Err(LineError::TooLong {
                line: line_no,
                len,
                max: self.lines.max_line(),
            })),
        }
    }
}

/// Parses one line of buildx `--progress=rawjson` (a Go `client.SolveStatus` as
/// `encoding/json` writes it) into the `StatusResponse` it was made from. Unknown keys are
/// ignored; the error is the reason, in words.
///
/// A warning's `sourceInfo.definition`, which Go writes as a JSON object, is encoded back to
/// protobuf: the same `pb.Definition`, though its maps' entries may come in another order
/// than in the original bytes.
pub fn parse_solve_status(line: &[u8]) -> Result<StatusResponse, String> {
    let status: json::SolveStatus = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    status.into_proto()
}

/// Nanoseconds since the Unix epoch of an RFC 3339 time (`2026-01-02T03:04:05.123456789Z`,
/// or with a `±hh:mm` offset), as Go's `time.Time` writes itself in JSON.
///
/// Hand-written (30 lines) rather than a date crate added to the core's dependencies for one
/// fixed format; the calendar arithmetic is the inverse of the renderer's `rfc3339`.
fn parse_rfc3339(text: &str) -> Option<i128> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i128> {
        let part = b.get(range)?;
        part.iter().try_fold(0i128, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i128::from(c - b'0'))
        })
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let seps = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| b[i] != c) || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0i128;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(20..20 + n)? * 10i128.pow(9 - n as u32);
        rest = &fraction[n..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hm: Option<Vec<i128>> = [h1, h2, m1, m2]
                .iter()
                .map(|c| c.is_ascii_digit().then(|| i128::from(**c - b'0')))
                .collect();
            let hm = hm?;
            let secs = (hm[0] * 10 + hm[1]) * 3600 + (hm[2] * 10 + hm[3]) * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(secs * 1_000_000_000 + nanos)
}

/// The JSON shape of Go's `client.SolveStatus` and what it holds (buildx's rawjson), as the
/// `rawjson` renderer of `buildkit-progressui` writes it too.
mod json {
    use super::*;

    fn time(t: &Option<String>, what: &str) -> Result<Option<Timestamp>, String> {
        let Some(t) = t else {
            return Ok(None);
        };
        let nanos =
            parse_rfc3339(t).ok_or_else(|| format!("{what}: not an RFC 3339 time: {t:?}"))?;
        let seconds = i64::try_from(nanos.div_euclid(1_000_000_000))
            .map_err(|_| format!("{what}: out of range: {t:?}"))?;
        Ok(Some(Timestamp {
            seconds,
            nanos: nanos.rem_euclid(1_000_000_000) as i32,
        }))
    }

    fn bytes(b: &Option<String>, what: &str) -> Result<Bytes, String> {
        match b {
            None => Ok(Bytes::new()),
            Some(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(Bytes::from)
                .map_err(|e| format!("{what}: not base64: {e}")),
        }
    }

    #[derive(Deserialize)]
    #[serde(default)]
    #[derive(Default)]
    pub(super) struct SolveStatus {
        vertexes: Vec<JVertex>,
        statuses: Vec<JStatus>,
        logs: Vec<JLog>,
        warnings: Vec<JWarning>,
    }

    impl SolveStatus {
        pub(super) fn into_proto(self) -> Result<StatusResponse, String> {
            Ok(StatusResponse {
                vertexes: self
                    .vertexes
                    .into_iter()
                    .map(JVertex::into_proto)
                    .collect::<Result<_, _>>()?,
                statuses: self
                    .statuses
                    .into_iter()
                    .map(JStatus::into_proto)
                    .collect::<Result<_, _>>()?,
                logs: self
                    .logs
                    .into_iter()
                    .map(JLog::into_proto)
                    .collect::<Result<_, _>>()?,
                warnings: self
                    .warnings
                    .into_iter()
                    .map(JWarning::into_proto)
                    .collect::<Result<_, _>>()?,
            })
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct JGroup {
        id: String,
        name: String,
        weak: bool,
    }

    impl JGroup {
        fn into_proto(self) -> ProgressGroup {
            ProgressGroup {
                id: self.id,
                name: self.name,
                weak: self.weak,
            }
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct JVertex {
        digest: String,
        inputs: Vec<String>,
        name: String,
        started: Option<String>,
        completed: Option<String>,
        cached: bool,
        error: String,
        progress_group: Option<JGroup>,
    }

    impl JVertex {
        fn into_proto(self) -> Result<Vertex, String> {
            Ok(Vertex {
                started: time(&self.started, "vertex started")?,
                completed: time(&self.completed, "vertex completed")?,
                digest: self.digest,
                inputs: self.inputs,
                name: self.name,
                cached: self.cached,
                error: self.error,
                progress_group: self.progress_group.map(JGroup::into_proto),
            })
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct JStatus {
        id: String,
        vertex: String,
        name: String,
        current: i64,
        total: i64,
        timestamp: Option<String>,
        started: Option<String>,
        completed: Option<String>,
    }

    impl JStatus {
        fn into_proto(self) -> Result<VertexStatus, String> {
            Ok(VertexStatus {
                timestamp: time(&self.timestamp, "status timestamp")?,
                started: time(&self.started, "status started")?,
                completed: time(&self.completed, "status completed")?,
                id: self.id,
                vertex: self.vertex,
                name: self.name,
                current: self.current,
                total: self.total,
            })
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct JLog {
        vertex: String,
        stream: i64,
        data: Option<String>,
        timestamp: Option<String>,
    }

    impl JLog {
        fn into_proto(self) -> Result<VertexLog, String> {
            Ok(VertexLog {
                timestamp: time(&self.timestamp, "log timestamp")?,
                msg: bytes(&self.data, "log data")?,
                vertex: self.vertex,
                stream: self.stream,
            })
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct JWarning {
        vertex: String,
        level: i64,
        short: Option<String>,
        detail: Vec<String>,
        url: String,
        source_info: Option<JSourceInfo>,
        range: Vec<JRange>,
    }

    impl JWarning {
        fn into_proto(self) -> Result<VertexWarning, String> {
            let detail = self
                .detail
                .into_iter()
                .map(|d| bytes(&Some(d), "warning detail"));
            Ok(VertexWarning {
                short: bytes(&self.short, "warning short")?,
                detail: detail.collect::<Result<_, _>>()?,
                info: self.source_info.map(JSourceInfo::into_proto).transpose()?,
                ranges: self.range.into_iter().map(JRange::into_proto).collect(),
                vertex: self.vertex,
                level: self.level,
                url: self.url,
            })
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct JSourceInfo {
        filename: String,
        data: Option<String>,
        definition: Option<JDefinition>,
        language: String,
    }

    impl JSourceInfo {
        fn into_proto(self) -> Result<SourceInfo, String> {
            let definition = match self.definition {
                Some(d) => Bytes::from(d.into_proto()?.encode_to_vec()),
                None => Bytes::new(),
            };
            Ok(SourceInfo {
                data: bytes(&self.data, "source data")?,
                definition,
                filename: self.filename,
                language: self.language,
            })
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct JRange {
        start: Option<JPosition>,
        end: Option<JPosition>,
    }

    impl JRange {
        fn into_proto(self) -> Range {
            Range {
                start: self.start.map(JPosition::into_proto),
                end: self.end.map(JPosition::into_proto),
            }
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct JPosition {
        line: i32,
        character: i32,
    }

    impl JPosition {
        fn into_proto(self) -> Position {
            Position {
                line: self.line,
                character: self.character,
            }
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct JDefinition {
        def: Vec<String>,
        metadata: HashMap<String, JOpMetadata>,
        #[serde(rename = "Source")]
        source: Option<JSource>,
    }

    impl JDefinition {
        fn into_proto(self) -> Result<Definition, String> {
            let def = self
                .def
                .into_iter()
                .map(|d| bytes(&Some(d), "definition op"));
            Ok(Definition {
                def: def.collect::<Result<_, _>>()?,
                metadata: self
                    .metadata
                    .into_iter()
                    .map(|(k, m)| (k, m.into_proto()))
                    .collect(),
                source: self.source.map(JSource::into_proto).transpose()?,
            })
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct JOpMetadata {
        ignore_cache: bool,
        description: HashMap<String, String>,
        export_cache: Option<JExportCache>,
        caps: HashMap<String, bool>,
        progress_group: Option<JGroup>,
        linux_resources: Option<JLinuxResources>,
    }

    impl JOpMetadata {
        fn into_proto(self) -> OpMetadata {
            OpMetadata {
                ignore_cache: self.ignore_cache,
                description: self.description,
                export_cache: self.export_cache.map(|e| ExportCache { value: e.value }),
                caps: self.caps,
                progress_group: self.progress_group.map(JGroup::into_proto),
                linux_resources: self.linux_resources.map(|r| LinuxResources {
                    memory: r.memory,
                    memory_swap: r.memory_swap,
                    cpu_shares: r.cpu_shares,
                    cpu_period: r.cpu_period,
                    cpu_quota: r.cpu_quota,
                    cpuset_cpus: r.cpuset_cpus,
                    cpuset_mems: r.cpuset_mems,
                }),
            }
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct JExportCache {
        #[serde(rename = "Value")]
        value: bool,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct JLinuxResources {
        memory: i64,
        memory_swap: i64,
        cpu_shares: u64,
        cpu_period: u64,
        cpu_quota: i64,
        cpuset_cpus: String,
        cpuset_mems: String,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct JSource {
        locations: HashMap<String, JLocations>,
        infos: Vec<JSourceInfo>,
    }

    impl JSource {
        fn into_proto(self) -> Result<Source, String> {
            Ok(Source {
                locations: self
                    .locations
                    .into_iter()
                    .map(|(k, l)| (k, l.into_proto()))
                    .collect(),
                infos: self
                    .infos
                    .into_iter()
                    .map(JSourceInfo::into_proto)
                    .collect::<Result<_, _>>()?,
            })
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct JLocations {
        locations: Vec<JLocation>,
    }

    impl JLocations {
        fn into_proto(self) -> Locations {
            Locations {
                locations: self
                    .locations
                    .into_iter()
                    .map(|l| Location {
                        source_index: l.source_index,
                        ranges: l.ranges.into_iter().map(JRange::into_proto).collect(),
                    })
                    .collect(),
            }
        }
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct JLocation {
        source_index: i32,
        ranges: Vec<JRange>,
    }
}

/// Why a recording could not be read on (the events decoded before it are still delivered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// The first bytes are none of the known formats ([`Format::detect`]).
    #[error(
        "not a recording of a known format: expected a POST /build body, a BuildKit history \
         logs blob or buildx rawjson output"
    )]
    UnknownFormat,
    /// A history logs blob that cannot be framed on.
    #[error("{0}")]
    Blob(#[from] BlobError),
}

#[derive(Debug)]
enum State {
    /// Collecting the first bytes to tell the format.
    Detecting(BytesMut),
    Body,
    Blob(BlobDecoder),
    RawJson(RawJsonDecoder),
    /// Stopped by an error; the error is kept for [`RecordingDecoder::finish`].
    Failed(RecordingError),
}

/// Any recording ([`Format`]) in, [`BuildEvent`]s out, as [`BuildDecoder`] gives them for a
/// body (sans-IO). Bodies go through a [`BuildDecoder`] as they are; the records of a blob or
/// of rawjson go into the same decoder's tracker one by one
/// ([`BuildDecoder::push_protobuf`], [`BuildDecoder::push_record`]), with
/// [`BuildEvent::Record`]s when [`DecoderConfig::records`] asks for them. A recording of
/// records has no daemon error line: when a step failed, its error becomes the
/// [`BuildFailure`] (a [`BuildEvent::Failed`] before [`BuildEvent::Finished`]).
///
/// Errors stop the decoding: [`RecordingDecoder::push`] returns one at once, and
/// [`RecordingDecoder::finish`] returns the one that stopped it. The events decoded before
/// are still polled, and `finish` still ends them with [`BuildEvent::Finished`], except for
/// [`RecordingError::UnknownFormat`], where there are none.
#[derive(Debug)]
pub struct RecordingDecoder {
    state: State,
    format: Option<Format>,
    decoder: BuildDecoder,
    /// The `Finished` held back while the `Failed` made up for it goes out.
    held: Option<BuildEvent>,
    finished: bool,
}

impl Default for RecordingDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordingDecoder {
    /// A decoder with the default configuration.
    pub fn new() -> Self {
        Self::with_config(DecoderConfig::default())
    }

    /// A decoder with `config` (its line bound also bounds a blob's records).
    pub fn with_config(config: DecoderConfig) -> Self {
        Self {
            state: State::Detecting(BytesMut::new()),
            format: None,
            decoder: BuildDecoder::with_config(config),
            held: None,
            finished: false,
        }
    }

    /// The format, once the first bytes have told it.
    pub fn format(&self) -> Option<Format> {
        self.format
    }

    /// Feeds the next bytes of the recording.
    ///
    /// # Errors
    /// The first [`RecordingError`] that stopped the decoding (later calls return nothing).
    pub fn push(&mut self, chunk: impl Into<Bytes>) -> Result<(), RecordingError> {
        let chunk = chunk.into();
        if let State::Detecting(sniff) = &mut self.state {
            sniff.extend_from_slice(&chunk);
            if sniff.len() < Format::DETECT_LEN {
                return Ok(());
            }
            let first = std::mem::take(sniff).freeze();
            return self.start(first);
        }
        self.feed(chunk)
    }

    /// The end of the recording: the last events and [`BuildEvent::Finished`] are queued.
    ///
    /// # Errors
    /// The error that stopped the decoding, if any (a truncated blob is found here).
    pub fn finish(&mut self) -> Result<(), RecordingError> {
        if self.finished {
            return Ok(());
        }
        if let State::Detecting(sniff) = &mut self.state {
            let first = std::mem::take(sniff).freeze();
            let _ = self.start(first);
        }
        self.finished = true;
        let result = match &mut self.state {
            State::Detecting(_) | State::Body => Ok(()),
            State::Blob(blob) => blob.finish().map_err(RecordingError::from),
            State::RawJson(raw) => {
                match raw.finish() {
                    Some(Ok(record)) => self.decoder.push_record(record),
                    Some(Err(e)) => self.decoder.push_bad_line(e),
                    None => {}
                }
                Ok(())
            }
            State::Failed(RecordingError::UnknownFormat) => {
                return Err(RecordingError::UnknownFormat);
            }
            State::Failed(e) => Err(e.clone()),
        };
        self.decoder.finish(Time(0));
        result
    }

    /// The next event, in order; `None` until more input arrives.
    pub fn poll_event(&mut self) -> Option<BuildEvent> {
        if let Some(event) = self.held.take() {
            return Some(event);
        }
        let event = self.decoder.poll_event()?;
        let records = matches!(self.format, Some(Format::HistoryBlob | Format::RawJson));
        match event {
            BuildEvent::Finished(mut summary) if records && summary.failure.is_none() => {
                let Some(step) = summary.summary.failed.clone() else {
                    return Some(BuildEvent::Finished(summary));
                };
                let failure = BuildFailure {
                    message: step.error.clone(),
                    code: None,
                    step: Some(step),
                };
                summary.failure = Some(failure.clone());
                self.held = Some(BuildEvent::Finished(summary));
                Some(BuildEvent::Failed(failure))
            }
            other => Some(other),
        }
    }

    /// The decoder the records go through (its tracker, its running vertices).
    pub fn decoder(&self) -> &BuildDecoder {
        &self.decoder
    }

    fn start(&mut self, first: Bytes) -> Result<(), RecordingError> {
        let Some(format) = Format::detect(&first[..first.len().min(Format::DETECT_LEN)]) else {
            self.state = State::Failed(RecordingError::UnknownFormat);
            return Err(RecordingError::UnknownFormat);
        };
        self.format = Some(format);
        self.state = match format {
            Format::BuildBody => State::Body,
            Format::HistoryBlob => State::Blob(BlobDecoder::with_max_record(self.max())),
            Format::RawJson => State::RawJson(RawJsonDecoder::with_max_line(self.max())),
        };
        self.feed(first)
    }

    fn max(&self) -> usize {
        self.decoder.max_line()
    }

    fn feed(&mut self, chunk: Bytes) -> Result<(), RecordingError> {
        match &mut self.state {
            State::Detecting(_) | State::Failed(_) => Ok(()),
            State::Body => {
                self.decoder.push(chunk, Time(0));
                Ok(())
            }
            State::Blob(blob) => {
                blob.push(&chunk);
                while let Some(record) = blob.next_record() {
                    match record {
                        Ok(wire) => self.decoder.push_protobuf(wire, blob.records()),
                        Err(e) => {
                            let e = RecordingError::Blob(e);
                            self.state = State::Failed(e.clone());
                            return Err(e);
                        }
                    }
                }
                Ok(())
            }
            State::RawJson(raw) => {
                raw.push(chunk);
                while let Some(record) = raw.next_record() {
                    match record {
                        Ok(record) => self.decoder.push_record(record),
                        Err(e) => self.decoder.push_bad_line(e),
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(records: &[StatusResponse]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            let wire = r.encode_to_vec();
            out.extend_from_slice(&(wire.len() as u32).to_le_bytes());
            out.extend_from_slice(&wire);
        }
        out
    }

    fn vertex(started: i64, completed: Option<i64>) -> StatusResponse {
        StatusResponse {
            vertexes: vec![Vertex {
                digest: "sha256:a".into(),
                name: "[1/1] RUN x".into(),
                started: Some(Timestamp {
                    seconds: started,
                    nanos: 0,
                }),
                completed: completed.map(|seconds| Timestamp { seconds, nanos: 0 }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn rfc3339_times_parse_as_go_writes_them() {
        let t = |s| parse_rfc3339(s);
        assert_eq!(t("1970-01-01T00:00:01.0000005Z"), Some(1_000_000_500));
        assert_eq!(
            t("2024-02-29T23:59:59.000000001Z"),
            Some((19_782 * 86_400 + 86_399) * 1_000_000_000 + 1)
        );
        assert_eq!(t("1969-12-31T23:59:59.999999999Z"), Some(-1));
        assert_eq!(t("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(t("1970-01-01T00:00:00-00:30"), Some(1_800_000_000_000));
        for bad in [
            "",
            "1970-01-01",
            "1970-01-01T00:00:00",
            "1970-13-01T00:00:00Z",
            "1970-01-01T00:00:00.Z",
            "1970-01-01T00:00:00.1234567890Z",
            "x970-01-01T00:00:00Z",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn blob_records_come_out_in_any_chunking() {
        let records = [vertex(1, None), vertex(1, Some(2))];
        let bytes = blob(&records);
        for chunk in [1, 3, 7, bytes.len()] {
            let mut d = BlobDecoder::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                d.push(piece);
                while let Some(r) = d.next_record() {
                    got.push(StatusResponse::decode(r.unwrap()).unwrap());
                }
            }
            assert_eq!(d.finish(), Ok(()));
            assert_eq!(got, records);
        }
    }

    #[test]
    fn a_cut_blob_and_an_oversized_record_are_errors() {
        let first = blob(&[vertex(1, None)]).len() as u64;
        let bytes = blob(&[vertex(1, None), vertex(1, Some(2))]);
        let total = bytes.len() as u64;
        let mut d = BlobDecoder::new();
        d.push(&bytes[..bytes.len() - 3]);
        assert!(d.next_record().unwrap().is_ok());
        assert!(d.next_record().is_none());
        assert_eq!(
            d.finish(),
            Err(BlobError::Truncated {
                record: 1,
                offset: first,
                need: total - first,
                have: total - first - 3,
            })
        );
        let mut d = BlobDecoder::with_max_record(4);
        d.push([5, 0, 0, 0, 0x0a]);
        assert!(matches!(
            d.next_record(),
            Some(Err(BlobError::TooLarge { len: 5, max: 4, .. }))
        ));
        assert!(d.next_record().is_none());
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn detection_tells_the_three_formats_and_refuses_others() {
        assert_eq!(Format::detect(b""), Some(Format::BuildBody));
        assert_eq!(
            Format::detect(b"{\"id\":\"moby.buildkit.trace\",\"aux\":\"\"}"),
            Some(Format::BuildBody)
        );
        assert_eq!(
            Format::detect(b"{\"aux\":{\"ID\":\"sha256:0\"}}"),
            Some(Format::BuildBody)
        );
        assert_eq!(Format::detect(b"{\"vertexes\":[]}"), Some(Format::RawJson));
        assert_eq!(Format::detect(b"{\"logs\":[]}"), Some(Format::RawJson));
        assert_eq!(Format::detect(b"{}\n"), Some(Format::RawJson));
        assert_eq!(
            Format::detect(&blob(&[vertex(1, None)])),
            Some(Format::HistoryBlob)
        );
        assert_eq!(Format::detect(b"\x89PNG\r\n\x1a\n"), None);
        assert_eq!(Format::detect(&[0, 0, 0, 0, 0x0a]), None);
        assert_eq!(Format::detect(&[0xff, 0xff, 0xff, 0x7f, 0x0a]), None);
        assert_eq!(Format::detect(b"hello world"), None);
    }

    fn events(input: &[u8], chunk: usize) -> (Vec<BuildEvent>, Result<(), RecordingError>) {
        let mut d = RecordingDecoder::new();
        let mut out = Vec::new();
        let mut result = Ok(());
        for piece in input.chunks(chunk.max(1)) {
            if let Err(e) = d.push(Bytes::copy_from_slice(piece)) {
                result = Err(e);
                break;
            }
            out.extend(std::iter::from_fn(|| d.poll_event()));
        }
        let end = d.finish();
        if result.is_ok() {
            result = end;
        }
        out.extend(std::iter::from_fn(|| d.poll_event()));
        (out, result)
    }

    #[test]
    fn a_blob_replays_and_a_failed_step_is_the_failure() {
        let mut failed = vertex(1, Some(2));
        failed.vertexes[0].error = "process did not complete successfully".into();
        let bytes = blob(&[vertex(1, None), failed]);
        for chunk in [1, 5, 1000] {
            let (events, result) = events(&bytes, chunk);
            assert_eq!(result, Ok(()));
            let n = events.len();
            assert!(
                matches!(&events[n - 2], BuildEvent::Failed(f) if f.message.contains("did not complete"))
            );
            assert!(matches!(&events[n - 1], BuildEvent::Finished(s) if !s.succeeded()));
        }
    }

    #[test]
    fn unknown_input_is_one_error_and_no_event() {
        let (events, result) = events(b"\x00\x01binary nonsense", 4);
        assert_eq!(result, Err(RecordingError::UnknownFormat));
        assert!(events.is_empty());
    }

    #[test]
    fn a_truncated_blob_keeps_its_events_and_reports_the_cut() {
        let bytes = blob(&[vertex(1, None), vertex(1, Some(2))]);
        let (events, result) = events(&bytes[..bytes.len() - 1], 64);
        assert!(matches!(
            result,
            Err(RecordingError::Blob(BlobError::Truncated { record: 1, .. }))
        ));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, BuildEvent::Vertex(buildkit_events::Event::Started(_))))
        );
        assert!(matches!(events.last(), Some(BuildEvent::Finished(_))));
    }

    #[test]
    fn a_bad_rawjson_line_is_reported_and_the_rest_read() {
        let input = concat!(
            "{\"vertexes\":[{\"digest\":\"sha256:a\",\"name\":\"x\",\"started\":\"1970-01-01T00:00:01Z\"}]}\n",
            "{\"logs\":[{\"vertex\":\"sha256:a\",\"data\":\"not base64!\",\"timestamp\":\"1970-01-01T00:00:01Z\"}]}\n",
            "{\"vertexes\":[{\"digest\":\"sha256:a\",\"name\":\"x\",\"started\":\"1970-01-01T00:00:01Z\",\"completed\":\"1970-01-01T00:00:02Z\"}]}",
        );
        let (events, result) = events(input.as_bytes(), 10);
        assert_eq!(result, Ok(()));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, BuildEvent::BadLine(LineError::NotJson { line: 2, .. })))
        );
        assert!(
            matches!(events.last(), Some(BuildEvent::Finished(s)) if s.succeeded() && s.summary.counts.done == 1)
        );
    }

    proptest::proptest! {
        /// Any bytes, in any chunking, end in an error or a `Finished`, never a panic; a blob
        /// of records is told from its first bytes whatever follows.
        #[test]
        fn any_input_never_panics(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            chunk in 1..64usize,
            as_blob in proptest::prelude::any::<bool>(),
        ) {
            let data = if as_blob {
                let mut b = blob(&[vertex(1, None)]);
                b.extend_from_slice(&data);
                b
            } else {
                data
            };
            let (events, result) = events(&data, chunk);
            if as_blob {
                proptest::prop_assert!(events.iter().any(|e| matches!(e, BuildEvent::Vertex(_))));
            }
            match result {
                Err(RecordingError::UnknownFormat) => proptest::prop_assert!(events.is_empty()),
                _ => proptest::prop_assert!(matches!(events.last(), Some(BuildEvent::Finished(_)))),
            }
        }
    }

    #[test]
    fn a_body_replays_as_before() {
        let body =
            b"{\"stream\":\"Step 1/1 : FROM scratch\\n\"}\r\n{\"aux\":{\"ID\":\"sha256:0\"}}\r\n";
        let (events, result) = events(body, 3);
        assert_eq!(result, Ok(()));
        assert!(events.contains(&BuildEvent::ImageBuilt {
            id: "sha256:0".into()
        }));
    }
}
