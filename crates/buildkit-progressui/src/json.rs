//! `--progress=json`: one JSON object per line per event, for tools. The schema is documented
//! in the crate's README.md ("JSON output") and kept stable: fields may be added, none are
//! renamed or removed, and consumers should ignore `type`s they do not know.

//!
//! Nearly every line is a `vertex_log` (98 % on the corpus stream), so that one is written by
//! hand into a reused buffer: the vertex's digest and name as escaped when it last started,
//! the line escaped by a block scan, the time from a per-second cache (see
//! `BENCHMARKS.md`, section 8); the other lines go through serde. Each event is one
//! `write_all` of its whole line.

use std::io::{self, Write};
use std::sync::Arc;

use buildkit_events::{Event, LineEnd, LogLine, Outcome, Stream, Time};
use docker_build::decode::BuildEvent;
use serde::Serialize;

use crate::Render;
use crate::escape::{push_lossy, push_str};
use crate::format::{Rfc3339, rfc3339, seconds};
use crate::view::Vertices;

/// The JSON-lines renderer. Writes to any [`Write`].
#[derive(Debug)]
pub struct Json<W> {
    out: W,
    /// The vertices' names (no output tails: the events carry every line).
    view: Vertices,
    /// Per vertex of `view` (same index): its digest and name as JSON strings, written when
    /// it starts or completes, so that its log lines do not escape them again.
    quoted: Vec<Quoted>,
    /// The vertex of the latest log line and its index (lines come in runs of one vertex).
    last: Option<(Arc<str>, usize)>,
    /// The line being written.
    line: Vec<u8>,
    times: Rfc3339,
}

/// A vertex's digest and name, quoted and escaped.
#[derive(Debug, Default)]
struct Quoted {
    digest: Vec<u8>,
    name: Vec<u8>,
}

/// Counts in `build_finished.vertices`.
#[derive(Debug, Serialize)]
struct Counts {
    done: usize,
    cached: usize,
    failed: usize,
    canceled: usize,
    interrupted: usize,
    pending: usize,
}

/// One output line (one event).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Out<'a> {
    VertexStarted {
        digest: &'a str,
        name: &'a str,
        inputs: &'a [String],
        interval: u32,
        time: String,
    },
    VertexCompleted {
        digest: &'a str,
        name: &'a str,
        outcome: &'static str,
        error: Option<&'a str>,
        duration_s: f64,
        interval: u32,
        started: String,
        time: String,
    },
    VertexProgress {
        digest: &'a str,
        name: Option<&'a str>,
        id: &'a str,
        action: &'a str,
        current: i64,
        total: Option<i64>,
        done: bool,
        started: Option<String>,
        completed: Option<String>,
        time: String,
    },
    VertexWarning {
        digest: &'a str,
        name: Option<&'a str>,
        level: i64,
        short: String,
        detail: Vec<String>,
        url: Option<&'a str>,
        file: Option<&'a str>,
        lines: &'a [(i32, i32)],
    },
    ImageBuilt {
        id: &'a str,
    },
    Message {
        text: &'a str,
    },
    BadLine {
        error: String,
    },
    BuildFailed {
        message: &'a str,
        code: Option<i64>,
        digest: Option<&'a str>,
        name: Option<&'a str>,
        error: Option<&'a str>,
        last_lines: Vec<String>,
    },
    ContextUpload {
        bytes: u64,
        done: bool,
        started: String,
        time: String,
    },
    BuildFinished {
        success: bool,
        error: Option<&'a str>,
        image_id: Option<&'a str>,
        duration_s: f64,
        vertices: Counts,
    },
}

fn outcome_name(o: &Outcome) -> &'static str {
    o.label()
}

/// An error and its sources, `: `-separated (no error repeats its source in its message).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn time(t: Time) -> String {
    rfc3339(t)
}

impl<W: Write> Json<W> {
    /// A renderer writing to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            view: Vertices::new(0, 0),
            quoted: Vec::new(),
            last: None,
            line: Vec::with_capacity(512),
            times: Rfc3339::default(),
        }
    }

    /// The index in `view` of the vertex `digest`, if it started.
    fn index_of(&mut self, digest: &Arc<str>) -> Option<usize> {
        if let Some((last, i)) = &self.last {
            if Arc::ptr_eq(last, digest) || **last == **digest {
                return Some(*i);
            }
        }
        let i = self.view.index_of(digest)?;
        self.last = Some((Arc::clone(digest), i));
        Some(i)
    }

    /// Writes the `vertex_log` line of `l` as serde would write `Out::VertexLog`.
    fn log(&mut self, l: &LogLine) -> io::Result<()> {
        let index = self.index_of(&l.digest);
        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(br#"{"type":"vertex_log","digest":"#);
        match index {
            Some(i) => match self.quoted.get(i) {
                Some(q) => {
                    line.extend_from_slice(&q.digest);
                    line.extend_from_slice(br#","name":"#);
                    line.extend_from_slice(&q.name);
                }
                // Not reached (every vertex of the view was quoted when it started or
                // completed); written from the view all the same.
                None => {
                    push_str(line, &l.digest);
                    line.extend_from_slice(br#","name":"#);
                    push_str(line, self.view[i].name());
                }
            },
            None => {
                push_str(line, &l.digest);
                line.extend_from_slice(br#","name":null"#);
            }
        }
        match l.stream {
            Stream::Stdout => line.extend_from_slice(br#","stream":"stdout","line":"#),
            Stream::Stderr => line.extend_from_slice(br#","stream":"stderr","line":"#),
            other => {
                line.extend_from_slice(br#","stream":"#);
                serde_json::to_writer(&mut *line, &other.number())?;
                line.extend_from_slice(br#","line":"#);
            }
        }
        push_lossy(line, &l.bytes);
        line.extend_from_slice(if l.end != LineEnd::Newline {
            br#","partial":true"#
        } else {
            br#","partial":false"#
        });
        line.extend_from_slice(if l.clipped_notice {
            br#","clipped":true,"time":""#
        } else {
            br#","clipped":false,"time":""#
        });
        self.times.push(line, l.timestamp);
        line.extend_from_slice(b"\"}\n");
        self.out.write_all(line)
    }

    /// Keeps `quoted[i]` in step with the view after a start or completion of vertex `i`.
    fn requote(&mut self, i: usize) {
        if self.quoted.len() <= i {
            self.quoted.resize_with(i + 1, Quoted::default);
        }
        let v = &self.view[i];
        let q = &mut self.quoted[i];
        if q.digest.is_empty() {
            push_str(&mut q.digest, v.digest());
        }
        q.name.clear();
        push_str(&mut q.name, v.name());
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Writes `line` and a newline with one `write_all`, through the buffer `buf`.
fn write_line(out: &mut impl Write, buf: &mut Vec<u8>, line: &Out<'_>) -> io::Result<()> {
    buf.clear();
    serde_json::to_writer(&mut *buf, line)?;
    buf.push(b'\n');
    out.write_all(buf)
}

impl<W: Write> Render for Json<W> {
    /// JSON output carries only the times inside the events: `now` is not used.
    fn event(&mut self, event: &BuildEvent, _now: Time) -> io::Result<()> {
        let index = match event {
            // `view.apply` does nothing for a log line when it keeps no tails.
            BuildEvent::Vertex(Event::Log(_)) => None,
            _ => self.view.apply(event),
        };
        if let (Some(i), BuildEvent::Vertex(Event::Started(_) | Event::Completed(_))) =
            (index, event)
        {
            self.requote(i);
        }
        let name = |digest: &str| self.view.get(digest).map(|v| v.name());
        let line = match event {
            BuildEvent::Vertex(Event::Started(s)) => Out::VertexStarted {
                digest: &s.digest,
                name: &s.name,
                inputs: &s.inputs,
                interval: s.interval,
                time: time(s.started),
            },
            BuildEvent::Vertex(Event::Completed(c)) => Out::VertexCompleted {
                digest: &c.digest,
                name: &c.name,
                outcome: outcome_name(&c.outcome),
                error: match &c.outcome {
                    Outcome::Failed(e) => Some(e),
                    _ => None,
                },
                duration_s: seconds(c.duration),
                interval: c.interval,
                started: time(c.started),
                time: time(c.completed),
            },
            BuildEvent::Vertex(Event::Log(l)) => return self.log(l),
            BuildEvent::Vertex(Event::Progress(p)) => Out::VertexProgress {
                digest: &p.digest,
                name: name(&p.digest),
                id: &p.id,
                action: &p.action,
                current: p.current,
                total: p.total,
                done: p.completed.is_some(),
                started: p.started.map(time),
                completed: p.completed.map(time),
                time: time(p.timestamp),
            },
            BuildEvent::Vertex(Event::Warning(w)) => Out::VertexWarning {
                digest: &w.digest,
                name: name(&w.digest),
                level: w.level,
                short: text(&w.short),
                detail: w.detail.iter().map(|d| text(d)).collect(),
                url: Some(w.url.as_str()).filter(|u| !u.is_empty()),
                file: w.source_file.as_deref(),
                lines: &w.lines,
            },
            BuildEvent::ImageBuilt { id } => Out::ImageBuilt { id },
            BuildEvent::ContextUpload(u) => Out::ContextUpload {
                bytes: u.sent,
                done: u.done,
                started: time(u.started),
                time: time(u.at),
            },
            // Not part of our schema (see `--progress rawjson`).
            BuildEvent::Record(_) | BuildEvent::RecordApplied => return Ok(()),
            BuildEvent::Message(text) => Out::Message { text },
            BuildEvent::BadLine(e) => Out::BadLine {
                error: error_chain(e),
            },
            BuildEvent::Failed(f) => Out::BuildFailed {
                message: &f.message,
                code: f.code,
                digest: f.step.as_ref().map(|s| &*s.digest),
                name: f.step.as_ref().map(|s| s.name.as_str()),
                error: f.step.as_ref().map(|s| s.error.as_str()),
                last_lines: f.step.as_ref().map_or_else(Vec::new, |s| {
                    s.last_lines.iter().map(|l| l.text().into_owned()).collect()
                }),
            },
            BuildEvent::Finished(summary) => {
                let c = &summary.summary.counts;
                let line = Out::BuildFinished {
                    success: summary.succeeded(),
                    error: summary.failure.as_ref().map(|f| f.message.as_str()),
                    image_id: summary.image_id.as_deref(),
                    duration_s: seconds(summary.summary.wall_time),
                    vertices: Counts {
                        done: c.done,
                        cached: c.cached,
                        failed: c.failed,
                        canceled: c.canceled,
                        interrupted: c.interrupted,
                        pending: summary.summary.pending,
                    },
                };
                write_line(&mut self.out, &mut self.line, &line)?;
                return self.out.flush();
            }
            // Kinds of event added later have no line in this schema yet.
            _ => return Ok(()),
        };
        write_line(&mut self.out, &mut self.line, &line)
    }
}

#[cfg(test)]
mod tests {
    use docker_build::decode::BuildDecoder;

    use super::*;

    /// The corpus fed again and again (the memory stress input): the renderer keeps the
    /// vertices' names and nothing else, so what it keeps stays the same.
    #[test]
    fn repeating_the_corpus_does_not_grow_the_renderer() {
        let json = std::cell::RefCell::new(Json::new(io::sink()));
        let mut seen = Vec::new();
        crate::testing::repeat_corpus(
            4,
            |e| json.borrow_mut().event(e, Time(0)).unwrap(),
            |_| {
                let json = json.borrow();
                let tails = json.view.iter().map(|v| v.tail().count()).sum::<usize>();
                seen.push((json.view.len(), tails));
            },
        );
        assert!(seen[0].0 > 100 && seen[0].1 == 0, "{seen:?}");
        assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
    }

    #[test]
    fn a_bad_line_carries_the_whole_error_chain() {
        // Valid base64 of bytes that are no StatusResponse (field number 0 is invalid).
        let body = "{\"id\":\"moby.buildkit.trace\",\"aux\":\"AAA=\"}\r\n";
        let mut decoder = BuildDecoder::new();
        decoder.push(body, Time(0));
        decoder.finish(Time(0));
        let mut json = Json::new(Vec::new());
        while let Some(event) = decoder.poll_event() {
            json.event(&event, Time(0)).unwrap();
        }
        let out = String::from_utf8(json.into_inner()).unwrap();
        let bad: serde_json::Value = out
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["type"] == "bad_line")
            .expect("a bad_line object");
        let error = bad["error"].as_str().unwrap();
        assert!(
            error.starts_with("line 1: trace record did not decode: "),
            "{error}"
        );
        assert!(error.contains("invalid StatusResponse protobuf"), "{error}");
    }
}
