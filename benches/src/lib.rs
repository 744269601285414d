//! Inputs and drivers shared by the criterion benchmarks (`benches/`) and the profiling example
//! (`examples/profile.rs`). See `BENCHMARKS.md` at the workspace root for the figures.
//!
//! Every input is built in memory from the recorded corpus (`tests/data/corpus`) or synthesized
//! here, so the benchmarks need nothing but the repository.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use base64::Engine as _;
use buildkit_events::{Event, Time};
use buildkit_progressui::{Mode, Options, Render as _, Renderer};
use buildkit_proto::{Message as _, StatusResponse, Timestamp, Vertex, VertexLog};
use bytes::Bytes;
use docker_build::decode::{BuildDecoder, BuildEvent, DecoderConfig};
use docker_build::ndjson::{LineSplitter, Message, parse_line};
pub use workspace_tests::body::{chunked, push_trace_line};
use workspace_tests::body::{finish, push_chunks};
use workspace_tests::corpus;

pub mod baseline;

/// Size of the body chunks fed to the decoders (a typical HTTP read).
pub const CHUNK: usize = 64 * 1024;

/// Size of one `VertexLog` chunk in the synthesized log streams: BuildKit forwards a process's
/// output as it reads it from the pipe, in reads of up to 32 KiB.
pub const LOG_CHUNK: usize = 32 * 1024;

/// The BuildKit recordings of the corpus (`tests/data/corpus`, those with trace records; the
/// classic-builder ones are left out), as `(daemon/name, body)`, in a stable order.
pub fn buildkit_bodies() -> Vec<(String, Vec<u8>)> {
    corpus::buildkit()
        .into_iter()
        .map(|r| (r.id(), r.bytes()))
        .collect()
}

/// Every recording of the corpus (`tests/data/corpus`, the classic-builder ones too), as
/// `(daemon/name, body)`, in a stable order.
pub fn all_bodies() -> Vec<(String, Vec<u8>)> {
    corpus::all()
        .into_iter()
        .map(|r| (r.id(), r.bytes()))
        .collect()
}

/// Parses a size such as `200M`, `1G`, `512K` or `1000` (bytes; decimal units, as `MB` in
/// BENCHMARKS.md).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let unit = match unit.to_ascii_uppercase().trim_end_matches('B') {
        "" => 1,
        "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// Every `Timestamp` of a record (vertices, statuses, logs), for [`shift_times`].
fn timestamps(record: &mut StatusResponse) -> impl Iterator<Item = &mut Timestamp> {
    let vertices = record
        .vertexes
        .iter_mut()
        .flat_map(|v| [&mut v.started, &mut v.completed]);
    let statuses = record
        .statuses
        .iter_mut()
        .flat_map(|s| [&mut s.timestamp, &mut s.started, &mut s.completed]);
    let logs = record.logs.iter_mut().map(|l| &mut l.timestamp);
    vertices.chain(statuses).chain(logs).flatten()
}

/// The trace records of a body, in order (lines that are not trace records are skipped).
fn trace_records(body: &[u8]) -> impl Iterator<Item = StatusResponse> + '_ {
    body.split(|&b| b == b'\n').filter_map(|line| {
        let aux = line
            .strip_prefix(workspace_tests::body::TRACE_PREFIX)?
            .split(|&b| b == b'"')
            .next()?;
        let wire = workspace_tests::body::decode_aux(aux).ok()?;
        StatusResponse::decode(wire).ok()
    })
}

/// The earliest and latest second any record of `bodies` carries.
pub fn time_range(bodies: &[(String, Vec<u8>)]) -> Option<(i64, i64)> {
    let mut range: Option<(i64, i64)> = None;
    for (_, body) in bodies {
        for mut record in trace_records(body) {
            for t in timestamps(&mut record) {
                let (lo, hi) = range.get_or_insert((t.seconds, t.seconds));
                *lo = (*lo).min(t.seconds);
                *hi = (*hi).max(t.seconds);
            }
        }
    }
    range
}

/// `body` with every time in its trace records moved `seconds` later (the records re-encoded;
/// other lines as they were), so that a stream of repeated bodies runs forward in time: every
/// vertex starts again in each repetition.
pub fn shift_times(body: &[u8], seconds: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 16);
    for line in body.split_inclusive(|&b| b == b'\n') {
        let record = line
            .starts_with(workspace_tests::body::TRACE_PREFIX)
            .then(|| trace_records(line).next())
            .flatten();
        match record {
            Some(mut record) => {
                for t in timestamps(&mut record) {
                    t.seconds += seconds;
                }
                push_trace_line(&mut out, &record);
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// The BuildKit recordings concatenated, over and over, until the stream holds at least
/// `target` bytes (whole bodies only). Digests repeat; the decoder takes that as restarts.
pub fn corpus_stream(target: usize) -> Bytes {
    let bodies = buildkit_bodies();
    let once: usize = bodies.iter().map(|(_, b)| b.len()).sum();
    let mut out = Vec::with_capacity(target + once);
    while out.len() < target {
        for (_, body) in &bodies {
            out.extend_from_slice(body);
        }
    }
    Bytes::from(out)
}

const DIGEST: &str = "sha256:5f2d1b0c4a9e8d7c6b5a49382716f5e4d3c2b1a09f8e7d6c5b4a392817161514";

fn ts(ms: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: 1_700_000_000 + ms / 1000,
        nanos: (ms % 1000) as i32 * 1_000_000,
    })
}

fn vertex(started: i64, completed: Option<i64>) -> StatusResponse {
    StatusResponse {
        vertexes: vec![Vertex {
            digest: DIGEST.into(),
            name: "[2/2] RUN ./spam-the-log".into(),
            started: ts(started),
            completed: completed.and_then(ts),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A body in which one vertex starts, prints `text` on stdout in [`LOG_CHUNK`]-sized
/// `VertexLog` chunks (one record each, cut without regard to lines), and completes.
pub fn log_stream(text: &[u8]) -> Bytes {
    let records = text.len() / LOG_CHUNK + 1;
    let mut out = Vec::with_capacity(text.len() * 4 / 3 + records * 200 + 1024);
    push_trace_line(&mut out, &vertex(0, None));
    for (i, chunk) in text.chunks(LOG_CHUNK).enumerate() {
        let record = StatusResponse {
            logs: vec![VertexLog {
                vertex: DIGEST.into(),
                timestamp: ts(1 + i as i64),
                stream: buildkit_proto::STREAM_STDOUT,
                msg: Bytes::copy_from_slice(chunk),
            }],
            ..Default::default()
        };
        push_trace_line(&mut out, &record);
    }
    push_trace_line(&mut out, &vertex(0, Some(records as i64 + 1)));
    Bytes::from(out)
}

/// Like [`log_stream`], but `vertices` vertices (digests differ in their last characters) run
/// at once and each prints all of `text`, their [`LOG_CHUNK`]-sized chunks taking turns (one
/// record per chunk).
pub fn parallel_log_stream(vertices: usize, text: &[u8]) -> Bytes {
    let digest = |v: usize| format!("{}{v:04}", &DIGEST[..DIGEST.len() - 4]);
    let snapshot = |v: usize, completed: Option<i64>| {
        let mut record = vertex(0, completed);
        record.vertexes[0].digest = digest(v);
        record.vertexes[0].name = format!("[{v}] RUN ./spam-the-log");
        record
    };
    let chunks = text.len() / LOG_CHUNK + 1;
    let mut out =
        Vec::with_capacity(vertices * (text.len() * 4 / 3 + chunks * 200) + vertices * 1024);
    for v in 0..vertices {
        push_trace_line(&mut out, &snapshot(v, None));
    }
    for (i, chunk) in text.chunks(LOG_CHUNK).enumerate() {
        for v in 0..vertices {
            let record = StatusResponse {
                logs: vec![VertexLog {
                    vertex: digest(v),
                    timestamp: ts(1 + i as i64),
                    stream: buildkit_proto::STREAM_STDOUT,
                    msg: Bytes::copy_from_slice(chunk),
                }],
                ..Default::default()
            };
            push_trace_line(&mut out, &record);
        }
    }
    for v in 0..vertices {
        push_trace_line(&mut out, &snapshot(v, Some(chunks as i64 + 1)));
    }
    Bytes::from(out)
}

/// `lines` short lines (`line 0000042: lorem ipsum dolor`, 31 bytes with the `\n`).
pub fn short_lines_text(lines: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(lines * 32);
    for i in 0..lines {
        use std::io::Write as _;
        writeln!(text, "line {i:07}: lorem ipsum dolor").expect("vec");
    }
    text
}

/// `lines` lines of `len` bytes each (plus `\n`), of printable filler.
pub fn long_lines_text(lines: usize, len: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(lines * (len + 1));
    for i in 0..lines {
        text.extend((0..len).map(|k| b'a' + ((k + i) % 26) as u8));
        text.push(b'\n');
    }
    text
}

/// What [`decode_only`] saw (returned so that nothing is optimised away).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecodeStats {
    /// Trace records decoded.
    pub records: u64,
    /// Vertex snapshots, statuses, logs and warnings in them.
    pub items: u64,
    /// Lines that were not trace records.
    pub other_lines: u64,
    /// Lines or records that did not decode.
    pub errors: u64,
}

/// The decode path without the tracker: NDJSON framing ([`LineSplitter`]), typing
/// ([`parse_line`]), base64 (STANDARD) and protobuf (`StatusResponse::decode` from `Bytes`).
pub fn decode_only(chunks: &[Bytes]) -> DecodeStats {
    let mut stats = DecodeStats::default();
    let mut lines = LineSplitter::new();
    let mut line_no = 0;
    let mut one = |line: Result<Bytes, usize>, stats: &mut DecodeStats| {
        line_no += 1;
        let Ok(line) = line else {
            stats.errors += 1;
            return;
        };
        if line.is_empty() {
            return;
        }
        match parse_line(line, line_no) {
            Ok(Message::Trace(aux)) => {
                match base64::engine::general_purpose::STANDARD.decode(&aux) {
                    Ok(wire) => match StatusResponse::decode(Bytes::from(wire)) {
                        Ok(r) => {
                            stats.records += 1;
                            stats.items += (r.vertexes.len()
                                + r.statuses.len()
                                + r.logs.len()
                                + r.warnings.len())
                                as u64;
                        }
                        Err(_) => stats.errors += 1,
                    },
                    Err(_) => stats.errors += 1,
                }
            }
            Ok(_) => stats.other_lines += 1,
            Err(_) => stats.errors += 1,
        }
    };
    for chunk in chunks {
        lines.push(chunk.clone());
        while let Some(line) = lines.next_line() {
            one(line, &mut stats);
        }
    }
    if let Some(line) = lines.finish() {
        one(line, &mut stats);
    }
    stats
}

/// What [`decode_and_track`] saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrackStats {
    /// All events, [`BuildEvent::Finished`] included.
    pub events: u64,
    /// [`Event::Log`] events (lines, or pieces of over-long lines).
    pub log_lines: u64,
    /// Bytes of log text in them.
    pub log_bytes: u64,
    /// [`BuildEvent::BadLine`] events.
    pub bad_lines: u64,
}

/// Counts the events instead of keeping them.
impl Extend<BuildEvent> for TrackStats {
    fn extend<I: IntoIterator<Item = BuildEvent>>(&mut self, events: I) {
        for event in events {
            self.events += 1;
            match event {
                BuildEvent::Vertex(Event::Log(l)) => {
                    self.log_lines += 1;
                    self.log_bytes += l.bytes.len() as u64;
                }
                BuildEvent::BadLine(_) => self.bad_lines += 1,
                _ => {}
            }
        }
    }
}

/// The whole decode path: [`BuildDecoder`] fed every chunk, all events polled after each, then
/// finished (the tests' decode loop, [`workspace_tests::body::push_chunks`]).
pub fn decode_and_track(chunks: &[Bytes]) -> TrackStats {
    let mut stats = TrackStats::default();
    let mut decoder = BuildDecoder::new();
    push_chunks(&mut decoder, chunks.iter().cloned(), &mut stats);
    finish(&mut decoder, &mut stats);
    stats
}

/// A writer that counts the bytes written to it and keeps none (the output sink of the
/// rendering benchmarks, behind a [`BufWriter`] as `bktrace` writes to standard output).
#[derive(Debug, Default)]
pub struct CountingSink {
    /// Bytes written.
    pub bytes: u64,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writer the rendering benchmarks write to: a [`BufWriter`] (default 8 KiB, as `bktrace`
/// uses) over a [`CountingSink`].
pub fn output_sink() -> BufWriter<CountingSink> {
    BufWriter::new(CountingSink::default())
}

/// What [`decode_and_render`] wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RenderStats {
    /// Events rendered, [`BuildEvent::Finished`] included.
    pub events: u64,
    /// Bytes of output.
    pub bytes: u64,
}

/// `bktrace replay --progress <mode>` without the file and the terminal: [`BuildDecoder`]
/// (asked for records when the mode wants them) fed every chunk, every event rendered by the
/// mode's renderer into `out`, then finished.
pub fn decode_and_render<W: Write>(chunks: &[Bytes], mode: Mode, out: W) -> (RenderStats, W) {
    let mut decoder = BuildDecoder::with_config(DecoderConfig {
        records: mode.wants_records(),
        boundaries: mode.wants_boundaries(),
        ..DecoderConfig::default()
    });
    let mut renderer = Renderer::new(mode, out, Options::default());
    let mut events = 0;
    let mut drain = |decoder: &mut BuildDecoder, renderer: &mut Renderer<W>| {
        while let Some(event) = decoder.poll_event() {
            events += 1;
            renderer.event(&event, Time(0)).expect("write");
        }
    };
    for chunk in chunks {
        decoder.push(chunk.clone(), Time(0));
        drain(&mut decoder, &mut renderer);
    }
    decoder.finish(Time(0));
    drain(&mut decoder, &mut renderer);
    (RenderStats { events, bytes: 0 }, renderer.into_inner())
}

/// [`decode_and_render`] into [`output_sink`], the bytes counted.
pub fn render_to_sink(chunks: &[Bytes], mode: Mode) -> RenderStats {
    let (mut stats, out) = decode_and_render(chunks, mode, output_sink());
    let sink = out.into_inner().expect("flush");
    stats.bytes = sink.bytes;
    stats
}

/// The seed-style [`baseline`] in `style` into [`output_sink`], the bytes counted.
pub fn baseline_to_sink(chunks: &[Bytes], style: baseline::Style) -> RenderStats {
    let (stats, out) = baseline::baseline(chunks, style, output_sink());
    let sink = out.into_inner().expect("flush");
    RenderStats {
        events: stats.started
            + stats.completed
            + stats.logs
            + stats.progress
            + stats.warnings
            + stats.other,
        bytes: sink.bytes,
    }
}

/// Where criterion writes its results, found the way criterion finds it: `$CRITERION_HOME`,
/// else `$CARGO_TARGET_DIR/criterion`, else `criterion` in the target directory holding the
/// running bench executable (`<target>/release/deps/<bench>`).
pub fn criterion_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(home.into());
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(target).join("criterion"));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.ancestors().nth(3)?.join("criterion"))
}

/// The mean time (ns) criterion estimated for `group/bench`, if it was measured after `since`.
pub fn criterion_mean_ns(group: &str, bench: &str, since: std::time::SystemTime) -> Option<f64> {
    let path = criterion_home()?
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// Prints how much slower `slow` was than `base` in `group` (both measured in this run), e.g.
/// `corpus_100MB: decode_track / decode_only = 1.18 (+18.0 %)`.
pub fn print_ratio(group: &str, base: &str, slow: &str, since: std::time::SystemTime) {
    match (
        criterion_mean_ns(group, base, since),
        criterion_mean_ns(group, slow, since),
    ) {
        (Some(b), Some(s)) => println!(
            "{group}: {slow} / {base} = {:.3} ({:+.1} %), means {:.1} ms / {:.1} ms",
            s / b,
            (s / b - 1.0) * 100.0,
            s / 1e6,
            b / 1e6,
        ),
        _ => println!("{group}: ratio {slow}/{base} not available (both were not measured)"),
    }
}
