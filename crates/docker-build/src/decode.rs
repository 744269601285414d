//! The transport-free core: `POST /build` body bytes in, [`BuildEvent`]s out.
//!
//! The live path (`build()`, feature `daemon`), replays of recorded bodies and the tests all use
//! [`BuildDecoder`]. It does no I/O and reads no clock: the caller passes body chunks in any
//! chunking, with the time each arrived (used only by the classic builder, whose text carries no
//! times).

use std::collections::VecDeque;
use std::sync::Arc;

use buildkit_events::{Event, FailedVertex, Outcome, Step, Summary, Time, Tracker};
use buildkit_proto::{Message as _, StatusResponse};
use bytes::Bytes;

use crate::classic::ClassicMapper;
use crate::ndjson::{DEFAULT_MAX_LINE, LineError, LineSplitter, Message, decode_trace, parse_line};

/// Something that happened during a build.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BuildEvent {
    /// A vertex event from BuildKit's trace (or a classic-builder step in the same vocabulary).
    Vertex(Event),
    /// A BuildKit trace record as decoded, before the vertex events derived from it; only
    /// with [`DecoderConfig::records`] (e.g. to print it as buildx's `--progress=rawjson`).
    /// Classic-builder text gives none: the records the decoder makes up for it are not
    /// BuildKit's. A record that does not decode gives a [`BuildEvent::BadLine`] instead.
    Record(Arc<StatusResponse>),
    /// The daemon reported the id of the image it built.
    ImageBuilt {
        /// `sha256:…`.
        id: String,
    },
    /// A text message from the daemon that belongs to no step (e.g. `Successfully tagged x`).
    Message(String),
    /// A line of the body that could not be used; the build goes on.
    BadLine(LineError),
    /// The build failed. Comes after the vertex events, just before [`BuildEvent::Finished`].
    Failed(BuildFailure),
    /// The body ended; always the last event.
    Finished(Box<BuildSummary>),
}

/// Why a build failed, attributed to its step where one can be named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildFailure {
    /// The daemon's message (`errorDetail.message`).
    pub message: String,
    /// `errorDetail.code`, when the daemon gave one (the classic builder's exit code).
    pub code: Option<i64>,
    /// The step that failed, when a vertex carried the error: the tracker's first failed
    /// vertex, with its error text and its last log lines (timestamped).
    pub step: Option<FailedVertex>,
}

/// What the whole build came to.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSummary {
    /// Per-step outcomes, counts and times, from the tracker.
    pub summary: Summary,
    /// The image id the daemon reported, if any.
    pub image_id: Option<String>,
    /// The failure, if the build failed.
    pub failure: Option<BuildFailure>,
}

impl BuildSummary {
    /// Whether the build succeeded: the daemon reported no error, and no step was left
    /// running unless the daemon reported the image anyway (it built it, and only its report
    /// of some steps' completion is missing). A body that ends while steps run and no image
    /// was reported (the client went away, the connection or recording was cut) is not a
    /// success.
    ///
    /// ```
    /// use docker_build::decode::{BuildDecoder, BuildEvent};
    /// use docker_build::Time;
    ///
    /// let finished = |body: &'static str| {
    ///     let mut decoder = BuildDecoder::new();
    ///     decoder.push(body, Time(0));
    ///     decoder.finish(Time(1));
    ///     std::iter::from_fn(|| decoder.poll_event())
    ///         .find_map(|e| match e { BuildEvent::Finished(s) => Some(s), _ => None })
    ///         .unwrap()
    /// };
    /// let built = "{\"stream\":\"Step 1/1 : FROM scratch\\n\"}\r\n{\"aux\":{\"ID\":\"sha256:0\"}}\r\n";
    /// assert!(finished(built).succeeded());
    /// let cut = "{\"stream\":\"Step 1/1 : RUN sleep 9\\n\"}\r\n";
    /// assert!(!finished(cut).succeeded());
    /// let failed = "{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\r\n";
    /// assert!(!finished(failed).succeeded());
    /// ```
    pub fn succeeded(&self) -> bool {
        self.failure.is_none() && (self.image_id.is_some() || self.interrupted().next().is_none())
    }

    /// The steps the body left running ([`Outcome::Interrupted`]), in the order they started.
    pub fn interrupted(&self) -> impl Iterator<Item = &Step> + '_ {
        self.summary
            .steps
            .iter()
            .filter(|s| s.outcome == Outcome::Interrupted)
    }
}

/// Limits and options of a [`BuildDecoder`].
///
/// ```
/// use docker_build::DecoderConfig;
///
/// let config = DecoderConfig { max_line: 1 << 20, records: true, ..Default::default() };
/// # let _ = config;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Longest body line accepted; longer ones are dropped and reported.
    pub max_line: usize,
    /// Limits of the vertex tracker.
    pub tracker: buildkit_events::Config,
    /// Also emit every decoded BuildKit trace record as a [`BuildEvent::Record`] (default
    /// `false`: a record is then only turned into vertex events).
    pub records: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            max_line: DEFAULT_MAX_LINE,
            tracker: Default::default(),
            records: false,
        }
    }
}

/// Decodes a `POST /build` response body into [`BuildEvent`]s.
///
/// ```
/// use docker_build::{BuildDecoder, BuildEvent, Time};
///
/// let body = concat!(
///     "{\"stream\":\"Step 1/1 : RUN echo hi\"}\r\n{\"stream\":\"\\n\"}\r\n",
///     "{\"stream\":\"hi\\n\"}\r\n{\"aux\":{\"ID\":\"sha256:abc\"}}\r\n",
/// );
/// let mut decoder = BuildDecoder::new();
/// decoder.push(body, Time(0));
/// decoder.finish(Time(1));
/// let events: Vec<BuildEvent> = std::iter::from_fn(|| decoder.poll_event()).collect();
/// assert!(events.contains(&BuildEvent::ImageBuilt { id: "sha256:abc".into() }));
/// assert!(matches!(events.last(), Some(BuildEvent::Finished(s)) if s.failure.is_none()));
/// ```
#[derive(Debug)]
pub struct BuildDecoder {
    lines: LineSplitter,
    tracker: Tracker,
    classic: ClassicMapper,
    queue: VecDeque<BuildEvent>,
    /// Synthetic records from the classic mapper, reused between calls.
    scratch: Vec<StatusResponse>,
    line_no: u64,
    image_id: Option<String>,
    error: Option<(String, Option<i64>)>,
    finished: bool,
    /// Emit [`BuildEvent::Record`]s.
    records: bool,
}

impl Default for BuildDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildDecoder {
    /// A decoder with default limits.
    pub fn new() -> Self {
        Self::with_config(DecoderConfig::default())
    }

    /// A decoder with the given limits.
    pub fn with_config(config: DecoderConfig) -> Self {
        Self {
            lines: LineSplitter::with_max_line(config.max_line),
            tracker: Tracker::with_config(config.tracker),
            classic: ClassicMapper::default(),
            queue: VecDeque::new(),
            scratch: Vec::new(),
            line_no: 0,
            image_id: None,
            error: None,
            finished: false,
            records: config.records,
        }
    }

    /// Feeds the next chunk of the body, received at `now`.
    ///
    /// A [`Bytes`] chunk is kept without copying (whole lines in it become slices of it);
    /// `Vec<u8>`, `&'static [u8]`, `String` and `&'static str` convert without copying too.
    pub fn push(&mut self, chunk: impl Into<Bytes>, now: Time) {
        if self.finished {
            return;
        }
        self.lines.push(chunk.into());
        while let Some(line) = self.lines.next_line() {
            self.line(line, now);
        }
    }

    /// Feeds one already-decoded BuildKit record that did not come in a body line: from the
    /// Control API's `Status` stream, or parsed from buildx's rawjson ([`crate::recording`]).
    /// The same as a `moby.buildkit.trace` line carrying it; the record carries its own times.
    ///
    /// ```
    /// use docker_build::{BuildDecoder, BuildEvent, Event, Time};
    /// use buildkit_proto::{StatusResponse, Timestamp, Vertex};
    ///
    /// let mut decoder = BuildDecoder::new();
    /// decoder.push_record(StatusResponse {
    ///     vertexes: vec![Vertex {
    ///         digest: "sha256:a".into(),
    ///         name: "[1/1] RUN true".into(),
    ///         started: Some(Timestamp { seconds: 1, nanos: 0 }),
    ///         completed: Some(Timestamp { seconds: 2, nanos: 0 }),
    ///         ..Default::default()
    ///     }],
    ///     ..Default::default()
    /// });
    /// decoder.finish(Time(0));
    /// let events: Vec<_> = std::iter::from_fn(|| decoder.poll_event()).collect();
    /// assert!(matches!(&events[0], BuildEvent::Vertex(Event::Started(_))));
    /// assert!(matches!(events.last(), Some(BuildEvent::Finished(s)) if s.succeeded()));
    /// ```
    pub fn push_record(&mut self, record: StatusResponse) {
        if self.finished {
            return;
        }
        if self.records {
            let record = Arc::new(record);
            self.drain_tracker();
            self.queue
                .push_back(BuildEvent::Record(Arc::clone(&record)));
            self.tracker.handle_response(StatusResponse::clone(&record));
        } else {
            self.tracker.handle_response(record);
        }
    }

    /// The end of the body: flushes partial lines, reports unfinished vertices as interrupted,
    /// the failure if any, and [`BuildEvent::Finished`]. Later calls do nothing.
    pub fn finish(&mut self, now: Time) {
        if self.finished {
            return;
        }
        if let Some(line) = self.lines.finish() {
            self.line(line, now);
        }
        self.classic.finish(now, &mut self.scratch);
        self.feed_scratch();
        self.finished = true;
        let summary = self.tracker.finish();
        self.drain_tracker();
        let failure = self.error.take().map(|(message, code)| BuildFailure {
            message,
            code,
            step: summary.failed.clone(),
        });
        if let Some(f) = &failure {
            self.queue.push_back(BuildEvent::Failed(f.clone()));
        }
        self.queue
            .push_back(BuildEvent::Finished(Box::new(BuildSummary {
                summary,
                image_id: self.image_id.clone(),
                failure,
            })));
    }

    /// The next event, in order; `None` until more input arrives.
    pub fn poll_event(&mut self) -> Option<BuildEvent> {
        // Everything in `queue` precedes everything still in the tracker's queue (the
        // tracker is drained before the decoder queues an event of its own), so the tracker's
        // events need not be moved through `queue` at all.
        match self.queue.pop_front() {
            Some(event) => Some(event),
            None => self.tracker.poll_event().map(BuildEvent::Vertex),
        }
    }

    /// The tracker, e.g. to look up a vertex's name by digest.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Digest and name of every vertex that started and has not completed.
    pub fn running(&self) -> Vec<(Arc<str>, String)> {
        self.tracker
            .running()
            .map(|v| (v.digest.clone(), v.name.clone()))
            .collect()
    }

    fn line(&mut self, line: Result<Bytes, usize>, now: Time) {
        self.line_no += 1;
        let line_no = self.line_no;
        let line = match line {
            Ok(line) if line.is_empty() => return,
            Ok(line) => line,
            Err(len) => {
                let max = self.lines_max();
                self.bad(LineError::TooLong {
                    line: line_no,
                    len,
                    max,
                });
                return;
            }
        };
        let message = match parse_line(line, line_no) {
            Ok(m) => m,
            Err(e) => return self.bad(e),
        };
        match message {
            Message::Trace(aux) => self.trace(&aux, line_no),
            Message::ImageId(id) => {
                self.drain_tracker();
                self.image_id = Some(id.clone());
                self.queue.push_back(BuildEvent::ImageBuilt { id });
            }
            Message::Stream(text) => {
                let messages = self.classic.text(&text, now, &mut self.scratch);
                self.feed_scratch();
                for m in messages {
                    self.queue.push_back(BuildEvent::Message(m));
                }
            }
            Message::Status {
                id,
                status,
                current,
                total,
            } => {
                if self.classic.current_step().is_some() {
                    self.classic.status(
                        id.as_deref(),
                        &status,
                        current,
                        total,
                        now,
                        &mut self.scratch,
                    );
                    self.feed_scratch();
                } else {
                    self.drain_tracker();
                    let text = match id {
                        Some(id) => format!("{id}: {status}"),
                        None => status,
                    };
                    self.queue.push_back(BuildEvent::Message(text));
                }
            }
            Message::Error { message, code } => {
                self.classic.error(&message, now, &mut self.scratch);
                self.feed_scratch();
                // The first error wins; the daemon sends one.
                self.error.get_or_insert((message, code));
            }
            Message::Other(line) => {
                self.drain_tracker();
                self.queue.push_back(BuildEvent::Message(
                    String::from_utf8_lossy(&line).into_owned(),
                ));
            }
        }
    }

    /// Feeds one protobuf-encoded BuildKit record that did not come in a body line (e.g. from
    /// a history logs blob, [`crate::recording`]): as a trace line's record, it is handed to the
    /// tracker, and out as a [`BuildEvent::Record`] first when records are asked for. One
    /// that does not decode gives a [`BuildEvent::BadLine`] whose `line` is `position`.
    /// Ignored after [`BuildDecoder::finish`].
    pub fn push_protobuf(&mut self, wire: Bytes, position: u64) {
        if !self.finished {
            self.record(wire, position);
        }
    }

    /// Reports a line of a recording that could not be used (from [`crate::recording`]).
    pub(crate) fn push_bad_line(&mut self, error: LineError) {
        if !self.finished {
            self.bad(error);
        }
    }

    /// The line bound in force.
    pub(crate) fn max_line(&self) -> usize {
        self.lines.max_line()
    }

    /// A trace line: undoes the base64, and hands the record to the tracker (and out as a
    /// [`BuildEvent::Record`] first, when records are asked for).
    fn trace(&mut self, aux: &[u8], line_no: u64) {
        match decode_trace(aux, line_no) {
            Ok(wire) => self.record(wire, line_no),
            Err(e) => self.bad(e),
        }
    }

    /// One record's protobuf bytes, from line (or position) `line_no`.
    fn record(&mut self, wire: Bytes, line_no: u64) {
        if self.records {
            // An undecodable record falls through: the tracker reports it as it does without
            // records.
            if let Ok(record) = StatusResponse::decode(wire.clone()) {
                let record = Arc::new(record);
                self.drain_tracker();
                self.queue
                    .push_back(BuildEvent::Record(Arc::clone(&record)));
                self.tracker.handle_response(StatusResponse::clone(&record));
                return;
            }
        }
        if let Err(source) = self.tracker.handle_protobuf(wire) {
            self.bad(LineError::Trace {
                line: line_no,
                source,
            });
        }
    }

    fn lines_max(&self) -> usize {
        self.lines.max_line()
    }

    fn bad(&mut self, error: LineError) {
        self.drain_tracker();
        self.queue.push_back(BuildEvent::BadLine(error));
    }

    fn feed_scratch(&mut self) {
        for record in self.scratch.drain(..) {
            self.tracker.handle_response(record);
        }
        self.drain_tracker();
    }

    /// Moves the tracker's pending events to the queue; called before the decoder queues an
    /// event of its own, so that the order is kept.
    fn drain_tracker(&mut self) {
        while let Some(e) = self.tracker.poll_event() {
            self.queue.push_back(BuildEvent::Vertex(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use base64::Engine as _;
    use buildkit_proto::{Message as _, Timestamp, Vertex, VertexLog};

    use super::*;

    fn trace_line(record: &StatusResponse) -> String {
        let aux = base64::engine::general_purpose::STANDARD.encode(record.encode_to_vec());
        format!("{{\"id\":\"moby.buildkit.trace\",\"aux\":\"{aux}\"}}\r\n")
    }

    fn decode(body: &[u8], records: bool, chunk: usize) -> Vec<BuildEvent> {
        let mut decoder = BuildDecoder::with_config(DecoderConfig {
            records,
            ..DecoderConfig::default()
        });
        let mut events = Vec::new();
        for piece in body.chunks(chunk.max(1)) {
            decoder.push(Bytes::copy_from_slice(piece), Time(0));
            events.extend(std::iter::from_fn(|| decoder.poll_event()));
        }
        decoder.finish(Time(0));
        events.extend(std::iter::from_fn(|| decoder.poll_event()));
        events
    }

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn records_come_before_the_events_made_from_them_and_only_when_asked_for() {
        let first = StatusResponse {
            vertexes: vec![Vertex {
                digest: "sha256:a".into(),
                name: "[1/1] RUN x".into(),
                started: at(1),
                ..Default::default()
            }],
            ..Default::default()
        };
        let second = StatusResponse {
            vertexes: vec![Vertex {
                digest: "sha256:a".into(),
                name: "[1/1] RUN x".into(),
                started: at(1),
                completed: at(2),
                ..Default::default()
            }],
            logs: vec![VertexLog {
                vertex: "sha256:a".into(),
                stream: 1,
                msg: Bytes::from_static(b"hi\n"),
                timestamp: at(1),
            }],
            ..Default::default()
        };
        let body = format!(
            "{}{}{{\"stream\":\"text\\n\"}}\r\n{{\"id\":\"moby.buildkit.trace\",\"aux\":\"!\"}}\r\n",
            trace_line(&first),
            trace_line(&second)
        );
        let events = decode(body.as_bytes(), true, 7);
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| match e {
                BuildEvent::Record(_) => "record",
                BuildEvent::Vertex(Event::Started(_)) => "started",
                BuildEvent::Vertex(Event::Log(_)) => "log",
                BuildEvent::Vertex(Event::Completed(_)) => "completed",
                BuildEvent::Message(_) => "message",
                BuildEvent::BadLine(_) => "bad",
                BuildEvent::Finished(_) => "finished",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "record",
                "started",
                "record",
                "log",
                "completed",
                "message",
                "bad",
                "finished"
            ]
        );
        assert_eq!(events[0], BuildEvent::Record(Arc::new(first)));
        assert_eq!(events[2], BuildEvent::Record(Arc::new(second)));
        // Without records: the same events, in the same order, and the same bad line.
        let without = decode(body.as_bytes(), false, 7);
        let filtered: Vec<_> = events
            .into_iter()
            .filter(|e| !matches!(e, BuildEvent::Record(_)))
            .collect();
        assert_eq!(without, filtered);
    }

    #[test]
    fn records_leave_the_other_events_of_every_recording_unchanged() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/corpus");
        let mut seen = 0;
        for daemon in std::fs::read_dir(&corpus).unwrap() {
            let daemon = daemon.unwrap().path();
            if !daemon.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&daemon).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_none_or(|e| e != "ndjson") {
                    continue;
                }
                seen += 1;
                let body = std::fs::read(&path).unwrap();
                let with = decode(&body, true, 4093);
                let records = with
                    .iter()
                    .filter(|e| matches!(e, BuildEvent::Record(_)))
                    .count();
                let trace_lines = body
                    .split(|&b| b == b'\n')
                    .filter(|l| l.starts_with(br#"{"id":"moby.buildkit.trace""#))
                    .count();
                assert_eq!(records, trace_lines, "{}", path.display());
                let without = decode(&body, false, 4093);
                let filtered: Vec<_> = with
                    .into_iter()
                    .filter(|e| !matches!(e, BuildEvent::Record(_)))
                    .collect();
                assert!(filtered == without, "{}", path.display());
            }
        }
        assert!(seen >= 46, "{seen} recordings");
    }
}
