//! Golden event transcripts: every recorded daemon stream under `tests/data/corpus/` is fed
//! through `buildkit_events::Tracker`, and the events plus the final summary are rendered in
//! a line-oriented text format and compared with `tests/golden/events/<daemon>/<name>.txt`,
//! one test per recording (`docker_26_1::run_fails`, …).
//!
//! After an intended change of the tracker's output, re-bless the transcripts with
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p workspace-tests --test golden_events
//! ```
//!
//! and read the diff before committing it (the rule is `workspace_tests::golden`'s: nothing is
//! written under `CI=true`).
//!
//! # Format
//! A `#` header, then one event per line, then the summary after `== summary`:
//!
//! ```text
//! +0.000s start    f2b9e689edea #0 "[internal] load remote build context"
//! +0.011s complete f2b9e689edea #0 DONE total=0.011s
//! +0.016s start    10ea9372201c #0 "copy /context /" <- f2b9e689edea
//! +0.171s log      47492f7dceb4 stdout "marker-1234"
//! +0.531s log      f9b7edcb6c02 stdout "no-trailing-newline\r50%\r100%"
//! +0.239s log      37a944b68f51 stdout "[output clipped, log limit 200KiB/s reached]" clip-notice
//! +0.142s progress 28311151a5e5 "sha256:09f6…" done 893/893 started=+0.042s completed=+0.036s
//!       - warning  96ef942cb400 level=1 "StageNameCasing: …" Dockerfile:5-5 url="…"
//! ```
//!
//! - Times are seconds (millisecond precision, truncated) relative to the time of the first
//!   event that has one; warnings carry no time and show `-`.
//! - Digests are shortened to the first 12 hex digits after `sha256:` (the test fails if two
//!   digests of one transcript share a short form); other digests are printed in full.
//! - `start`/`complete` show the interval number; `complete` shows the outcome
//!   (`DONE`, `CACHED`, `ERROR: "…"`, `CANCELED`, `INTERRUPTED`) and the vertex's total
//!   run time so far.
//! - Log lines are quoted with `\\`, `\"`, `\r`, `\t`, `\n` escaped, other control bytes and
//!   invalid UTF-8 as `\xNN`; a trailing `split` / `unterminated` tells how the piece ended
//!   (nothing = newline), `clip-notice` marks BuildKit's clip notice.
//! - Progress: id, action (if any), `current/total` (`?` for an unknown total), start and
//!   completion times.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use buildkit_events::{Elapsed, Event, LineEnd, Outcome, Summary, Time, Tracker};
use workspace_tests::corpus;
use workspace_tests::golden::{assert_golden, unexpected_files};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/events")
}

fn golden_file(rec: &corpus::Recording) -> PathBuf {
    golden_dir()
        .join(&rec.daemon)
        .join(format!("{}.txt", rec.name))
}

/// Renders the transcript of one recording.
fn transcript(rec: &corpus::Recording) -> String {
    let records = rec.trace_records();
    let mut tracker = Tracker::new();
    for (i, wire) in records.iter().enumerate() {
        tracker
            .handle_protobuf(wire.clone())
            .unwrap_or_else(|e| panic!("{} record {i}: {e}", rec.id()));
    }
    let mut events = Vec::new();
    while let Some(e) = tracker.poll_event() {
        events.push(e);
    }
    let summary = tracker.finish();
    while let Some(e) = tracker.poll_event() {
        events.push(e);
    }
    render(&rec.id(), records.len(), &events, &summary)
}

fn golden_transcript(rec: &corpus::Recording) {
    assert_golden(golden_file(rec), &transcript(rec));
}

workspace_tests::test_each_recording!(golden_transcript);

/// No transcript may outlive its recording.
#[test]
fn every_golden_transcript_has_its_recording() {
    let expected: Vec<PathBuf> = corpus::all().iter().map(golden_file).collect();
    assert_eq!(expected.len(), 47, "the corpus holds 47 recordings");
    let stale = unexpected_files(golden_dir(), &expected);
    assert!(
        stale.is_empty(),
        "golden transcripts without a recording: {stale:?}"
    );
}

struct Renderer {
    t0: Option<Time>,
    short: BTreeMap<String, String>,
}

impl Renderer {
    fn time(&self, t: Time) -> String {
        let rel = t.0 - self.t0.unwrap_or(t).0;
        let sign = if rel < 0 { '-' } else { '+' };
        let ms = rel.unsigned_abs() / 1_000_000;
        format!("{sign}{}.{:03}s", ms / 1000, ms % 1000)
    }

    fn digest(&mut self, d: &str) -> String {
        let short = match d.strip_prefix("sha256:") {
            Some(hex) if hex.len() >= 12 && hex.is_ascii() => hex[..12].to_string(),
            _ => escape(d.as_bytes()),
        };
        if let Some(prev) = self.short.insert(short.clone(), d.to_string()) {
            assert_eq!(prev, d, "two digests share the short form {short}");
        }
        short
    }
}

fn duration(d: Elapsed) -> String {
    let ms = d.0 / 1_000_000;
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// Quotes bytes: printable UTF-8 as is, `\\ \" \r \t \n` escaped, the rest as `\xNN`.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

fn outcome(o: &Outcome) -> String {
    match o {
        Outcome::Failed(e) => format!("ERROR: {}", escape(e.as_bytes())),
        other => other.to_string(),
    }
}

fn render(id: &str, records: usize, events: &[Event], summary: &Summary) -> String {
    let t0 = events.iter().find_map(|e| match e {
        Event::Started(s) => Some(s.started),
        Event::Completed(c) => Some(c.completed),
        Event::Log(l) => Some(l.timestamp),
        Event::Progress(p) => Some(p.timestamp),
        _ => None,
    });
    let mut r = Renderer {
        t0,
        short: BTreeMap::new(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {id}: {records} trace records, {} events",
        events.len()
    );
    for e in events {
        let line = match e {
            Event::Started(s) => {
                let mut line = format!(
                    "{:>8} start    {} #{} {}",
                    r.time(s.started),
                    r.digest(&s.digest),
                    s.interval,
                    escape(s.name.as_bytes())
                );
                if !s.inputs.is_empty() {
                    let inputs: Vec<String> = s.inputs.iter().map(|i| r.digest(i)).collect();
                    let _ = write!(line, " <- {}", inputs.join(","));
                }
                line
            }
            Event::Completed(c) => format!(
                "{:>8} complete {} #{} {} total={}",
                r.time(c.completed),
                r.digest(&c.digest),
                c.interval,
                outcome(&c.outcome),
                duration(c.duration)
            ),
            Event::Log(l) => {
                let mut line = format!(
                    "{:>8} log      {} {} {}",
                    r.time(l.timestamp),
                    r.digest(&l.digest),
                    l.stream,
                    escape(&l.bytes)
                );
                match l.end {
                    LineEnd::Newline => {}
                    LineEnd::Split => line.push_str(" split"),
                    LineEnd::Unterminated => line.push_str(" unterminated"),
                    other => panic!("a new line end needs a transcript form: {other:?}"),
                }
                if l.clipped_notice {
                    line.push_str(" clip-notice");
                }
                line
            }
            Event::Progress(p) => {
                let mut line = format!(
                    "{:>8} progress {} {}",
                    r.time(p.timestamp),
                    r.digest(&p.digest),
                    escape(p.id.as_bytes())
                );
                if !p.action.is_empty() {
                    let _ = write!(line, " {}", escape(p.action.as_bytes()));
                }
                match p.total {
                    Some(total) => {
                        let _ = write!(line, " {}/{}", p.current, total);
                    }
                    None if p.current != 0 => {
                        let _ = write!(line, " {}/?", p.current);
                    }
                    None => {}
                }
                if let Some(s) = p.started {
                    let _ = write!(line, " started={}", r.time(s));
                }
                if let Some(c) = p.completed {
                    let _ = write!(line, " completed={}", r.time(c));
                }
                line
            }
            Event::Warning(w) => {
                let mut line = format!(
                    "{:>8} warning  {} level={} {}",
                    "-",
                    r.digest(&w.digest),
                    w.level,
                    escape(&w.short)
                );
                if let Some(file) = &w.source_file {
                    let ranges: Vec<String> =
                        w.lines.iter().map(|(a, b)| format!("{a}-{b}")).collect();
                    let _ = write!(line, " {}:{}", escape(file.as_bytes()), ranges.join(","));
                }
                if !w.url.is_empty() {
                    let _ = write!(line, " url={}", escape(w.url.as_bytes()));
                }
                for d in &w.detail {
                    let _ = write!(line, " detail={}", escape(d));
                }
                line
            }
            other => panic!("a new event kind needs a transcript form: {other:?}"),
        };
        out.push_str(&line);
        out.push('\n');
    }

    let c = &summary.counts;
    let _ = writeln!(out, "== summary");
    let _ = writeln!(
        out,
        "counts: done={} cached={} failed={} canceled={} interrupted={} pending={}",
        c.done, c.cached, c.failed, c.canceled, c.interrupted, summary.pending
    );
    match (summary.first_started, summary.last_completed) {
        (Some(a), Some(b)) => {
            let _ = writeln!(
                out,
                "wall: {} ({} .. {})",
                duration(summary.wall_time),
                r.time(a),
                r.time(b)
            );
        }
        _ => {
            let _ = writeln!(out, "wall: -");
        }
    }
    for v in &summary.steps {
        let _ = writeln!(
            out,
            "vertex {} {} total={} intervals={} {}",
            r.digest(&v.digest),
            outcome(&v.outcome),
            duration(v.duration),
            v.intervals,
            escape(v.name.as_bytes())
        );
    }
    match &summary.failed {
        None => {
            let _ = writeln!(out, "failed: none");
        }
        Some(f) => {
            let _ = writeln!(
                out,
                "failed: {} {} error={}",
                r.digest(&f.digest),
                escape(f.name.as_bytes()),
                escape(f.error.as_bytes())
            );
            for l in &f.last_lines {
                let _ = writeln!(out, "  tail {} {}", l.stream, escape(&l.bytes));
            }
        }
    }
    out
}

#[test]
fn escaping_is_unambiguous() {
    assert_eq!(escape(b"a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(escape(b"x\r\t\n\x1b[0m"), r#""x\r\t\n\x1b[0m""#);
    assert_eq!(escape(b"\xff\xfeok \xc3\xa9"), "\"\\xff\\xfeok \u{e9}\"");
}

#[test]
fn times_are_relative_and_truncated_to_milliseconds() {
    let r = Renderer {
        t0: Some(Time(1_000_000_000)),
        short: BTreeMap::new(),
    };
    assert_eq!(r.time(Time(2_234_999_999)), "+1.234s");
    assert_eq!(r.time(Time(999_000_000)), "-0.001s");
    assert_eq!(duration(Elapsed(61_005_000_000)), "61.005s");
}
