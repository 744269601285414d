//! A sans-IO tracker that turns BuildKit's progress stream into per-vertex events.
//!
//! BuildKit reports a build as a stream of `moby.buildkit.v1.StatusResponse` records (over
//! gRPC `Control/Status`, or protobuf-encoded and then base64-encoded in the `aux` field of the
//! Docker daemon's `{"id":"moby.buildkit.trace",…}` lines during `POST /build?version=2`). Each
//! record holds full snapshots of some vertices, status updates, raw log chunks and warnings.
//! The [`Tracker`] keeps the state BuildKit's own progress printer keeps and yields a small,
//! closed set of [`Event`]s: a vertex [started](Event::Started) or
//! [completed](Event::Completed) an interval, printed a [line](Event::Log), made
//! [progress](Event::Progress) on a sub-task, or raised a [warning](Event::Warning).
//!
//! The tracker does no I/O, spawns nothing and never reads a clock: every time it reports
//! comes from the records. Feed it decoded records with [`Tracker::handle_response`] or
//! protobuf bytes with [`Tracker::handle_protobuf`], drain [`Tracker::poll_event`], and call
//! [`Tracker::finish`] at the end of the input for the last events and a [`Summary`]. Undoing
//! a transport's encoding (the daemon's base64) is the transport's job: the `docker-build`
//! crate does it for the daemon's build stream.
//!
//! # Example
//!
//! ```
//! use buildkit_events::{Event, LineEnd, Outcome, Tracker};
//! use buildkit_proto::{Message, StatusResponse, Timestamp, Vertex, VertexLog};
//!
//! let ts = |ms: i64| Some(Timestamp { seconds: ms / 1000, nanos: (ms % 1000) as i32 * 1_000_000 });
//! let run = |started, completed| Vertex {
//!     digest: "sha256:aaaa".into(),
//!     name: "[2/2] RUN make".into(),
//!     started,
//!     completed,
//!     ..Default::default()
//! };
//!
//! let mut tracker = Tracker::new();
//! // A pending snapshot: known, not started, no event.
//! tracker.handle_response(StatusResponse { vertexes: vec![run(None, None)], ..Default::default() });
//! // It starts and prints a line and a half.
//! tracker.handle_response(StatusResponse {
//!     vertexes: vec![run(ts(1_000), None)],
//!     logs: vec![VertexLog {
//!         vertex: "sha256:aaaa".into(),
//!         timestamp: ts(1_100),
//!         stream: 1,
//!         msg: "compiling\nlink".into(),
//!     }],
//!     ..Default::default()
//! });
//! // The rest of the line arrives in the next record, protobuf-encoded as BuildKit sends it.
//! let record = StatusResponse {
//!     logs: vec![VertexLog {
//!         vertex: "sha256:aaaa".into(),
//!         timestamp: ts(1_200),
//!         stream: 1,
//!         msg: "ing done\n".into(),
//!     }],
//!     ..Default::default()
//! };
//! tracker.handle_protobuf(record.encode_to_vec().into()).unwrap();
//! // The vertex completes.
//! tracker.handle_response(StatusResponse {
//!     vertexes: vec![run(ts(1_000), ts(2_500))],
//!     ..Default::default()
//! });
//!
//! let mut lines = Vec::new();
//! while let Some(event) = tracker.poll_event() {
//!     match event {
//!         Event::Started(s) => assert_eq!((s.name.as_str(), s.interval), ("[2/2] RUN make", 0)),
//!         Event::Log(l) => {
//!             assert_eq!(l.end, LineEnd::Newline);
//!             lines.push(l.text().into_owned());
//!         }
//!         Event::Completed(c) => {
//!             assert_eq!(c.outcome, Outcome::Done);
//!             assert_eq!(format!("{:.1}", c.duration), "1.5s");
//!         }
//!         other => panic!("unexpected {other:?}"),
//!     }
//! }
//! assert_eq!(lines, ["compiling", "linking done"]);
//!
//! let summary = tracker.finish();
//! assert_eq!(summary.counts.done, 1);
//! assert!(tracker.poll_event().is_none());
//! ```
//!
//! # Semantics
//!
//! **Vertices.** Each vertex record is a full snapshot; a digest comes many times, sometimes
//! twice in one record. A snapshot without `started` never changes a vertex that has
//! started; for a vertex that has not, it records name and inputs (the vertex is *pending*,
//! no event). A snapshot with `started` replaces the vertex's name, inputs, cached flag,
//! error and progress group.
//!
//! **Intervals**, as in BuildKit's printer (`progressui`): each snapshot with `started` adds
//! or overwrites an interval keyed by its start time; intervals are merged (an interval
//! starting at or before the current one's end joins it; an open interval swallows every
//! later one), and the vertex is running iff the last merged interval is open. One
//! difference, below: a completion also closes the open intervals that began before it.
//! - [`Event::Started`] is emitted on every transition not-running → running, with
//!   `interval` 0, 1, 2, …: a vertex that runs again after completing (BuildKit does this
//!   for `[1/N] FROM …` and `[internal] load remote build context`) gets a new `Started`.
//!   If the new run's interval overlaps the completed one (so the merged interval re-opens),
//!   the `Started` carries the new interval's start.
//! - [`Event::Completed`] is emitted on running → not-running, with the interval's start and
//!   end. A vertex first seen already completed (e.g. a cache hit with `started` and
//!   `completed` in one snapshot) gets `Started` then `Completed`; so does every new
//!   closed interval that begins after the last one announced.
//! - So, per digest, every `Completed` follows its `Started` and no vertex starts twice
//!   without completing in between.
//! - *Stale snapshots:* a snapshot that re-sends an already completed interval (same start)
//!   without `completed` is older than what the tracker knows. It is ignored entirely (its
//!   fields too); it never re-opens the vertex. (BuildKit's printer would re-open it.)
//!   A later snapshot with a different completion time for the same interval overwrites it,
//!   as in the printer, without new events.
//! - A closed interval that begins before the last announced one (a late out-of-order
//!   snapshot) only changes the durations, not the events.
//! - *A completion closes what began before it* (Docker 20.10's double start): a snapshot
//!   with `started` = t2 and `completed` = t3 also closes, at t3, every interval that an
//!   earlier start t1 < t2 left open. Docker 20.10 sends a vertex `{started: t1}`, then
//!   `{started: t2, completed: t3}`, and never t1's completion: BuildKit's progress writer
//!   collapses unread updates of one vertex, so t1's completion is replaced by the second
//!   run's (captured on `[internal] load remote build context`; reported also for
//!   `[internal] load metadata for …` of parallel stages sharing a base and for `FROM` in a
//!   failing build). BuildKit's printer keeps [t1, ∞) open, swallowing [t2, t3], so the step
//!   never ends; the tracker emits one `Completed` for the running interval: start t1, end
//!   t3, the outcome of the completing snapshot (its error → [`Outcome::Failed`]), t3 − t1
//!   added to the duration. No `Started` is emitted
//!   for t2 (it lies inside the closed interval), so the pairing above still holds. The
//!   closed interval stays closed: a re-sent `{started: t1}` is stale (above), and a late
//!   completion of t1 itself replaces t3 as t1's end, changing durations only. A
//!   completion closes nothing that began after it: an open start t4 > t2 keeps running.
//! - *Memory:* a vertex keeps at most 64 raw intervals. Past that, the merged intervals older
//!   than the one holding its 32nd newest start are folded into their total length, and a
//!   snapshot that starts inside them is ignored from then on (as stale). If that still
//!   leaves more than 64 (one run announced with ever new starts), the kept merged intervals
//!   replace the raw ones, and an open snapshot starting before the end of the last closed
//!   one is stale from then on. Events and durations are what they would be without this,
//!   except for a snapshot that arrives after the intervals it falls into were folded.
//!
//! **Outcome** of a completed interval, from the snapshot that completed it: an error ending
//! in `context canceled` → [`Outcome::Canceled`]; any other non-empty error →
//! [`Outcome::Failed`]; else cached → [`Outcome::Cached`]; else [`Outcome::Done`].
//! [`VertexCompleted::duration`] is the sum of the vertex's merged intervals up to this one
//! (BuildKit's `DONE x.xs`).
//!
//! **Within one record** the events come in the order of the times inside the record, so
//! that a record merging many (a finished build's `Status` can send every vertex and log of
//! a build in a few records) gives the events of the live records it merges: `[2/3]`'s lines
//! before `[3/3]` starts. A vertex snapshot counts at its `started` time and its completion at
//! its `completed` time; logs and statuses at their timestamps; ties keep the record's layout
//! (vertices, statuses, logs, warnings). Whatever the times say:
//! - a digest's snapshots, its statuses, the chunks of each of its log streams, and its
//!   warnings each keep the record's order (so log bytes are joined as sent);
//! - a vertex's logs, statuses and warnings never come before its first start in the same
//!   record, and if a vertex completes in a record that also carries logs, statuses or
//!   warnings for it (after its start), its `Completed` comes after them (they happened before
//!   the completion);
//! - warnings (which carry no time) follow what their vertex showed before them in the
//!   record, or everything before them if it showed nothing.
//!
//! Splitting a build's records or merging consecutive ones therefore changes no event, when
//! every item carries its own time (a property test checks this). The common record, logs of
//! running vertices in time order, is applied as it comes, without sorting.
//!
//! **Logs** are split per (digest, stream) on `\n`; a partial line is carried across chunks
//! and records. Nothing is lost: for each (digest, stream), concatenating the [`LogLine`]
//! bytes, plus `\n` after each [`LineEnd::Newline`] one, gives exactly the bytes BuildKit
//! sent. A partial line is flushed as [`LineEnd::Unterminated`] when its vertex completes
//! and at [`Tracker::finish`]. A line longer than [`Config::max_line_len`] comes out in
//! pieces of exactly that length ending in [`LineEnd::Split`], so at most that much is
//! buffered per (digest, stream); the pieces depend only on the bytes, not on how they were
//! chunked. BuildKit's `[output clipped, log limit 200KiB/s reached]` /
//! `[output clipped, log limit 2MiB reached]` line sets [`LogLine::clipped_notice`]. `\r`,
//! ANSI sequences and invalid UTF-8 stay in the bytes as sent. A line that lies wholly inside
//! one chunk is a [`Bytes::slice`](bytes::Bytes::slice) of it; only partial lines are copied.
//! A line's timestamp is that of the chunk it began in.
//!
//! **Progress**: statuses are keyed by (vertex digest, status id); a [`Progress`] event is
//! emitted when anything but the timestamp changed (action, current, total, started,
//! completed). A total of 0 means unknown ([`Progress::total`] is `None`). A vertex keeps at
//! most 256 statuses for this comparison: beyond that its completed ones are forgotten (were
//! one of them sent again unchanged, it would be reported again).
//!
//! **Warnings**: a warning with exactly the same content for the same vertex (as BuildKit's
//! batch splitting repeats them) is reported once. The tracker keeps only a 64-bit hash of
//! each warning's content for this, never the warning itself (its SourceInfo may hold the
//! whole Dockerfile and LLB definition), and only for the latest 1024 distinct warnings (an
//! older one sent again is reported again). [`Warning::source_file`] comes from the SourceInfo's
//! filename, [`Warning::lines`] from its ranges' (start.line, end.line) and
//! [`Warning::source_data`] is the SourceInfo's copy of the file (a slice of the record, not a
//! copy), so that [`Warning::snippet`] can show the lines, as `docker --debug buildx build`
//! does.
//!
//! **Unknown digests**: logs, statuses and warnings for a digest no vertex record has
//! described are emitted anyway (BuildKit's printer drops them); the digest is in the event.
//!
//! **End of input**: [`Tracker::finish`] flushes partial lines and completes every running
//! vertex with [`Outcome::Interrupted`] at the latest time seen anywhere in the input
//! (interrupted vertices in the order they first started), then returns the [`Summary`]:
//! counts by the latest outcome of each started vertex, the pending count, wall time from
//! the first start to the last completion, every started vertex (digest, name, outcome,
//! duration) in first-start order, and the first vertex that failed with its last
//! [`Config::log_tail_lines`] log lines. Calling it again queues nothing and returns the same
//! summary.
//!
//! **Errors**: an undecodable record ([`RecordError`]) leaves the tracker as it was, apart
//! from counting the record, and later records are handled normally. No input makes the
//! tracker panic.

#![warn(missing_docs)]

mod error;
mod event;
mod intervals;
mod lines;
mod name;
mod order;
mod source;
mod summary;
mod tracker;

pub use error::RecordError;
pub use event::*;
pub use intervals::RunIntervals;
pub use name::StepName;
pub use source::source_snippet;
pub use summary::{FailedVertex, OutcomeCounts, Step, Summary};
pub use tracker::{Config, ProgressGroup, Tracker, VertexInfo, VertexState};

#[cfg(test)]
mod tests;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
