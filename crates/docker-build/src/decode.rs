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
    /// Every vertex event of one BuildKit trace record is out: the record is applied. Only
    /// with [`DecoderConfig::boundaries`] (e.g. for a printer that, as BuildKit's, prints
    /// between records, never inside one). Classic-builder text gives none.
    RecordApplied,
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
    /// How much of the build context (the `POST /build` tar body) has been sent. Never made
    /// by the decoder: a live build's caller takes it from the upload's
    /// `stream::UploadProgress` (feature `daemon`) while the body goes out, before and
    /// between the daemon's events.
    ContextUpload(ContextUpload),
}

/// The progress of the build context's upload, for [`BuildEvent::ContextUpload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextUpload {
    /// Bytes of the tar handed to the HTTP connection so far.
    pub sent: u64,
    /// When the first bytes were handed over.
    pub started: Time,
    /// When `sent` was reached (for a finished upload, when the body ended).
    pub at: Time,
    /// The whole context has been handed over.
    pub done: bool,
    /// The builder the context goes to: renderers show BuildKit's `transferring context`
    /// status for [`Builder::BuildKit`](crate::Builder) and the docker CLI's `Sending build
    /// context to Docker daemon` line for the classic builder.
    pub builder: crate::Builder,
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
    /// The id of the image the build produced, as the daemon reported it; `None` when the
    /// build failed (the classic builder reports an id per finished stage, and a failure in a
    /// later stage leaves only intermediate ones, which are not the build's image).
    pub image_id: Option<String>,
    /// The failure, if the build failed.
    pub failure: Option<BuildFailure>,
    /// What the events were decoded from, which decides what [`BuildSummary::succeeded`]
    /// requires.
    pub input: InputKind,
    /// The build's output ([`BuildOptions::outputs`](crate::BuildOptions)) was written in
    /// full: the session's receiver finished the export before the body ended. Set by the live
    /// `BuildStream` of a build with an output; a decoder alone (a
    /// replay) never sets it.
    pub exported: bool,
    /// The client canceled the build ([`BuildDecoder::cancel`]: Ctrl-C, or the build's
    /// stream canceled before the daemon ended it): never a success, whatever came before.
    pub canceled: bool,
}

/// What a [`BuildDecoder`] was fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A `POST /build` response body (at least one of its lines was read): the daemon ends a
    /// successful build by reporting the image id, so without one the build did not succeed.
    Body,
    /// A body of the classic builder (`Step N/M : …` text): as [`InputKind::Body`], and its
    /// text carries no times, so the decoder's times are the arrival times the caller passed
    /// (none in a replay: every time is `Time(0)`, every duration zero).
    ClassicBody,
    /// Bare BuildKit records (the Control API's `Status`, a history logs blob, buildx rawjson)
    /// and no body line: nothing in them reports the image, so a build succeeded when no step
    /// failed and none was left running.
    Records,
}

impl BuildSummary {
    /// Whether the build succeeded. For a body ([`InputKind::Body`]): the daemon reported the
    /// image and no error (steps it never reported complete do not matter then: it built the
    /// image). A body that ends without the image id — while steps run, or between them, the
    /// client having gone away or the connection or recording being cut — is not a success.
    /// For bare records ([`InputKind::Records`]): no step failed and none was left running.
    /// A build the client canceled ([`BuildSummary::canceled`]) never succeeded.
    /// A build with an output ([`BuildOptions::outputs`](crate::BuildOptions)) builds no image:
    /// its body without an error succeeded when the output was written in full
    /// ([`BuildSummary::exported`]).
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
    /// // Every step reported complete, but the body ends before the daemon's image id.
    /// let between = "{\"stream\":\"Step 1/2 : FROM scratch\\n\"}\r\n{\"stream\":\"Step 2/2 : ENV A=1\\n\"}\r\n";
    /// assert!(!finished(between).succeeded());
    /// let failed = "{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\r\n";
    /// assert!(!finished(failed).succeeded());
    /// ```
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
            && !self.canceled
            && match self.input {
                InputKind::Body | InputKind::ClassicBody => {
                    self.image_id.is_some() || self.exported
                }
                InputKind::Records => self.interrupted().next().is_none(),
            }
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
    /// Also emit [`BuildEvent::RecordApplied`] after the vertex events of every decoded
    /// BuildKit trace record (default `false`).
    pub boundaries: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            max_line: DEFAULT_MAX_LINE,
            tracker: Default::default(),
            records: false,
            boundaries: false,
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
    /// The classic builder's id of its latest finished stage: the build's image only if no
    /// error follows (see [`BuildSummary::image_id`]).
    stage_image: Option<String>,
    /// A body line was read ([`InputKind::Body`]).
    body: bool,
    /// A classic-builder step was seen ([`InputKind::ClassicBody`]).
    classic_body: bool,
    error: Option<(String, Option<i64>)>,
    finished: bool,
    /// Emit [`BuildEvent::Record`]s.
    records: bool,
    /// Emit [`BuildEvent::RecordApplied`]s.
    boundaries: bool,
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
            stage_image: None,
            body: false,
            classic_body: false,
            error: None,
            finished: false,
            records: config.records,
            boundaries: config.boundaries,
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
        self.record_applied();
    }

    /// After a record's vertex events, [`BuildEvent::RecordApplied`] when asked for.
    fn record_applied(&mut self) {
        if self.boundaries {
            self.drain_tracker();
            self.queue.push_back(BuildEvent::RecordApplied);
        }
    }

    /// The end of the body: flushes partial lines, reports unfinished vertices as interrupted,
    /// the failure if any, and [`BuildEvent::Finished`]. Later calls do nothing.
    pub fn finish(&mut self, now: Time) {
        self.end(now, false);
    }

    /// The end of the body because the client canceled the build (Ctrl-C, see
    /// `BuildStream::cancel`): as [`BuildDecoder::finish`], but unfinished vertices complete
    /// [`Outcome::Canceled`], as BuildKit reports the steps of a canceled build
    /// (`Tracker::cancel`). Later calls, and calls after `finish`, do nothing.
    pub fn cancel(&mut self, now: Time) {
        self.end(now, true);
    }

    fn end(&mut self, now: Time, canceled: bool) {
        if self.finished {
            return;
        }
        if let Some(line) = self.lines.finish() {
            self.line(line, now);
        }
        self.classic.finish(now, &mut self.scratch);
        self.feed_scratch();
        self.finished = true;
        if self.error.is_none() {
            self.stage_image_built();
        }
        let summary = if canceled {
            self.tracker.cancel()
        } else {
            self.tracker.finish()
        };
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
                image_id: if failure.is_none() {
                    self.image_id.clone()
                } else {
                    None
                },
                failure,
                input: if self.classic_body {
                    InputKind::ClassicBody
                } else if self.body {
                    InputKind::Body
                } else {
                    InputKind::Records
                },
                exported: false,
                canceled,
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
        self.body = true;
        match message {
            Message::Trace(aux) => self.trace(&aux, line_no),
            Message::ImageId(id) if self.classic.current_step().is_some() => {
                // A classic stage's image: the build's only if no error follows.
                self.stage_image = Some(id);
            }
            Message::ImageId(id) => {
                self.drain_tracker();
                self.image_id = Some(id.clone());
                self.queue.push_back(BuildEvent::ImageBuilt { id });
            }
            Message::Stream(text) => {
                let messages = self.classic.text(&text, now, &mut self.scratch);
                self.classic_body |= self.classic.current_step().is_some();
                self.feed_scratch();
                if messages
                    .iter()
                    .any(|m| m.starts_with("Successfully built "))
                {
                    self.stage_image_built();
                }
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

    /// The classic builder's latest stage image is the build's: reports it.
    fn stage_image_built(&mut self) {
        if let Some(id) = self.stage_image.take() {
            self.drain_tracker();
            self.image_id = Some(id.clone());
            self.queue.push_back(BuildEvent::ImageBuilt { id });
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
                self.record_applied();
                return;
            }
        }
        match self.tracker.handle_protobuf(wire) {
            Ok(()) => self.record_applied(),
            Err(source) => self.bad(LineError::Trace {
                line: line_no,
                source,
            }),
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

    /// The last event of a decoded body: its summary.
    fn finished(body: &str) -> BuildSummary {
        match decode(body.as_bytes(), false, body.len().max(1)).pop() {
            Some(BuildEvent::Finished(summary)) => *summary,
            other => panic!("the last event is not Finished: {other:?}"),
        }
    }

    #[test]
    fn a_classic_stage_id_is_the_image_only_when_no_error_follows() {
        let stage_one = concat!(
            "{\"stream\":\"Step 1/4 : FROM base AS first\\n\"}\r\n",
            "{\"stream\":\"Step 2/4 : RUN true\\n\"}\r\n",
            "{\"aux\":{\"ID\":\"sha256:stage1\"}}\r\n",
            "{\"stream\":\"Step 3/4 : FROM base\\n\"}\r\n",
            "{\"stream\":\"Step 4/4 : RUN exit 5\\n\"}\r\n",
        );
        let failed = format!(
            "{stage_one}{{\"errorDetail\":{{\"code\":5,\"message\":\"exit 5\"}},\"error\":\"exit 5\"}}\r\n"
        );
        let events = decode(failed.as_bytes(), false, 7);
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, BuildEvent::ImageBuilt { .. })),
            "{events:#?}"
        );
        let summary = finished(&failed);
        assert_eq!(summary.input, InputKind::ClassicBody);
        assert_eq!(summary.image_id, None);
        assert!(!summary.succeeded());

        let built = format!(
            "{stage_one}{{\"aux\":{{\"ID\":\"sha256:final\"}}}}\r\n{{\"stream\":\"Successfully built final\\n\"}}\r\n"
        );
        let events = decode(built.as_bytes(), false, 5);
        let ids: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                BuildEvent::ImageBuilt { id } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(ids, ["sha256:final"]);
        // Reported before the daemon's own `Successfully built`, as before.
        let image = events
            .iter()
            .position(|e| matches!(e, BuildEvent::ImageBuilt { .. }));
        let message = events.iter().position(
            |e| matches!(e, BuildEvent::Message(m) if m.starts_with("Successfully built")),
        );
        assert!(image < message && message.is_some(), "{events:#?}");
        let summary = finished(&built);
        assert_eq!(summary.image_id.as_deref(), Some("sha256:final"));
        assert!(summary.succeeded());
        // A body cut after the last stage's id but before the daemon's closing words still
        // names that id: no error followed it.
        assert_eq!(
            finished(&format!(
                "{stage_one}{{\"aux\":{{\"ID\":\"sha256:final\"}}}}\r\n"
            ))
            .image_id
            .as_deref(),
            Some("sha256:final")
        );
    }

    #[test]
    fn a_body_without_the_image_id_is_no_success_even_between_steps() {
        let mut record = StatusResponse::default();
        record.vertexes.push(Vertex {
            digest: "sha256:a".into(),
            name: "[1/1] RUN true".into(),
            started: at(1),
            completed: at(2),
            ..Default::default()
        });
        let body = trace_line(&record);
        let summary = finished(&body);
        assert_eq!(summary.input, InputKind::Body);
        assert_eq!(summary.interrupted().count(), 0);
        assert!(!summary.succeeded(), "no image id, no success");
        let with_image =
            format!("{body}{{\"id\":\"moby.image.id\",\"aux\":{{\"ID\":\"sha256:i\"}}}}\r\n");
        assert!(finished(&with_image).succeeded());

        // The same record without a body (Control API, history blob, rawjson): no image id
        // is ever reported there, so every step completing is the success.
        let mut decoder = BuildDecoder::new();
        decoder.push_record(record);
        decoder.finish(Time(0));
        let summary = std::iter::from_fn(|| decoder.poll_event())
            .find_map(|e| match e {
                BuildEvent::Finished(s) => Some(s),
                _ => None,
            })
            .expect("finished");
        assert_eq!(summary.input, InputKind::Records);
        assert!(summary.succeeded());
    }

    /// A build the client canceled is no success, also when nothing came yet (Ctrl-C while
    /// the context uploads) and for bare records whose steps all completed.
    #[test]
    fn a_canceled_build_never_succeeded() {
        let mut empty = BuildDecoder::new();
        empty.cancel(Time(0));
        let Some(BuildEvent::Finished(summary)) = std::iter::from_fn(|| empty.poll_event()).last()
        else {
            panic!("no Finished");
        };
        assert!(summary.canceled && !summary.succeeded());

        let done = StatusResponse {
            vertexes: vec![Vertex {
                digest: "sha256:a".into(),
                name: "[1/1] FROM base".into(),
                started: at(1),
                completed: at(2),
                ..Default::default()
            }],
            ..Default::default()
        };
        for canceled in [false, true] {
            let mut decoder = BuildDecoder::new();
            decoder.push_record(done.clone());
            if canceled {
                decoder.cancel(Time(0));
            } else {
                decoder.finish(Time(0));
            }
            let Some(BuildEvent::Finished(summary)) =
                std::iter::from_fn(|| decoder.poll_event()).last()
            else {
                panic!("no Finished");
            };
            assert_eq!(summary.input, InputKind::Records);
            assert_eq!(summary.succeeded(), !canceled);
        }
    }

    /// Issue 15, item 2: a build the client canceled (Ctrl-C) shows its running steps
    /// canceled, as BuildKit reports them, where a body that just ended shows them
    /// interrupted; either way `Finished` is last and no success.
    #[test]
    fn a_canceled_body_completes_its_running_steps_canceled() {
        let record = StatusResponse {
            vertexes: vec![
                Vertex {
                    digest: "sha256:a".into(),
                    name: "[1/2] FROM base".into(),
                    started: at(1),
                    completed: at(2),
                    ..Default::default()
                },
                Vertex {
                    digest: "sha256:b".into(),
                    name: "[2/2] RUN sleep 120".into(),
                    started: at(2),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        for (canceled, outcome) in [(true, Outcome::Canceled), (false, Outcome::Interrupted)] {
            let mut decoder = BuildDecoder::new();
            decoder.push(trace_line(&record), Time(0));
            if canceled {
                decoder.cancel(Time(0));
            } else {
                decoder.finish(Time(0));
            }
            let events: Vec<_> = std::iter::from_fn(|| decoder.poll_event()).collect();
            let ends: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    BuildEvent::Vertex(Event::Completed(c)) => {
                        Some((c.digest.to_string(), c.outcome.clone()))
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(
                ends,
                [
                    ("sha256:a".to_string(), Outcome::Done),
                    ("sha256:b".to_string(), outcome)
                ]
            );
            let Some(BuildEvent::Finished(summary)) = events.last() else {
                panic!("{events:?}");
            };
            assert!(!summary.succeeded());
        }
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

        // Boundaries: `RecordApplied` after each record's events, the rest unchanged.
        let mut decoder = BuildDecoder::with_config(DecoderConfig {
            boundaries: true,
            ..DecoderConfig::default()
        });
        decoder.push(body, Time(0));
        decoder.finish(Time(0));
        let bounded: Vec<_> = std::iter::from_fn(|| decoder.poll_event()).collect();
        let ends: Vec<usize> = bounded
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, BuildEvent::RecordApplied))
            .map(|(i, _)| i)
            .collect();
        // After `started`, and after `log, completed`; none for the undecodable record.
        assert_eq!(ends, [1, 4]);
        let unbounded: Vec<_> = bounded
            .into_iter()
            .filter(|e| !matches!(e, BuildEvent::RecordApplied))
            .collect();
        assert_eq!(unbounded, without);
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
