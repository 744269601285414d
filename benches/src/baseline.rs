//! The "seed-style" baseline of issue 14, item 1: what a first, straightforward implementation
//! of `replay --progress json` looks like, to compare ours with on the same stream.
//!
//! - NDJSON framing: the chunks are appended to a carry buffer and cut at `\n` (memchr);
//!   a trace line is recognised by its prefix, other lines are parsed with `serde_json`.
//! - base64 (`STANDARD`) into a fresh `Vec` per record.
//! - A hand-rolled protowire decoder for the subset of `StatusResponse` that the output needs
//!   (vertexes: digest, name, cached, started, completed, error; statuses: id, vertex, current,
//!   total, timestamp, completed; logs: vertex, timestamp, stream, msg; warnings: vertex,
//!   level, short), borrowing from the decoded record (no copies).
//! - A small tracker: per digest, whether the vertex runs and the intervals seen (keyed by
//!   start time, stale snapshots ignored, a completion closing the open run); log chunks split
//!   into lines per (digest, stream), a partial line flushed when its vertex completes and at
//!   the end; statuses reported when they change.
//! - One serde_json object per event, times as RFC 3339 strings built with `format!`, log
//!   text through `String::from_utf8_lossy(..).into_owned()`, in one of two styles
//!   ([`Style`]): [`Style::Value`] builds the event's `serde_json::Value` (what `json!` builds)
//!   and writes it, the "one `serde_json` object per event" of the issue; [`Style::Derive`]
//!   writes a `#[derive(Serialize)]` struct with `serde_json::to_writer`, the leaner variant.
//!   Either way a `\n` follows. The schema is smaller than ours (no inputs, intervals, outcome
//!   names or progress actions).
//!
//! It is a fair reimplementation, not a strawman: the framing uses memchr as ours does, the
//! protobuf decoder copies nothing, and it emits the same number of vertex and log events as
//! our decoder on the corpus stream (`tests` below). It is not a product: no bounds on line
//! length or memory, no over-long-line splitting, no warnings' de-duplication.

use std::collections::HashMap;
use std::io::{self, Write};

use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;

/// The prefix of a trace line as the daemon writes it.
const TRACE_PREFIX: &[u8] = b"{\"id\":\"moby.buildkit.trace\",\"aux\":\"";

/// How the baseline writes an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Build the event's `serde_json::Value` (as `json!` does), then write it.
    Value,
    /// Write a `#[derive(Serialize)]` struct straight to the writer.
    Derive,
}

/// Events the baseline wrote, by kind (returned so that nothing is optimised away, and for the
/// comparison with our decoder).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BaselineStats {
    /// `vertex_started` objects.
    pub started: u64,
    /// `vertex_completed` objects.
    pub completed: u64,
    /// `vertex_log` objects.
    pub logs: u64,
    /// `vertex_progress` objects.
    pub progress: u64,
    /// `vertex_warning` objects.
    pub warnings: u64,
    /// `message` objects and other lines.
    pub other: u64,
    /// Lines or records that did not decode.
    pub errors: u64,
}

// ---------------------------------------------------------------------------------------------
// Protowire subset.

/// A protobuf timestamp, as nanoseconds since the epoch.
type Nanos = i128;

#[derive(Debug, Default)]
struct WireVertex<'a> {
    digest: &'a [u8],
    name: &'a [u8],
    cached: bool,
    started: Option<Nanos>,
    completed: Option<Nanos>,
    error: &'a [u8],
}

#[derive(Debug, Default)]
struct WireStatus<'a> {
    id: &'a [u8],
    vertex: &'a [u8],
    current: i64,
    total: i64,
    timestamp: Option<Nanos>,
    completed: Option<Nanos>,
}

#[derive(Debug, Default)]
struct WireLog<'a> {
    vertex: &'a [u8],
    timestamp: Option<Nanos>,
    stream: i64,
    msg: &'a [u8],
}

#[derive(Debug, Default)]
struct WireWarning<'a> {
    vertex: &'a [u8],
    level: i64,
    short: &'a [u8],
}

#[derive(Debug, Default)]
struct WireRecord<'a> {
    vertexes: Vec<WireVertex<'a>>,
    statuses: Vec<WireStatus<'a>>,
    logs: Vec<WireLog<'a>>,
    warnings: Vec<WireWarning<'a>>,
}

/// A field's value: a varint, or a length-delimited slice (fixed-width values are skipped).
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first()?;
            self.buf = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(value);
            }
        }
        None
    }

    /// The next field number and its value, `None` at the end, `Some(Err)` on bad input.
    fn field(&mut self) -> Option<Result<(u32, Value<'a>), ()>> {
        if self.buf.is_empty() {
            return None;
        }
        Some(self.field_inner().ok_or(()))
    }

    fn field_inner(&mut self) -> Option<(u32, Value<'a>)> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).ok()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.buf = self.buf.get(8..)?;
                Value::Other
            }
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                let bytes = self.buf.get(..len)?;
                self.buf = &self.buf[len..];
                Value::Bytes(bytes)
            }
            5 => {
                self.buf = self.buf.get(4..)?;
                Value::Other
            }
            _ => return None,
        };
        Some((number, value))
    }
}

/// Calls `f` for every field of `msg`; `None` if the message is malformed.
fn fields<'a>(msg: &'a [u8], mut f: impl FnMut(u32, Value<'a>) -> Option<()>) -> Option<()> {
    let mut r = Reader { buf: msg };
    while let Some(field) = r.field() {
        let (n, v) = field.ok()?;
        f(n, v)?;
    }
    Some(())
}

fn timestamp(msg: &[u8]) -> Option<Nanos> {
    let (mut seconds, mut nanos) = (0i64, 0i32);
    fields(msg, |n, v| {
        match (n, v) {
            (1, Value::Varint(x)) => seconds = x as i64,
            (2, Value::Varint(x)) => nanos = x as i32,
            _ => {}
        }
        Some(())
    })?;
    Some(i128::from(seconds) * 1_000_000_000 + i128::from(nanos))
}

fn decode_record(wire: &[u8]) -> Option<WireRecord<'_>> {
    let mut record = WireRecord::default();
    fields(wire, |n, v| {
        let Value::Bytes(msg) = v else {
            return Some(());
        };
        match n {
            1 => {
                let mut v = WireVertex::default();
                fields(msg, |n, x| {
                    match (n, x) {
                        (1, Value::Bytes(b)) => v.digest = b,
                        (3, Value::Bytes(b)) => v.name = b,
                        (4, Value::Varint(b)) => v.cached = b != 0,
                        (5, Value::Bytes(b)) => v.started = Some(timestamp(b)?),
                        (6, Value::Bytes(b)) => v.completed = Some(timestamp(b)?),
                        (7, Value::Bytes(b)) => v.error = b,
                        _ => {}
                    }
                    Some(())
                })?;
                record.vertexes.push(v);
            }
            2 => {
                let mut s = WireStatus::default();
                fields(msg, |n, x| {
                    match (n, x) {
                        (1, Value::Bytes(b)) => s.id = b,
                        (2, Value::Bytes(b)) => s.vertex = b,
                        (4, Value::Varint(b)) => s.current = b as i64,
                        (5, Value::Varint(b)) => s.total = b as i64,
                        (6, Value::Bytes(b)) => s.timestamp = Some(timestamp(b)?),
                        (8, Value::Bytes(b)) => s.completed = Some(timestamp(b)?),
                        _ => {}
                    }
                    Some(())
                })?;
                record.statuses.push(s);
            }
            3 => {
                let mut l = WireLog::default();
                fields(msg, |n, x| {
                    match (n, x) {
                        (1, Value::Bytes(b)) => l.vertex = b,
                        (2, Value::Bytes(b)) => l.timestamp = Some(timestamp(b)?),
                        (3, Value::Varint(b)) => l.stream = b as i64,
                        (4, Value::Bytes(b)) => l.msg = b,
                        _ => {}
                    }
                    Some(())
                })?;
                record.logs.push(l);
            }
            4 => {
                let mut w = WireWarning::default();
                fields(msg, |n, x| {
                    match (n, x) {
                        (1, Value::Bytes(b)) => w.vertex = b,
                        (2, Value::Varint(b)) => w.level = b as i64,
                        (3, Value::Bytes(b)) => w.short = b,
                        _ => {}
                    }
                    Some(())
                })?;
                record.warnings.push(w);
            }
            _ => {}
        }
        Some(())
    })?;
    Some(record)
}

// ---------------------------------------------------------------------------------------------
// Output: one serde_json object per event.

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Out<'a> {
    VertexStarted {
        digest: &'a str,
        name: &'a str,
        time: String,
    },
    VertexCompleted {
        digest: &'a str,
        name: &'a str,
        cached: bool,
        error: Option<&'a str>,
        duration_s: f64,
        time: String,
    },
    VertexLog {
        digest: &'a str,
        stream: i64,
        line: String,
        time: String,
    },
    VertexProgress {
        digest: &'a str,
        id: &'a str,
        current: i64,
        total: i64,
        done: bool,
        time: String,
    },
    VertexWarning {
        digest: &'a str,
        level: i64,
        short: String,
    },
    Message {
        text: &'a str,
    },
}

/// RFC 3339 in UTC with the nanoseconds, built with `format!`.
fn rfc3339(t: Nanos) -> String {
    let secs = t.div_euclid(1_000_000_000);
    let nanos = t.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// Tracking.

#[derive(Default)]
struct VertexState {
    name: String,
    /// Start of the open run, if the vertex runs.
    running: Option<Nanos>,
    /// Start of the last run announced.
    last_start: Option<Nanos>,
    /// Every interval seen: start → end (None while open).
    intervals: HashMap<Nanos, Option<Nanos>>,
    /// Sum of the completed runs.
    duration: Nanos,
}

/// A completion, written after the record's statuses, logs and warnings.
struct Completion {
    digest: String,
    name: String,
    end: Nanos,
    cached: bool,
    error: String,
    duration: Nanos,
}

struct PartialLine {
    bytes: Vec<u8>,
    time: Nanos,
}

/// The baseline renderer: body chunks in, JSON lines out.
pub struct Baseline<W: Write> {
    out: W,
    style: Style,
    carry: Vec<u8>,
    vertices: HashMap<String, VertexState>,
    partial: HashMap<(String, i64), PartialLine>,
    statuses: HashMap<(String, String), (i64, i64, bool)>,
    stats: BaselineStats,
}

impl<W: Write> std::fmt::Debug for Baseline<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baseline")
            .field("stats", &self.stats)
            .finish()
    }
}

impl<W: Write> Baseline<W> {
    /// A baseline writing to `out` in `style`.
    pub fn new(out: W, style: Style) -> Self {
        Self {
            out,
            style,
            carry: Vec::new(),
            vertices: HashMap::new(),
            partial: HashMap::new(),
            statuses: HashMap::new(),
            stats: BaselineStats::default(),
        }
    }

    fn write(&mut self, line: &Out<'_>) -> io::Result<()> {
        match self.style {
            Style::Value => {
                let value = serde_json::to_value(line)?;
                serde_json::to_writer(&mut self.out, &value)?;
            }
            Style::Derive => serde_json::to_writer(&mut self.out, line)?,
        }
        self.out.write_all(b"\n")
    }

    /// Feeds one chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.carry.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &self.carry[start..]) {
            let end = start + i;
            let line = std::mem::take(&mut self.carry);
            let mut l = &line[start..end];
            if let Some(stripped) = l.strip_suffix(b"\r") {
                l = stripped;
            }
            let result = self.line(l);
            self.carry = line;
            result?;
            start = end + 1;
        }
        self.carry.drain(..start);
        Ok(())
    }

    /// Ends the body: the last line, partial lines, running vertices; flushes.
    pub fn finish(mut self) -> io::Result<(BaselineStats, W)> {
        let rest = std::mem::take(&mut self.carry);
        if !rest.is_empty() {
            self.line(&rest)?;
        }
        let mut keys: Vec<(String, i64)> = self.partial.keys().cloned().collect();
        keys.sort();
        for key in keys {
            self.flush_partial(&key.0, key.1)?;
        }
        let mut running: Vec<(String, Nanos)> = self
            .vertices
            .iter()
            .filter_map(|(d, v)| Some((d.clone(), v.running?)))
            .collect();
        running.sort();
        for (digest, start) in running {
            let v = self.vertices.get_mut(&digest).expect("known");
            v.running = None;
            let name = v.name.clone();
            self.stats.completed += 1;
            self.write(&Out::VertexCompleted {
                digest: &digest,
                name: &name,
                cached: false,
                error: Some("interrupted"),
                duration_s: 0.0,
                time: rfc3339(start),
            })?;
        }
        self.out.flush()?;
        Ok((self.stats, self.out))
    }

    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        if line.is_empty() {
            return Ok(());
        }
        let Some(aux) = line.strip_prefix(TRACE_PREFIX) else {
            return self.other_line(line);
        };
        let Some(end) = memchr::memchr(b'"', aux) else {
            self.stats.errors += 1;
            return Ok(());
        };
        let Ok(wire) = base64::engine::general_purpose::STANDARD.decode(&aux[..end]) else {
            self.stats.errors += 1;
            return Ok(());
        };
        match decode_record(&wire) {
            Some(record) => self.record(&record),
            None => {
                self.stats.errors += 1;
                Ok(())
            }
        }
    }

    fn other_line(&mut self, line: &[u8]) -> io::Result<()> {
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(v) => {
                self.stats.other += 1;
                if let Some(text) = v.get("stream").and_then(|s| s.as_str()) {
                    self.write(&Out::Message { text })?;
                }
            }
            Err(_) => self.stats.errors += 1,
        }
        Ok(())
    }

    fn record(&mut self, record: &WireRecord<'_>) -> io::Result<()> {
        // As our tracker: vertices, then statuses, logs and warnings, then the completions.
        let mut completions = Vec::new();
        for v in &record.vertexes {
            self.vertex(v, &mut completions)?;
        }
        for s in &record.statuses {
            let digest = text(s.vertex);
            let key = (digest.to_owned(), text(s.id).to_owned());
            let value = (s.current, s.total, s.completed.is_some());
            if self.statuses.get(&key) != Some(&value) {
                self.statuses.insert(key, value);
                self.stats.progress += 1;
                self.write(&Out::VertexProgress {
                    digest,
                    id: text(s.id),
                    current: s.current,
                    total: s.total,
                    done: s.completed.is_some(),
                    time: rfc3339(s.timestamp.unwrap_or(0)),
                })?;
            }
        }
        for l in &record.logs {
            self.log(l)?;
        }
        for w in &record.warnings {
            self.stats.warnings += 1;
            self.write(&Out::VertexWarning {
                digest: text(w.vertex),
                level: w.level,
                short: String::from_utf8_lossy(w.short).into_owned(),
            })?;
        }
        for c in completions {
            self.complete(c)?;
        }
        Ok(())
    }

    fn vertex(&mut self, v: &WireVertex<'_>, completions: &mut Vec<Completion>) -> io::Result<()> {
        let digest = text(v.digest);
        let state = self.vertices.entry(digest.to_owned()).or_default();
        let Some(started) = v.started else {
            if state.name.is_empty() {
                state.name = text(v.name).to_owned();
            }
            return Ok(());
        };
        let known = state.intervals.get(&started).copied();
        let Some(completed) = v.completed else {
            if known.is_some() || state.running.is_some() {
                // Stale, or already running.
                state.intervals.entry(started).or_insert(None);
                return Ok(());
            }
            state.intervals.insert(started, None);
            state.name = text(v.name).to_owned();
            state.running = Some(started);
            state.last_start = Some(started);
            let name = state.name.clone();
            return self.started(digest, &name, started);
        };
        state.intervals.insert(started, Some(completed));
        let run = match state.running {
            // A completion closes the run that began at or before it.
            Some(run) if run <= started || known.is_some() => run,
            Some(_) => return Ok(()),
            None => {
                if matches!(known, Some(Some(_))) || state.last_start.is_some_and(|l| started <= l)
                {
                    // The same closed interval again, or a late one: no events.
                    return Ok(());
                }
                state.name = text(v.name).to_owned();
                state.last_start = Some(started);
                let name = state.name.clone();
                self.started(digest, &name, started)?;
                started
            }
        };
        let state = self.vertices.get_mut(digest).expect("known");
        state.running = None;
        state.duration += completed - run;
        completions.push(Completion {
            digest: digest.to_owned(),
            name: state.name.clone(),
            end: completed,
            cached: v.cached,
            error: text(v.error).to_owned(),
            duration: state.duration,
        });
        // Closed intervals seen earlier that begin after this run's end are runs of their
        // own, not announced yet when they began before the run did: announce them now.
        let mut later: Vec<(Nanos, Nanos)> = state
            .intervals
            .iter()
            .filter_map(|(&s, &e)| Some((s, e?)))
            .filter(|&(s, _)| s > completed && state.last_start.is_none_or(|l| s > l))
            .collect();
        later.sort_unstable();
        let mut merged: Vec<(Nanos, Nanos)> = Vec::new();
        for (s, e) in later {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        for (s, e) in merged {
            let state = self.vertices.get_mut(digest).expect("known");
            state.last_start = Some(s);
            state.duration += e - s;
            let (name, duration) = (state.name.clone(), state.duration);
            self.started(digest, &name, s)?;
            completions.push(Completion {
                digest: digest.to_owned(),
                name,
                end: e,
                cached: v.cached,
                error: String::new(),
                duration,
            });
        }
        Ok(())
    }

    fn started(&mut self, digest: &str, name: &str, started: Nanos) -> io::Result<()> {
        self.stats.started += 1;
        self.write(&Out::VertexStarted {
            digest,
            name,
            time: rfc3339(started),
        })
    }

    fn complete(&mut self, c: Completion) -> io::Result<()> {
        let streams: Vec<i64> = self
            .partial
            .keys()
            .filter(|k| k.0 == c.digest)
            .map(|k| k.1)
            .collect();
        for stream in streams {
            self.flush_partial(&c.digest, stream)?;
        }
        self.stats.completed += 1;
        self.write(&Out::VertexCompleted {
            digest: &c.digest,
            name: &c.name,
            cached: c.cached,
            error: Some(c.error.as_str()).filter(|e| !e.is_empty()),
            duration_s: c.duration as f64 / 1e9,
            time: rfc3339(c.end),
        })
    }

    fn flush_partial(&mut self, digest: &str, stream: i64) -> io::Result<()> {
        let partial = self.partial.remove(&(digest.to_owned(), stream));
        if let Some(p) = partial.filter(|p| !p.bytes.is_empty()) {
            self.log_line(digest, stream, &p.bytes, p.time)?;
        }
        Ok(())
    }

    fn log(&mut self, l: &WireLog<'_>) -> io::Result<()> {
        let digest = text(l.vertex);
        let time = l.timestamp.unwrap_or(0);
        let mut msg = l.msg;
        while let Some(i) = memchr::memchr(b'\n', msg) {
            let (line, rest) = (&msg[..i], &msg[i + 1..]);
            match self.partial.remove(&(digest.to_owned(), l.stream)) {
                Some(mut p) => {
                    p.bytes.extend_from_slice(line);
                    self.log_line(digest, l.stream, &p.bytes, p.time)?;
                }
                None => self.log_line(digest, l.stream, line, time)?,
            }
            msg = rest;
        }
        if !msg.is_empty() {
            self.partial
                .entry((digest.to_owned(), l.stream))
                .or_insert_with(|| PartialLine {
                    bytes: Vec::new(),
                    time,
                })
                .bytes
                .extend_from_slice(msg);
        }
        Ok(())
    }

    fn log_line(&mut self, digest: &str, stream: i64, line: &[u8], time: Nanos) -> io::Result<()> {
        self.stats.logs += 1;
        self.write(&Out::VertexLog {
            digest,
            stream,
            line: String::from_utf8_lossy(line).into_owned(),
            time: rfc3339(time),
        })
    }
}

/// The baseline over `chunks`, written to `out` in `style`.
pub fn baseline<W: Write>(chunks: &[Bytes], style: Style, out: W) -> (BaselineStats, W) {
    let mut b = Baseline::new(out, style);
    for chunk in chunks {
        b.push(chunk).expect("write");
    }
    b.finish().expect("write")
}
