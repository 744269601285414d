//! The sans-IO state machine: records in, events out.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use buildkit_proto::{
    Message as _, StatusResponse, Vertex, VertexLog, VertexStatus, VertexWarning,
};
use bytes::Bytes;

use crate::error::RecordError;
use crate::event::{
    Elapsed, Event, LineEnd, LogLine, Outcome, Progress, Stream, Time, VertexCompleted,
    VertexStarted, Warning,
};
use crate::intervals::{Insert, Intervals, Span};
use crate::lines::{LineBuf, Piece, is_clip_notice};
use crate::order::{Deferred, Keys, in_time_order};
use crate::summary::{FailedVertex, OutcomeCounts, Step, Summary};

/// How many distinct warnings the tracker remembers to report a repeated one once (the
/// latest ones; 8 bytes each).
const WARNINGS_REMEMBERED: usize = 1024;

/// How many statuses a vertex keeps to compare repeats with before it forgets the completed
/// ones.
const STATUSES_REMEMBERED: usize = 256;

/// Tracker settings.
///
/// ```
/// use buildkit_events::{Config, Tracker};
/// let tracker = Tracker::with_config(Config { max_line_len: 64 * 1024, ..Config::default() });
/// # let _ = tracker;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Longest [`LogLine`] emitted, in bytes (default 1 MiB). A longer line comes out in
    /// pieces ending in [`LineEnd::Split`](crate::LineEnd::Split), so a partial line never
    /// buffers more than this per (vertex, stream). Values below 1 count as 1.
    pub max_line_len: usize,
    /// How many of its most recent log lines each vertex keeps for
    /// [`VertexInfo::recent_logs`] and [`Summary::failed`] (default 10, like BuildKit's
    /// printer). While a vertex runs, the kept lines share the record buffers they came from
    /// (no copy per line); they are copied out when it completes, so a finished vertex pins
    /// no record. The tail of a vertex that completes without failing is dropped.
    pub log_tail_lines: usize,
    /// Longest kept line of that tail, in bytes (default 4 KiB): a longer one is kept cut to
    /// this length (a copy, so that a kept piece of a long line does not pin its buffer).
    /// Bounds the tail at `log_tail_lines × log_tail_line_bytes` per running vertex.
    pub log_tail_line_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_line_len: 1024 * 1024,
            log_tail_lines: 10,
            log_tail_line_bytes: 4 * 1024,
        }
    }
}

/// Where a vertex stands, as far as the records seen so far tell.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VertexState {
    /// Described (name, inputs) but never started.
    Pending,
    /// Started and not completed: a [`Event::Started`] without its [`Event::Completed`].
    Running,
    /// Not running; the outcome of its latest interval.
    Completed(Outcome),
}

/// A vertex's progress group (`pb.ProgressGroup`, BuildKit ≥ v0.10), as a renderer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressGroup {
    /// Group id; the printer shows one pseudo-vertex per id.
    pub id: String,
    /// Group display name.
    pub name: String,
    /// A weak member alone does not reveal the group.
    pub weak: bool,
}

/// What the tracker knows about one vertex, for renderers (see [`Tracker::vertex`]).
///
/// The public fields mirror the latest snapshot that was applied (a pending snapshot never
/// overwrites a started vertex; a stale one is ignored), plus what the tracker derived.
#[derive(Debug, Clone)]
pub struct VertexInfo {
    /// The vertex digest, e.g. `sha256:…`.
    pub digest: Arc<str>,
    /// Display name, e.g. `[2/3] RUN echo hi`.
    pub name: String,
    /// Digests of the vertices this one consumes.
    pub inputs: Vec<String>,
    /// The latest snapshot said the vertex was served from cache.
    pub cached: bool,
    /// The latest snapshot's error text, if any.
    pub error: Option<String>,
    /// The vertex's progress group, if it belongs to one.
    pub progress_group: Option<ProgressGroup>,
    /// Pending, running, or completed with the latest interval's outcome.
    pub state: VertexState,
    /// Start of the first interval, if it ever started.
    pub first_started: Option<Time>,
    /// End of the latest completed interval.
    pub last_completed: Option<Time>,
    /// How many intervals have started (the next [`VertexStarted::interval`] is this number).
    pub intervals: u32,
    pub(crate) inner: VertexInner,
}

/// The tracker's private bookkeeping of a vertex.
#[derive(Debug, Clone, Default)]
pub(crate) struct VertexInner {
    /// A vertex record has described it (entries can also come from logs or statuses).
    described: bool,
    pub(crate) intervals: Intervals,
    /// The latest interval announced by events: `stop == None` while running.
    reported: Option<Span>,
    /// Open part of an interval that `finish` closed as interrupted.
    interrupted_extra: u128,
    streams: Vec<(Stream, LineBuf)>,
    /// The last lines, kept without their digest (the vertex's own): a line costs no
    /// allocation to remember.
    tail: VecDeque<TailLine>,
    statuses: HashMap<String, StatusSnapshot>,
    /// A completion of this vertex waits in [`Tracker::apply_by_time`]'s `deferred`.
    completion_deferred: bool,
}

/// A [`LogLine`] of the vertex's tail, less the digest.
#[derive(Debug, Clone)]
struct TailLine {
    stream: Stream,
    bytes: Bytes,
    end: LineEnd,
    timestamp: Time,
    clipped_notice: bool,
}

impl TailLine {
    fn to_line(&self, digest: &Arc<str>) -> LogLine {
        LogLine {
            digest: Arc::clone(digest),
            stream: self.stream,
            bytes: self.bytes.clone(),
            end: self.end,
            timestamp: self.timestamp,
            clipped_notice: self.clipped_notice,
        }
    }
}

/// The fields of a status whose change is reported (everything but the timestamp).
#[derive(Debug, Clone, PartialEq, Eq)]
struct StatusSnapshot {
    action: String,
    current: i64,
    total: i64,
    started: Option<Time>,
    completed: Option<Time>,
}

/// A state change of one vertex found while applying a snapshot.
#[derive(Debug, Clone, Copy)]
enum Transition {
    Start { at: i128 },
    Complete { start: i128, stop: i128 },
}

impl VertexInfo {
    fn new(digest: String) -> Self {
        VertexInfo {
            digest: digest.into(),
            name: String::new(),
            inputs: Vec::new(),
            cached: false,
            error: None,
            progress_group: None,
            state: VertexState::Pending,
            first_started: None,
            last_completed: None,
            intervals: 0,
            inner: VertexInner::default(),
        }
    }

    /// Sum of the merged closed intervals (BuildKit's `DONE x.xs`); a running interval is not
    /// counted until it completes.
    pub fn duration(&self) -> Elapsed {
        Elapsed(
            self.inner
                .intervals
                .closed_total()
                .saturating_add(self.inner.interrupted_extra),
        )
    }

    /// The vertex's most recent log lines (all streams, oldest first), at most
    /// [`Config::log_tail_lines`], each cut to [`Config::log_tail_line_bytes`]. Empty once the
    /// vertex has completed without failing.
    pub fn recent_logs(&self) -> impl ExactSizeIterator<Item = LogLine> + '_ {
        self.inner.tail.iter().map(|l| l.to_line(&self.digest))
    }

    /// The merged intervals, an open one ending at the latest completion.
    fn runs(&self) -> Vec<(Time, Time)> {
        let end = self.last_completed.unwrap_or_default();
        self.inner
            .intervals
            .merged()
            .iter()
            .map(|s| (Time(s.start), Time(s.stop.unwrap_or(end.0).max(s.start))))
            .collect()
    }

    fn is_started(&self) -> bool {
        !self.inner.intervals.merged().is_empty()
    }

    fn outcome(&self) -> Outcome {
        match &self.error {
            None if self.cached => Outcome::Cached,
            None => Outcome::Done,
            Some(e) if e.ends_with("context canceled") => Outcome::Canceled,
            Some(e) => Outcome::Failed(e.clone()),
        }
    }

    fn set_fields(&mut self, v: Vertex) {
        self.inner.described = true;
        self.name = v.name;
        self.inputs = v.inputs;
        self.cached = v.cached;
        self.error = (!v.error.is_empty()).then_some(v.error);
        self.progress_group = v.progress_group.map(|g| ProgressGroup {
            id: g.id,
            name: g.name,
            weak: g.weak,
        });
    }

    /// Compares the merged intervals with what events have announced and returns the
    /// transitions that bring the announcements up to date. `key` is the start of the
    /// interval the snapshot just applied.
    fn reconcile(&mut self, key: i128) -> Vec<Transition> {
        let merged = self.inner.intervals.merged();
        let mut out = Vec::new();
        let Some(last) = merged.last().copied() else {
            return out;
        };
        let mut cursor = None;
        if let Some(rep) = self.inner.reported {
            match rep.stop {
                None => {
                    // Running: did the merged interval holding the announced start close?
                    let holder = merged
                        .iter()
                        .rev()
                        .find(|s| s.start <= rep.start)
                        .unwrap_or(&merged[0]);
                    let Some(stop) = holder.stop else {
                        return out;
                    };
                    let stop = stop.max(rep.start);
                    out.push(Transition::Complete {
                        start: rep.start,
                        stop,
                    });
                    self.inner.reported = Some(Span {
                        start: rep.start,
                        stop: Some(stop),
                    });
                    cursor = Some(stop);
                }
                Some(stop) => cursor = Some(stop),
            }
        }
        // Intervals wholly after the last announced one are new runs.
        for span in merged {
            if cursor.is_some_and(|c| span.start <= c) {
                continue;
            }
            out.push(Transition::Start { at: span.start });
            self.inner.reported = Some(Span {
                start: span.start,
                stop: None,
            });
            let Some(stop) = span.stop else {
                return out;
            };
            // A completion before the start (clock skew) is reported at the start.
            let stop = stop.max(span.start);
            out.push(Transition::Complete {
                start: span.start,
                stop,
            });
            self.inner.reported = Some(Span {
                start: span.start,
                stop: Some(stop),
            });
            cursor = Some(stop);
        }
        // An open interval overlapping the last announced one re-opened it: a restart.
        if last.stop.is_none() {
            let at = key.max(last.start);
            out.push(Transition::Start { at });
            self.inner.reported = Some(Span {
                start: at,
                stop: None,
            });
        }
        out
    }
}

/// The sizes of the tracker's collections, for the tests that bound its memory.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footprint {
    pub(crate) vertices: usize,
    pub(crate) start_order: usize,
    pub(crate) warnings: usize,
    pub(crate) statuses: usize,
    pub(crate) streams: usize,
    pub(crate) intervals: usize,
    pub(crate) tail_lines: usize,
}

#[cfg(test)]
impl Tracker {
    pub(crate) fn footprint(&self) -> Footprint {
        let sum = |f: fn(&VertexInfo) -> usize| self.vertices.iter().map(f).sum();
        assert_eq!(self.warnings_seen.len(), self.warnings_order.len());
        Footprint {
            vertices: self.vertices.len().max(self.index.len()),
            start_order: self.start_order.len(),
            warnings: self.warnings_seen.len(),
            statuses: sum(|v| v.inner.statuses.len()),
            streams: sum(|v| v.inner.streams.len()),
            intervals: sum(|v| v.inner.intervals.raw_len() + v.inner.intervals.merged().len()),
            tail_lines: sum(|v| v.inner.tail.len()),
        }
    }
}

/// The sans-IO tracker: feed it BuildKit `StatusResponse` records, poll [`Event`]s.
///
/// See the [crate documentation](crate) for the semantics and an example.
#[derive(Debug)]
pub struct Tracker {
    config: Config,
    records: u64,
    vertices: Vec<VertexInfo>,
    index: HashMap<String, usize>,
    /// The slot [`Tracker::slot`] returned last.
    last_slot: Option<usize>,
    start_order: Vec<usize>,
    queue: VecDeque<Event>,
    /// Hashes of the warnings reported, the latest [`WARNINGS_REMEMBERED`] of them, in a set
    /// and in the order they came (to forget the oldest).
    warnings_seen: HashSet<u64>,
    warnings_order: VecDeque<u64>,
    latest: Option<Time>,
    first_start: Option<Time>,
    last_completion: Option<Time>,
    first_failed: Option<usize>,
    pieces: Vec<Piece>,
    /// The completions waiting inside the record being applied (empty between records).
    deferred: Deferred,
    /// The keys of the record being applied out of its layout (buffers reused).
    keys: Keys,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

impl Tracker {
    /// A tracker with the default [`Config`].
    pub fn new() -> Self {
        Tracker::with_config(Config::default())
    }

    /// A tracker with the given settings.
    pub fn with_config(config: Config) -> Self {
        Tracker {
            config,
            records: 0,
            vertices: Vec::new(),
            index: HashMap::new(),
            last_slot: None,
            start_order: Vec::new(),
            queue: VecDeque::new(),
            warnings_seen: HashSet::new(),
            warnings_order: VecDeque::new(),
            latest: None,
            first_start: None,
            last_completion: None,
            first_failed: None,
            pieces: Vec::new(),
            deferred: Deferred::default(),
            keys: Keys::default(),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many records have been offered so far (decoded or not).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Applies one decoded record and queues the events it causes, in the order of the times
    /// inside the record (see the crate docs, *Within one record*).
    pub fn handle_response(&mut self, response: StatusResponse) {
        self.records += 1;
        if in_time_order(&response) {
            // The common record: logs (and statuses) of running vertices, already in time
            // order. Nothing to sort, nothing to defer.
            for s in response.statuses {
                self.apply_status(s);
            }
            for l in response.logs {
                self.apply_log(l);
            }
        } else {
            self.apply_by_time(response);
        }
    }

    /// Applies a record's items in the order of their keys ([`Keys::compute`]) and emits each
    /// completion once the items before its time (and its own vertex's items) are applied.
    fn apply_by_time(&mut self, response: StatusResponse) {
        let mut keys = std::mem::take(&mut self.keys);
        keys.compute(&response);
        let order = &mut keys.order;
        // Stable: equal keys keep the record's layout (vertices, statuses, logs, warnings).
        if !order.is_sorted_by_key(|&(key, _)| key) {
            order.sort_by_key(|&(key, _)| key);
        }
        let StatusResponse {
            mut vertexes,
            mut statuses,
            mut logs,
            mut warnings,
        } = response;
        let (nv, ns, nl) = (vertexes.len(), statuses.len(), logs.len());
        let mut deferred = std::mem::take(&mut self.deferred);
        for &(key, layout) in &keys.order {
            let i = layout as usize;
            let digest = if i < nv {
                &vertexes[i].digest
            } else if i < nv + ns {
                &statuses[i - nv].vertex
            } else if i < nv + ns + nl {
                &logs[i - nv - ns].vertex
            } else {
                &warnings[i - nv - ns - nl].vertex
            };
            while let Some((idx, event)) = deferred.pop_due(key, digest) {
                self.emit_completed(idx, event);
            }
            // Each item is taken out of its list once, leaving a default in its place.
            if i < nv {
                let v = std::mem::take(&mut vertexes[i]);
                self.apply_vertex(v, keys.completion_floor[i], &mut deferred);
            } else if i < nv + ns {
                self.apply_status(std::mem::take(&mut statuses[i - nv]));
            } else if i < nv + ns + nl {
                self.apply_log(std::mem::take(&mut logs[i - nv - ns]));
            } else {
                self.apply_warning(std::mem::take(&mut warnings[i - nv - ns - nl]));
            }
        }
        while let Some((idx, event)) = deferred.pop_first() {
            self.emit_completed(idx, event);
        }
        // Keep the buffers of ordinary records; let go of those a huge record grew.
        if !keys.is_large() {
            self.keys = keys;
        }
        if deferred.is_small() {
            self.deferred = deferred;
        }
    }

    /// Decodes one protobuf-encoded `StatusResponse` and applies it. Log payloads become
    /// slices of `bytes`, not copies.
    ///
    /// # Errors
    /// [`RecordError::Protobuf`] if the bytes are not a `StatusResponse`; the tracker is
    /// unchanged except that the record counts towards [`Tracker::records`].
    pub fn handle_protobuf(&mut self, bytes: Bytes) -> Result<(), RecordError> {
        let record = self.records;
        let len = bytes.len();
        match StatusResponse::decode(bytes) {
            Ok(response) => {
                self.handle_response(response);
                Ok(())
            }
            Err(source) => {
                self.records += 1;
                Err(RecordError::Protobuf {
                    record,
                    len,
                    source,
                })
            }
        }
    }

    /// The next queued event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.queue.pop_front()
    }

    /// Ends the input: flushes partial log lines, completes every running vertex with
    /// [`Outcome::Interrupted`] (at the latest time seen in the input) and returns the
    /// [`Summary`]. Poll the queued events afterwards. Calling it again queues nothing new
    /// and returns the same summary.
    pub fn finish(&mut self) -> Summary {
        self.end(Outcome::Interrupted)
    }

    /// Ends the input because the client canceled the build (Ctrl-C): as [`Tracker::finish`],
    /// but every running vertex completes [`Outcome::Canceled`], as BuildKit reports a vertex
    /// whose build was canceled (its error `context canceled`), since the daemon's own records
    /// of that no longer reach a client that left.
    pub fn cancel(&mut self) -> Summary {
        self.end(Outcome::Canceled)
    }

    fn end(&mut self, outcome: Outcome) -> Summary {
        let end = self.latest.unwrap_or_default();
        for pos in 0..self.start_order.len() {
            let idx = self.start_order[pos];
            let vx = &mut self.vertices[idx];
            let Some(rep) = vx.inner.reported.filter(|r| r.stop.is_none()) else {
                continue;
            };
            let completed = end.0.max(rep.start);
            let open_from = match vx.inner.intervals.merged().last() {
                Some(last) if last.stop.is_none() => last.start,
                _ => rep.start,
            };
            let extra = Time(completed)
                .saturating_duration_since(Time(open_from))
                .as_nanos();
            vx.inner.interrupted_extra = extra;
            vx.inner.reported = Some(Span {
                start: rep.start,
                stop: Some(completed),
            });
            let event = VertexCompleted {
                digest: vx.digest.clone(),
                name: vx.name.clone(),
                outcome: outcome.clone(),
                started: Time(rep.start),
                completed: Time(completed),
                duration: vx.duration(),
                interval: vx.intervals.saturating_sub(1),
            };
            self.emit_completed(idx, event);
        }
        for idx in 0..self.vertices.len() {
            self.flush_lines(idx);
        }
        self.summary()
    }

    /// What is known about a vertex a vertex record has described.
    pub fn vertex(&self, digest: &str) -> Option<&VertexInfo> {
        let idx = *self.index.get(digest)?;
        let vx = &self.vertices[idx];
        vx.inner.described.then_some(vx)
    }

    /// Every vertex that has started and not completed, in the order they first started.
    pub fn running(&self) -> impl Iterator<Item = &VertexInfo> + '_ {
        self.start_order
            .iter()
            .map(|&idx| &self.vertices[idx])
            .filter(|v| v.state == VertexState::Running)
    }

    /// All described vertices, in the order the tracker first heard of their digests.
    pub fn vertices(&self) -> impl Iterator<Item = &VertexInfo> + '_ {
        self.vertices.iter().filter(|v| v.inner.described)
    }

    /// The summary so far ([`Tracker::finish`] returns the final one).
    pub fn summary(&self) -> Summary {
        let mut counts = OutcomeCounts::default();
        let mut steps = Vec::with_capacity(self.start_order.len());
        for &idx in &self.start_order {
            let vx = &self.vertices[idx];
            let VertexState::Completed(outcome) = &vx.state else {
                continue;
            };
            counts.add(outcome);
            steps.push(Step {
                digest: vx.digest.clone(),
                name: vx.name.clone(),
                inputs: vx.inputs.clone(),
                outcome: outcome.clone(),
                duration: vx.duration(),
                intervals: vx.intervals,
                first_started: vx.first_started.unwrap_or_default(),
                last_completed: vx.last_completed.unwrap_or_default(),
                runs: vx.runs(),
            });
        }
        let pending = self
            .vertices
            .iter()
            .filter(|v| v.inner.described && !v.is_started())
            .count();
        let wall_time = match (self.first_start, self.last_completion) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Elapsed(0),
        };
        let failed = self.first_failed.map(|idx| {
            let vx = &self.vertices[idx];
            FailedVertex {
                digest: vx.digest.clone(),
                name: vx.name.clone(),
                error: vx.error.clone().unwrap_or_default(),
                last_lines: vx.recent_logs().collect(),
            }
        });
        Summary {
            counts,
            pending,
            first_started: self.first_start,
            last_completed: self.last_completion,
            wall_time,
            steps,
            failed,
        }
    }

    fn observe(&mut self, t: Time) {
        if self.latest.is_none_or(|l| t > l) {
            self.latest = Some(t);
        }
    }

    fn observe_opt(&mut self, t: &Option<buildkit_proto::Timestamp>) -> Option<Time> {
        let t = t.as_ref().map(Time::from)?;
        self.observe(t);
        Some(t)
    }

    fn slot(&mut self, digest: String) -> usize {
        // Consecutive items of a record mostly name the same vertex: compare before hashing.
        if let Some(idx) = self.last_slot {
            if *self.vertices[idx].digest == *digest {
                return idx;
            }
        }
        let idx = match self.index.get(digest.as_str()) {
            Some(&idx) => idx,
            None => {
                let idx = self.vertices.len();
                self.index.insert(digest.clone(), idx);
                self.vertices.push(VertexInfo::new(digest));
                idx
            }
        };
        self.last_slot = Some(idx);
        idx
    }

    /// Applies one vertex snapshot. The completion that ends its transitions waits in
    /// `deferred` until the record reaches its time, and at least `floor` (the latest key of
    /// the snapshot's own logs, statuses and warnings in the record).
    fn apply_vertex(&mut self, mut v: Vertex, floor: Option<i128>, deferred: &mut Deferred) {
        let started = self.observe_opt(&v.started);
        let completed = self.observe_opt(&v.completed);
        let idx = self.slot(std::mem::take(&mut v.digest));
        let vx = &mut self.vertices[idx];
        let Some(started) = started else {
            // A pending snapshot never resets a started vertex.
            if !vx.is_started() {
                vx.set_fields(v);
            }
            return;
        };
        if vx.inner.intervals.insert(started.0, completed.map(|t| t.0)) == Insert::Stale {
            return;
        }
        vx.inner.interrupted_extra = 0;
        vx.set_fields(v);
        let transitions = vx.reconcile(started.0);
        if transitions.is_empty() {
            return;
        }
        if self.vertices[idx].inner.completion_deferred {
            if let Some(earlier) = deferred.take(idx) {
                self.emit_completed(idx, earlier);
            }
        }
        let last = transitions.len() - 1;
        for (k, transition) in transitions.into_iter().enumerate() {
            let vx = &mut self.vertices[idx];
            match transition {
                Transition::Start { at } => {
                    let at = Time(at);
                    let interval = vx.intervals;
                    vx.intervals = vx.intervals.saturating_add(1);
                    vx.state = VertexState::Running;
                    if vx.first_started.is_none() {
                        vx.first_started = Some(at);
                        self.start_order.push(idx);
                    }
                    let event = VertexStarted {
                        digest: vx.digest.clone(),
                        name: vx.name.clone(),
                        inputs: vx.inputs.clone(),
                        started: at,
                        interval,
                    };
                    if self.first_start.is_none_or(|f| at < f) {
                        self.first_start = Some(at);
                    }
                    self.queue.push_back(Event::Started(event));
                }
                Transition::Complete { start, stop } => {
                    let event = VertexCompleted {
                        digest: vx.digest.clone(),
                        name: vx.name.clone(),
                        outcome: vx.outcome(),
                        started: Time(start),
                        completed: Time(stop),
                        duration: Elapsed(vx.inner.intervals.closed_total_until(stop)),
                        interval: vx.intervals.saturating_sub(1),
                    };
                    if k == last {
                        let due = stop.max(floor.unwrap_or(i128::MIN));
                        vx.inner.completion_deferred = true;
                        deferred.push(due, idx, event);
                    } else {
                        self.emit_completed(idx, event);
                    }
                }
            }
        }
    }

    /// Flushes the vertex's partial lines, records the completion and queues the event.
    fn emit_completed(&mut self, idx: usize, event: VertexCompleted) {
        self.flush_lines(idx);
        let vx = &mut self.vertices[idx];
        vx.inner.completion_deferred = false;
        // The flushed line buffers are empty: a later run starts afresh.
        vx.inner.streams = Vec::new();
        vx.state = VertexState::Completed(event.outcome.clone());
        vx.last_completed = Some(event.completed);
        if event.outcome.is_failed() {
            // Keep the failed step's last lines, but let go of the record buffers they
            // point into.
            for line in vx.inner.tail.iter_mut() {
                line.bytes = Bytes::copy_from_slice(&line.bytes);
            }
        } else {
            // Nobody asks for the output of a step that did not fail: bound the memory of
            // builds with many steps.
            vx.inner.tail = VecDeque::new();
        }
        if event.outcome.is_failed() && self.first_failed.is_none() {
            self.first_failed = Some(idx);
        }
        if self.last_completion.is_none_or(|l| event.completed > l) {
            self.last_completion = Some(event.completed);
        }
        self.queue.push_back(Event::Completed(event));
    }

    fn flush_lines(&mut self, idx: usize) {
        let mut pieces = std::mem::take(&mut self.pieces);
        for s in 0..self.vertices[idx].inner.streams.len() {
            let (stream, buf) = &mut self.vertices[idx].inner.streams[s];
            let stream = *stream;
            buf.flush(&mut pieces);
            for piece in pieces.drain(..) {
                self.push_line(idx, stream, piece);
            }
        }
        self.pieces = pieces;
    }

    fn push_line(&mut self, idx: usize, stream: Stream, piece: Piece) {
        let tail_len = self.config.log_tail_lines;
        let vx = &mut self.vertices[idx];
        let clipped_notice = piece.whole_line && is_clip_notice(&piece.bytes);
        if tail_len > 0 {
            if vx.inner.tail.len() >= tail_len {
                vx.inner.tail.pop_front();
            }
            let cap = self.config.log_tail_line_bytes;
            let kept = if piece.bytes.len() > cap {
                Bytes::copy_from_slice(&piece.bytes[..cap])
            } else {
                piece.bytes.clone()
            };
            vx.inner.tail.push_back(TailLine {
                stream,
                bytes: kept,
                end: piece.end,
                timestamp: piece.timestamp,
                clipped_notice,
            });
        }
        self.queue.push_back(Event::Log(LogLine {
            digest: vx.digest.clone(),
            stream,
            bytes: piece.bytes,
            end: piece.end,
            timestamp: piece.timestamp,
            clipped_notice,
        }));
    }

    fn apply_log(&mut self, log: VertexLog) {
        let VertexLog {
            vertex,
            timestamp,
            stream,
            msg,
        } = log;
        let ts = self
            .observe_opt(&timestamp)
            .or(self.latest)
            .unwrap_or_default();
        if msg.is_empty() {
            return;
        }
        let idx = self.slot(vertex);
        let stream = Stream::from_number(stream);
        let max = self.config.max_line_len;
        let mut pieces = std::mem::take(&mut self.pieces);
        let vx = &mut self.vertices[idx];
        let pos = match vx.inner.streams.iter().position(|(s, _)| *s == stream) {
            Some(pos) => pos,
            None => {
                vx.inner.streams.push((stream, LineBuf::default()));
                vx.inner.streams.len() - 1
            }
        };
        vx.inner.streams[pos].1.feed(msg, ts, max, &mut pieces);
        for piece in pieces.drain(..) {
            self.push_line(idx, stream, piece);
        }
        self.pieces = pieces;
    }

    fn apply_status(&mut self, status: VertexStatus) {
        let VertexStatus {
            id,
            vertex,
            name,
            current,
            total,
            timestamp,
            started,
            completed,
        } = status;
        let timestamp = self.observe_opt(&timestamp);
        let started = self.observe_opt(&started);
        let completed = self.observe_opt(&completed);
        let timestamp = timestamp.or(self.latest).unwrap_or_default();
        let snapshot = StatusSnapshot {
            action: name,
            current,
            total,
            started,
            completed,
        };
        let idx = self.slot(vertex);
        let vx = &mut self.vertices[idx];
        match vx.inner.statuses.get_mut(id.as_str()) {
            Some(prev) if *prev == snapshot => return,
            Some(prev) => *prev = snapshot.clone(),
            None => {
                if vx.inner.statuses.len() >= STATUSES_REMEMBERED {
                    vx.inner.statuses.retain(|_, s| s.completed.is_none());
                }
                vx.inner.statuses.insert(id.clone(), snapshot.clone());
            }
        }
        let event = Progress {
            digest: vx.digest.clone(),
            id,
            action: snapshot.action,
            current,
            total: (total != 0).then_some(total),
            timestamp,
            started,
            completed,
        };
        self.queue.push_back(Event::Progress(event));
    }

    fn apply_warning(&mut self, warning: VertexWarning) {
        // Dedup on a hash of the whole content: BuildKit's batch splitting repeats the
        // warnings of a batch in every chunk, and the SourceInfo can hold the whole
        // Dockerfile, so no copy is kept for comparison.
        let mut hasher = DefaultHasher::new();
        warning.vertex.hash(&mut hasher);
        warning.level.hash(&mut hasher);
        warning.short.hash(&mut hasher);
        warning.detail.hash(&mut hasher);
        warning.url.hash(&mut hasher);
        warning.info.hash(&mut hasher);
        warning.ranges.hash(&mut hasher);
        let hash = hasher.finish();
        if !self.warnings_seen.insert(hash) {
            return;
        }
        self.warnings_order.push_back(hash);
        if self.warnings_order.len() > WARNINGS_REMEMBERED {
            let oldest = self.warnings_order.pop_front().expect("not empty");
            self.warnings_seen.remove(&oldest);
        }
        let VertexWarning {
            vertex,
            level,
            short,
            detail,
            url,
            info,
            ranges,
        } = warning;
        let (source_file, source_data) = match info {
            Some(i) => ((!i.filename.is_empty()).then_some(i.filename), i.data),
            None => (None, Bytes::new()),
        };
        let lines = ranges
            .iter()
            .map(|r| {
                let start = r.start.map(|p| p.line).unwrap_or(0);
                let end = r.end.map(|p| p.line).unwrap_or(start);
                (start, end)
            })
            .collect();
        self.queue.push_back(Event::Warning(Warning {
            digest: vertex.into(),
            level,
            short,
            detail,
            url,
            source_file,
            lines,
            source_data,
        }));
    }
}
