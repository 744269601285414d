//! Faults in the build response and its connection: each ends in a clear error or a reported
//! bad line, never a panic, and every event decoded before the fault is delivered.
//!
//! The decoder tests cut, corrupt and stretch real corpus recordings or synthetic BuildKit
//! records; the last test cuts a live build's connection with a proxy it controls (it skips
//! without a daemon, and fails without one under `CI=true`).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use buildkit_events::{Event, LineEnd, Outcome, RecordError, Stream, Time};
use buildkit_proto::{StatusResponse, Timestamp, Vertex, VertexLog};
use bytes::Bytes;
use docker_build::connection::{Daemon, DockerHost};
use docker_build::decode::{BuildDecoder, BuildEvent};
use docker_build::ndjson::{DEFAULT_MAX_LINE, LineError, LineSplitter};
use docker_build::{BuildOptions, BuildStreamError, build};
use docker_context::Context;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::watch;
use workspace_tests::body::{TRACE_PREFIX, drain, finish, push_chunked, trace_line};
use workspace_tests::corpus::{self, Recording, get as recording};
use workspace_tests::daemon::{base_image, daemon, tar_context, unique_marker};
use workspace_tests::events::summary;

// ---------------------------------------------------------------------------------------------
// Helpers

/// The lines of a body, each with its terminator (`\r\n` in every recording).
fn split_lines(body: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        lines.push(&rest[..end]);
        rest = &rest[end..];
    }
    lines
}

/// The uncut decoding of a body, fed line by line: every event, and how many events had come
/// out after each number of whole lines (`after[k]`: after lines `0..k`).
struct Uncut {
    events: Vec<BuildEvent>,
    after: Vec<usize>,
}

fn decode_uncut(lines: &[&[u8]]) -> Uncut {
    let mut decoder = BuildDecoder::new();
    let mut events = Vec::new();
    let mut after = vec![0];
    for line in lines {
        decoder.push(Bytes::copy_from_slice(line), Time(0));
        drain(&mut decoder, &mut events);
        after.push(events.len());
    }
    finish(&mut decoder, &mut events);
    Uncut { events, after }
}

fn count(events: &[BuildEvent], pred: impl Fn(&BuildEvent) -> bool) -> usize {
    events.iter().filter(|e| pred(e)).count()
}

fn is_bad_line(e: &BuildEvent) -> bool {
    matches!(e, BuildEvent::BadLine(_))
}

fn is_finished(e: &BuildEvent) -> bool {
    matches!(e, BuildEvent::Finished(_))
}

/// A timestamp `ms` milliseconds after an arbitrary epoch in 2023.
fn ts(ms: i64) -> Option<Timestamp> {
    let ms = 1_700_000_000_000 + ms;
    Some(Timestamp {
        seconds: ms / 1000,
        nanos: (ms % 1000) as i32 * 1_000_000,
    })
}

fn log(digest: &str, stream: i64, msg: &str) -> VertexLog {
    VertexLog {
        vertex: digest.into(),
        timestamp: ts(1),
        stream,
        msg: Bytes::copy_from_slice(msg.as_bytes()),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A body cut mid-line / mid-base64

/// Where inside line `k` a body is cut: 0 is the line boundary, `n` (the line's length without
/// its `\r\n`) and `n + 1` leave the whole JSON object, anything between leaves a fragment.
fn cut_offsets(line: &[u8]) -> Vec<usize> {
    let n = line.len() - 2;
    let mut offsets = vec![
        0,
        1,
        20,
        TRACE_PREFIX.len() + 1,
        n / 2,
        n - 2,
        n - 1,
        n,
        n + 1,
    ];
    offsets.retain(|&o| o < line.len());
    offsets.sort_unstable();
    offsets.dedup();
    offsets
}

/// Decodes `body[..cut]` where the cut falls `offset` bytes into line `k`, and checks it against
/// the uncut decoding.
fn check_cut(rec: &Recording, lines: &[&[u8]], uncut: &Uncut, k: usize, offset: usize) {
    let start: usize = lines[..k].iter().map(|l| l.len()).sum();
    let cut = start + offset;
    let body: Vec<u8> = lines.concat();
    let what = format!(
        "{} cut at byte {cut} (line {}, offset {offset})",
        rec.id(),
        k + 1
    );

    let mut decoder = BuildDecoder::new();
    let mut events = Vec::new();
    // An odd chunk size, so that chunk ends fall anywhere relative to the lines.
    push_chunked(&mut decoder, &body[..cut], 4093, &mut events);
    let running: Vec<String> = decoder
        .running()
        .into_iter()
        .map(|(d, _)| d.to_string())
        .collect();
    finish(&mut decoder, &mut events);

    let (whole_lines, bad_expected) = match lines.get(k) {
        None => (k, false),
        Some(_) if offset == 0 => (k, false),
        // The object is complete, only (part of) its `\r\n` is missing: the line decodes.
        Some(line) if offset >= line.len() - 2 => (k + 1, false),
        Some(_) => (k, true),
    };
    let intact = uncut.after[whole_lines];
    assert!(
        events.len() > intact,
        "{what}: {} events, fewer than the {intact} of the intact prefix",
        events.len()
    );
    assert!(
        events[..intact] == uncut.events[..intact],
        "{what}: the events of the intact prefix differ from the uncut stream's"
    );

    let mut rest = &events[intact..];
    let bad = count(&events, is_bad_line);
    if bad_expected {
        assert_eq!(bad, 1, "{what}: the fragment is reported exactly once");
        match &rest[0] {
            BuildEvent::BadLine(LineError::NotJson { line, .. }) => {
                assert_eq!(*line, k as u64 + 1, "{what}: the fragment's line number")
            }
            other => panic!("{what}: expected the fragment's BadLine, got {other:?}"),
        }
        rest = &rest[1..];
    } else {
        assert_eq!(bad, 0, "{what}: no fragment, no bad line");
    }

    // What `finish` adds: the vertices still running interrupted, their partial lines flushed,
    // the failure if the prefix held one, and `Finished` last.
    assert_eq!(count(&events, is_finished), 1, "{what}");
    summary(&events);
    let mut interrupted = Vec::new();
    for e in &rest[..rest.len() - 1] {
        match e {
            BuildEvent::Vertex(Event::Completed(c)) if c.outcome == Outcome::Interrupted => {
                interrupted.push(c.digest.to_string())
            }
            BuildEvent::Vertex(Event::Log(l)) if l.end == LineEnd::Unterminated => {}
            BuildEvent::Failed(_) => {}
            other => panic!("{what}: unexpected event after the intact prefix: {other:?}"),
        }
    }
    // With the whole body the cut is no fault: exactly the uncut events.
    if cut == body.len() {
        assert!(
            events == uncut.events,
            "{what}: the whole body decodes as uncut"
        );
    }
    if whole_lines == k {
        assert_eq!(
            interrupted, running,
            "{what}: the vertices running at the cut are the ones interrupted"
        );
    }
}

#[test]
fn a_body_cut_mid_line_or_mid_base64_keeps_every_earlier_event_and_reports_the_fragment_once() {
    let mut cuts = 0;
    for rec in corpus::buildkit() {
        let body = rec.bytes();
        let lines = split_lines(&body);
        assert!(
            lines.iter().all(|l| l.ends_with(b"\r\n")),
            "{}: every recorded line ends in \\r\\n",
            rec.id()
        );
        let uncut = decode_uncut(&lines);
        // Nothing, the first line, a quarter, the middle, three quarters, the last line (the
        // image id or the error in most recordings), and the whole body.
        let n = lines.len();
        let mut picks = vec![0, n / 4, n / 2, 3 * n / 4, n - 1];
        picks.sort_unstable();
        picks.dedup();
        for k in picks {
            for offset in cut_offsets(lines[k]) {
                check_cut(&rec, &lines, &uncut, k, offset);
                cuts += 1;
            }
        }
        check_cut(&rec, &lines, &uncut, n, 0);
        cuts += 1;
    }
    assert!(cuts > 300, "{cuts} cuts checked");
}

#[test]
fn a_body_cut_mid_base64_while_a_step_runs_keeps_its_output_and_interrupts_it() {
    // The client-cancel build's RUN prints `tick-1`, `tick-2`, … while it runs: cut inside the
    // base64 of the record right after the one carrying `tick-1`.
    for rec in corpus::all()
        .into_iter()
        .filter(|r| r.name == "client-cancel")
    {
        let body = rec.bytes();
        let lines = split_lines(&body);
        let uncut = decode_uncut(&lines);
        let ticked = (0..lines.len())
            .find(|&k| {
                uncut.events[uncut.after[k]..uncut.after[k + 1]]
                    .iter()
                    .any(|e| matches!(e, BuildEvent::Vertex(Event::Log(l)) if l.text() == "tick-1"))
            })
            .unwrap_or_else(|| panic!("{}: a record carries tick-1", rec.id()));
        let k = ticked + 1;
        let line = lines[k];
        assert!(line.starts_with(TRACE_PREFIX), "{}", rec.id());
        let offset = TRACE_PREFIX.len() + (line.len() - 2 - TRACE_PREFIX.len()) / 2;
        check_cut(&rec, &lines, &uncut, k, offset);

        let start: usize = lines[..k].iter().map(|l| l.len()).sum();
        let mut decoder = BuildDecoder::new();
        let mut events = Vec::new();
        push_chunked(&mut decoder, &body[..start + offset], 1 << 20, &mut events);
        finish(&mut decoder, &mut events);
        let logs: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                BuildEvent::Vertex(Event::Log(l)) => Some(l.text().into_owned()),
                _ => None,
            })
            .collect();
        assert!(logs.iter().any(|l| l == "tick-1"), "{}: {logs:?}", rec.id());
        let interrupted: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                BuildEvent::Vertex(Event::Completed(c)) if c.outcome == Outcome::Interrupted => {
                    Some(c.name.as_str())
                }
                _ => None,
            })
            .collect();
        assert!(
            interrupted.iter().any(|n| n.contains("RUN for i in")),
            "{}: the RUN is interrupted: {interrupted:?}",
            rec.id()
        );
        let s = summary(&events);
        assert!(s.failure.is_none() && s.image_id.is_none(), "{}", rec.id());
        assert_eq!(count(&events, is_bad_line), 1, "{}", rec.id());
    }
}

// ---------------------------------------------------------------------------------------------
// 2. A single 100 MB line

/// Length of the giant line, without its `\r\n`.
const HUGE_LINE: usize = 100_000_000;
/// The chunk size of the body as it arrives.
const CHUNK: usize = 64 * 1024;

/// Feeds one line of [`HUGE_LINE`] bytes — `head`, then `fill` bytes, then `tail` — in chunks
/// of at most [`CHUNK`] bytes to `push`. The middle chunks are clones of one shared buffer,
/// which must be unique again once `push` returns: the receiver keeps no reference to the
/// chunks of the giant line (it neither queues nor slices them).
fn feed_huge_line(head: &[u8], fill: u8, tail: &[u8], mut push: impl FnMut(Bytes)) {
    assert!(head.len() + tail.len() < CHUNK);
    let block = Bytes::from(vec![fill; CHUNK]);
    let mut first = head.to_vec();
    first.resize(CHUNK, fill);
    push(Bytes::from(first));
    let mut sent = CHUNK;
    let fill_end = HUGE_LINE - tail.len();
    while sent + CHUNK <= fill_end {
        push(block.clone());
        sent += CHUNK;
        assert!(
            block.is_unique(),
            "a chunk is still held after {sent} bytes of the giant line"
        );
    }
    let mut last = vec![fill; fill_end - sent];
    last.extend_from_slice(tail);
    for piece in last.chunks(CHUNK) {
        push(Bytes::copy_from_slice(piece));
    }
}

fn assert_too_long(event: &BuildEvent, want_line: u64, with_terminator: bool) {
    match event {
        BuildEvent::BadLine(LineError::TooLong { line, len, max }) => {
            assert_eq!(*line, want_line, "the line number of the giant line");
            assert_eq!(*max, DEFAULT_MAX_LINE);
            // The whole line was counted while it was skipped (with its `\r\n` if it had one).
            let most = HUGE_LINE + if with_terminator { 2 } else { 0 };
            assert!(
                (HUGE_LINE..=most).contains(len),
                "len {len}: the giant line was seen to its end"
            );
        }
        other => panic!("expected BadLine(TooLong) for line {want_line}, got {other:?}"),
    }
}

#[test]
fn a_100_mb_trace_line_is_dropped_unbuffered_and_the_lines_after_it_still_decode() {
    let rec = recording("docker-26.1", "basic-nocache");
    let body = rec.bytes();
    let lines = split_lines(&body);
    let uncut = decode_uncut(&lines);
    let k = lines.len() / 2;
    assert!(uncut.after[k] > 0 && uncut.after[k] < uncut.after[lines.len()]);

    let mut decoder = BuildDecoder::new();
    let mut events = Vec::new();
    push_chunked(&mut decoder, &lines[..k].concat(), CHUNK, &mut events);
    let before = events.len();
    feed_huge_line(TRACE_PREFIX, b'A', b"\"}", |chunk| {
        decoder.push(chunk, Time(0));
        drain(&mut decoder, &mut events);
        assert_eq!(
            events.len(),
            before,
            "no event while the giant line arrives"
        );
    });
    // The giant line's `\r\n`, then the rest of the recording.
    decoder.push(Bytes::from_static(b"\r\n"), Time(0));
    drain(&mut decoder, &mut events);
    assert_eq!(
        events.len(),
        before + 1,
        "the giant line is reported when it ends"
    );
    assert_too_long(&events[before], k as u64 + 1, true);
    push_chunked(&mut decoder, &lines[k..].concat(), CHUNK, &mut events);
    finish(&mut decoder, &mut events);

    let mut without = events.clone();
    without.remove(before);
    assert!(
        without == uncut.events,
        "apart from the BadLine, the events are those of the recording without the giant line"
    );
    assert_eq!(count(&events, is_bad_line), 1);
    assert!(
        summary(&events).image_id.is_some(),
        "the image id after it arrived"
    );
}

#[test]
fn a_100_mb_garbage_line_cut_by_the_end_of_the_body_is_reported_at_finish() {
    let rec = recording("docker-20.10", "run-fails");
    let body = rec.bytes();
    let lines = split_lines(&body);
    let uncut = decode_uncut(&lines);
    let mut decoder = BuildDecoder::new();
    let mut events = Vec::new();
    push_chunked(&mut decoder, &body, CHUNK, &mut events);
    let before = events.len();
    assert_eq!(before, uncut.after[lines.len()]);
    feed_huge_line(b"garbage \x00\xff", b'#', b" no newline", |chunk| {
        decoder.push(chunk, Time(0));
        drain(&mut decoder, &mut events);
    });
    assert_eq!(events.len(), before, "the giant line has not ended yet");
    finish(&mut decoder, &mut events);
    assert_too_long(&events[before], lines.len() as u64 + 1, false);
    let mut without = events.clone();
    without.remove(before);
    assert!(without == uncut.events, "the build's own events are intact");
    let failure = summary(&events).failure.clone().expect("the build failed");
    assert!(
        failure.message.contains("exit code: 3"),
        "{}",
        failure.message
    );
}

#[test]
fn the_splitter_never_holds_more_than_its_bound_of_a_100_mb_line() {
    let mut splitter = LineSplitter::new();
    let bound = splitter.max_line() + 2;
    let mut lines = Vec::new();
    let mut pushed = 0usize;
    let mut most = 0usize;
    let mut take = |s: &mut LineSplitter, chunk: Bytes, pushed: &mut usize| {
        *pushed += chunk.len();
        s.push(chunk);
        while let Some(line) = s.next_line() {
            lines.push(line);
        }
        most = most.max(s.buffered());
        assert!(s.buffered() <= bound, "{} bytes buffered", s.buffered());
    };
    feed_huge_line(TRACE_PREFIX, b'A', b"\"}", |chunk| {
        take(&mut splitter, chunk, &mut pushed);
        if pushed > bound {
            assert_eq!(
                splitter.buffered(),
                0,
                "past the bound ({pushed} bytes pushed) the line is dropped, not kept"
            );
        }
    });
    take(
        &mut splitter,
        Bytes::from_static(b"\r\nnext line\r\n"),
        &mut pushed,
    );
    assert!(splitter.finish().is_none());
    assert_eq!(lines.len(), 2, "the giant line and the next one");
    let len = *lines[0].as_ref().expect_err("the giant line is an error");
    assert!((HUGE_LINE..=HUGE_LINE + 2).contains(&len), "len {len}");
    assert_eq!(lines[1].as_deref().ok(), Some(&b"next line"[..]));
    assert!(
        most > DEFAULT_MAX_LINE / 2,
        "it buffered up to its bound first"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Ten thousand vertices

#[test]
// `usize::is_multiple_of` is newer than the workspace's rust-version (1.85).
#[allow(clippy::manual_is_multiple_of)]
fn ten_thousand_vertices_all_start_and_complete_and_are_counted() {
    const N: usize = 10_000;
    const BATCH: usize = 100;
    let digest = |i: usize| format!("sha256:{i:064x}");
    let name = |i: usize| format!("[{i}/{N}] RUN step-{i}");
    let cached = |i: usize| i % 10 == 0;
    let logged = |i: usize| i % 7 == 0;
    let vertex = |i: usize, completed: bool| Vertex {
        digest: digest(i),
        name: name(i),
        inputs: if i > 0 { vec![digest(i - 1)] } else { vec![] },
        cached: cached(i),
        started: ts(i as i64 * 10),
        completed: if completed {
            ts(i as i64 * 10 + 5)
        } else {
            None
        },
        ..Default::default()
    };

    let mut body = Vec::new();
    for batch in (0..N).step_by(BATCH) {
        let ids = batch..batch + BATCH;
        // A whole batch starts at once (the cached ones only appear completed), with some logs.
        body.extend(trace_line(&StatusResponse {
            vertexes: ids
                .clone()
                .filter(|&i| !cached(i))
                .map(|i| vertex(i, false))
                .collect(),
            logs: ids
                .clone()
                .filter(|&i| logged(i) && !cached(i))
                .map(|i| log(&digest(i), 1, &format!("out-{i}\nlast-{i}\n")))
                .collect(),
            ..Default::default()
        }));
        body.extend(trace_line(&StatusResponse {
            vertexes: ids.map(|i| vertex(i, true)).collect(),
            ..Default::default()
        }));
    }
    let mut decoder = BuildDecoder::new();
    let mut events = Vec::new();
    push_chunked(&mut decoder, &body, CHUNK, &mut events);
    assert!(decoder.running().is_empty(), "every vertex completed");
    finish(&mut decoder, &mut events);

    assert_eq!(count(&events, is_bad_line), 0);
    let mut started = HashMap::new();
    let mut started_order = Vec::new();
    let mut completed = HashMap::new();
    let mut logs: HashMap<String, Vec<String>> = HashMap::new();
    for (pos, e) in events.iter().enumerate() {
        match e {
            BuildEvent::Vertex(Event::Started(s)) => {
                assert!(
                    started.insert(s.digest.to_string(), pos).is_none(),
                    "{} twice",
                    s.digest
                );
                assert_eq!(s.interval, 0);
                started_order.push(s.digest.to_string());
            }
            BuildEvent::Vertex(Event::Completed(c)) => {
                assert!(
                    completed
                        .insert(c.digest.to_string(), (pos, c.clone()))
                        .is_none()
                );
            }
            BuildEvent::Vertex(Event::Log(l)) => logs
                .entry(l.digest.to_string())
                .or_default()
                .push(l.text().into_owned()),
            BuildEvent::Finished(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(started.len(), N, "every vertex started");
    assert_eq!(completed.len(), N, "every vertex completed");
    for i in 0..N {
        let d = digest(i);
        let (pos, c) = &completed[&d];
        assert!(started[&d] < *pos, "vertex {i} completed before it started");
        assert_eq!(c.name, name(i));
        let want = if cached(i) {
            Outcome::Cached
        } else {
            Outcome::Done
        };
        assert_eq!(c.outcome, want, "vertex {i}");
        assert_eq!(c.completed.0 - c.started.0, 5_000_000, "vertex {i}");
        if logged(i) && !cached(i) {
            assert_eq!(
                logs[&d],
                [format!("out-{i}"), format!("last-{i}")],
                "vertex {i}"
            );
        } else {
            assert!(!logs.contains_key(&d), "vertex {i} printed nothing");
        }
    }

    let s = &summary(&events).summary;
    assert_eq!(s.counts.total(), N);
    assert_eq!(s.counts.cached, N / 10);
    assert_eq!(s.counts.done, N - N / 10);
    assert_eq!(s.pending, 0);
    assert_eq!(s.steps.len(), N);
    let summary_order: Vec<&str> = s.steps.iter().map(|v| &*v.digest).collect();
    assert_eq!(
        summary_order, started_order,
        "the summary lists vertices in start order"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Logs for digests never announced

#[test]
fn logs_for_digests_never_announced_come_out_with_their_digest() {
    let known = "sha256:known";
    let run = |completed| Vertex {
        digest: known.into(),
        name: "[1/1] RUN known".into(),
        started: ts(0),
        completed: if completed { ts(100) } else { None },
        ..Default::default()
    };
    let mut body = Vec::new();
    body.extend(trace_line(&StatusResponse {
        vertexes: vec![run(false)],
        logs: vec![log(known, 1, "k1\n")],
        ..Default::default()
    }));
    body.extend(trace_line(&StatusResponse {
        logs: vec![
            log("sha256:ghost", 1, "ghost-out-1\nghost-out-2\nghost-par"),
            log("sha256:ghost", 2, "ghost-err\n"),
            log("", 1, "nobody\n"),
        ],
        ..Default::default()
    }));
    body.extend(trace_line(&StatusResponse {
        logs: vec![
            log("sha256:ghost", 1, "tial\n"),
            log("sha256:ghost2", 1, "unterminated"),
        ],
        ..Default::default()
    }));
    body.extend(trace_line(&StatusResponse {
        vertexes: vec![run(true)],
        ..Default::default()
    }));

    let mut decoder = BuildDecoder::new();
    let mut events = Vec::new();
    push_chunked(&mut decoder, &body, 33, &mut events);
    assert!(
        decoder.tracker().vertex("sha256:ghost").is_none(),
        "no record described it"
    );
    finish(&mut decoder, &mut events);

    let got: Vec<(String, Stream, String, LineEnd)> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Vertex(Event::Log(l)) => {
                Some((l.digest.to_string(), l.stream, l.text().into_owned(), l.end))
            }
            _ => None,
        })
        .collect();
    let line = |d: &str, s, t: &str, end| (d.to_string(), s, t.to_string(), end);
    assert_eq!(
        got,
        [
            line(known, Stream::Stdout, "k1", LineEnd::Newline),
            line(
                "sha256:ghost",
                Stream::Stdout,
                "ghost-out-1",
                LineEnd::Newline
            ),
            line(
                "sha256:ghost",
                Stream::Stdout,
                "ghost-out-2",
                LineEnd::Newline
            ),
            line(
                "sha256:ghost",
                Stream::Stderr,
                "ghost-err",
                LineEnd::Newline
            ),
            line("", Stream::Stdout, "nobody", LineEnd::Newline),
            line(
                "sha256:ghost",
                Stream::Stdout,
                "ghost-partial",
                LineEnd::Newline
            ),
            line(
                "sha256:ghost2",
                Stream::Stdout,
                "unterminated",
                LineEnd::Unterminated
            ),
        ]
    );
    assert_eq!(count(&events, is_bad_line), 0);
    let s = &summary(&events).summary;
    assert_eq!(s.counts.done, 1);
    assert_eq!(
        s.counts.total(),
        1,
        "logs alone do not make a started vertex"
    );
    assert_eq!(s.steps.len(), 1);
    assert_eq!(&*s.steps[0].digest, known);
}

// ---------------------------------------------------------------------------------------------
// 6. Undecodable trace records in the middle of a real recording

#[test]
fn invalid_base64_and_invalid_protobuf_records_are_bad_lines_and_change_nothing_else() {
    for rec in corpus::buildkit() {
        let body = rec.bytes();
        let lines = split_lines(&body);
        if lines.len() < 4 {
            continue;
        }
        let uncut = decode_uncut(&lines);
        let traces_before = |k: usize| {
            lines[..k]
                .iter()
                .filter(|l| l.starts_with(TRACE_PREFIX))
                .count() as u64
        };
        let (k1, k2) = (lines.len() / 3, 2 * lines.len() / 3);
        assert!(k1 < k2);
        // `*` is not base64 (offset 4); `Cv8=` is a length-delimited field 1 whose length
        // varint never ends.
        let bad_base64: &[u8] = b"{\"id\":\"moby.buildkit.trace\",\"aux\":\"Zm9v*YmFy\"}\r\n";
        let bad_protobuf: &[u8] = b"{\"id\":\"moby.buildkit.trace\",\"aux\":\"Cv8=\"}\r\n";
        let mut corrupted: Vec<&[u8]> = Vec::new();
        corrupted.extend(&lines[..k1]);
        corrupted.push(bad_base64);
        corrupted.extend(&lines[k1..k2]);
        corrupted.push(bad_protobuf);
        corrupted.extend(&lines[k2..]);

        let mut decoder = BuildDecoder::new();
        let mut events = Vec::new();
        push_chunked(&mut decoder, &corrupted.concat(), 1000, &mut events);
        finish(&mut decoder, &mut events);

        let what = rec.id();
        let p1 = uncut.after[k1];
        let p2 = uncut.after[k2] + 1;
        assert_eq!(count(&events, is_bad_line), 2, "{what}");
        match &events[p1] {
            BuildEvent::BadLine(LineError::Base64 { line, offset, .. }) => {
                assert_eq!(*line, k1 as u64 + 1, "{what}");
                assert_eq!(*offset, 4, "{what}");
            }
            other => panic!("{what}: expected the base64 BadLine at {p1}, got {other:?}"),
        }
        match &events[p2] {
            BuildEvent::BadLine(LineError::Trace {
                line,
                source: RecordError::Protobuf { record, len, .. },
            }) => {
                assert_eq!(*line, k2 as u64 + 2, "{what}");
                // The line that failed as base64 never reached the tracker.
                assert_eq!(*record, traces_before(k2), "{what}");
                assert_eq!(*len, 2, "{what}");
            }
            other => panic!("{what}: expected the protobuf BadLine at {p2}, got {other:?}"),
        }
        let mut rest = events.clone();
        rest.remove(p2);
        rest.remove(p1);
        assert!(
            rest == uncut.events,
            "{what}: every other event is unchanged"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. The connection to the daemon dropped mid-build

/// A TCP proxy on 127.0.0.1 in front of the daemon; [`Proxy::cut`] closes every connection it
/// carries, in both directions, and every later one as soon as it is accepted.
struct Proxy {
    port: u16,
    cut: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: DockerHost) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let (cut, cut_rx) = watch::channel(false);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let cut = cut_rx.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    match &upstream {
                        DockerHost::Unix(path) => {
                            if let Ok(up) = UnixStream::connect(path).await {
                                pipe(client, up, cut).await;
                            }
                        }
                        DockerHost::Tcp { host, port } => {
                            if let Ok(up) = TcpStream::connect((host.as_str(), *port)).await {
                                pipe(client, up, cut).await;
                            }
                        }
                        other => panic!("no proxy for {other}"),
                    }
                });
            }
        });
        Proxy { port, cut, accept }
    }

    fn host(&self) -> DockerHost {
        DockerHost::Tcp {
            host: "127.0.0.1".into(),
            port: self.port,
        }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies both ways until either side ends or the cut; then drops (closes) both sockets.
async fn pipe<U>(mut client: TcpStream, mut upstream: U, mut cut: watch::Receiver<bool>)
where
    U: AsyncRead + AsyncWrite + Unpin,
{
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
}

/// A `Write` into a shared buffer, to keep the raw body a [`BuildStream`] received.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_connection_lost_mid_build_delivers_every_earlier_event_then_names_the_running_step() {
    let Some(direct) = daemon().await else { return };
    let base = base_image(&direct).await;
    let proxy = Proxy::start(direct.host().clone()).await;
    let deadline = Duration::from_secs(240);
    tokio::time::timeout(deadline, async {
        let daemon = Daemon::connect_to(proxy.host())
            .await
            .expect("the daemon answers through the proxy");
        let marker = unique_marker("cut");
        let first = format!("first-{marker}");
        let dockerfile = format!("FROM {base}\nRUN echo {first}; sleep 30; echo never-{marker}\n");
        let context = Context::from_tar(Bytes::from(tar_context(&[(
            "Dockerfile",
            dockerfile.as_bytes(),
        )])));
        let raw = SharedBuf::default();
        let options = BuildOptions {
            no_cache: true,
            ..Default::default()
        };
        let mut stream = build(&daemon, context, &options)
            .await
            .expect("the build starts")
            .record_to(raw.clone());

        let mut delivered = Vec::new();
        loop {
            match stream.next_event().await {
                Some(Ok(event)) => {
                    let is_first = matches!(
                        &event,
                        BuildEvent::Vertex(Event::Log(l)) if l.text() == first
                    );
                    assert!(
                        !is_finished(&event),
                        "the build ended before its first line"
                    );
                    delivered.push(event);
                    if is_first {
                        break;
                    }
                }
                Some(Err(e)) => panic!("the stream failed before the cut: {e}"),
                None => panic!("the stream ended before the first line"),
            }
        }
        proxy.cut();

        let error = loop {
            match stream.next_event().await {
                Some(Ok(event)) => {
                    assert!(
                        !is_finished(&event),
                        "a cut connection does not finish the build: {event:?}"
                    );
                    delivered.push(event);
                }
                Some(Err(e)) => break e,
                None => panic!("the stream ended without an error after the cut"),
            }
        };
        assert!(
            stream.next_event().await.is_none(),
            "nothing after the error"
        );
        assert!(stream.next_event().await.is_none(), "and it stays ended");

        let BuildStreamError::ConnectionLost { running, .. } = &error else {
            panic!("expected ConnectionLost, got {error:?}");
        };
        let run_step = format!("RUN echo {first}");
        assert!(
            running.iter().any(|n| n.contains(&run_step)),
            "running {running:?} names {run_step}"
        );
        assert!(error.to_string().contains(&run_step), "{error}");

        // Every event in the bytes that arrived before the cut was delivered, in order, and
        // nothing else.
        let raw = raw.0.lock().unwrap().clone();
        let mut decoder = BuildDecoder::new();
        let mut decoded = Vec::new();
        push_chunked(&mut decoder, &raw, usize::MAX, &mut decoded);
        assert!(
            decoded == delivered,
            "the delivered events are those of the received bytes"
        );
        let decoded_running: Vec<String> = decoder.running().into_iter().map(|(_, n)| n).collect();
        assert_eq!(running, &decoded_running);
        let logs: Vec<String> = delivered
            .iter()
            .filter_map(|e| match e {
                BuildEvent::Vertex(Event::Log(l)) => Some(l.text().into_owned()),
                _ => None,
            })
            .collect();
        assert!(logs.contains(&first), "{logs:?}");
        assert!(!logs.iter().any(|l| l.contains("never-")), "{logs:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("the test did not end within {deadline:?}"));
}
