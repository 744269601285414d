//! The closed set of events the tracker yields, and the types they carry.

use bytes::Bytes;

/// A point in time taken from the records (never from a clock): nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub i128);

/// A span between two [`Time`]s, in nanoseconds (never negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub u128);

/// One thing that happened to one vertex. Every variant names its vertex by digest.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A vertex began an interval of work (its first, or a restart after completing).
    Started(VertexStarted),
    /// A vertex ended its current interval of work.
    Completed(VertexCompleted),
    /// One line (or one bounded piece of a line) of a vertex's output.
    Log(LogLine),
    /// A sub-task of a vertex (a layer pull, an export step) changed.
    Progress(Progress),
    /// A warning attached to a vertex (Dockerfile lint, deprecated feature, ...).
    Warning(Warning),
}

/// Payload of [`Event::Started`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexStarted {
    pub digest: String,
    pub name: String,
    /// Digests of the vertices this one consumes.
    pub inputs: Vec<String>,
    pub started: Time,
    /// 0 for the first interval, 1 for the first restart, ...
    pub interval: u32,
}

/// How an interval of a vertex ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Ran and succeeded.
    Done,
    /// Served from BuildKit's cache.
    Cached,
    /// Ran and failed; the vertex's error text.
    Failed(String),
    /// Canceled by BuildKit (its error ends in `context canceled`).
    Canceled,
    /// The input ended (see `Tracker::finish`) while the vertex was still running.
    Interrupted,
}

/// Payload of [`Event::Completed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexCompleted {
    pub digest: String,
    pub name: String,
    pub outcome: Outcome,
    /// Start of the interval that ended.
    pub started: Time,
    /// End of the interval; for [`Outcome::Interrupted`], the latest time seen in the input.
    pub completed: Time,
    /// Sum of the vertex's merged run intervals so far, as BuildKit's printer computes it.
    pub duration: Duration,
    /// Which interval ended (matches [`VertexStarted::interval`]).
    pub interval: u32,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    Stdout,
    Stderr,
    /// Any other stream number BuildKit sends.
    Other(i64),
}

/// How a [`LogLine`]'s bytes ended in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineEnd {
    /// Terminated by `\n` (not included in [`LogLine::bytes`]).
    Newline,
    /// The line reached the configured length bound; the next piece of the same
    /// (digest, stream) continues it.
    Split,
    /// Flushed without a newline: the vertex completed, or the input ended.
    Unterminated,
}

/// Payload of [`Event::Log`]. Concatenating `bytes` (plus `\n` where `end` is
/// [`LineEnd::Newline`]) of all lines of one (digest, stream) gives back exactly the
/// bytes BuildKit sent for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub digest: String,
    pub stream: Stream,
    /// The line without its `\n`; `\r` and invalid UTF-8 kept as sent.
    pub bytes: Bytes,
    pub end: LineEnd,
    /// Timestamp of the log chunk in which this line began.
    pub timestamp: Time,
    /// This line is BuildKit's own `[output clipped, log limit … reached]` notice.
    pub clipped_notice: bool,
}

impl LogLine {
    /// The line as text, invalid UTF-8 replaced by U+FFFD.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// Payload of [`Event::Progress`], reported whenever a (vertex, id) status changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub digest: String,
    /// Status id, unique per vertex, e.g. a layer digest or `exporting layers`.
    pub id: String,
    /// The action, e.g. `extracting`; often empty.
    pub action: String,
    pub current: i64,
    /// `None` when BuildKit does not know the total (sent as 0).
    pub total: Option<i64>,
    pub timestamp: Time,
    pub started: Option<Time>,
    pub completed: Option<Time>,
}

/// Payload of [`Event::Warning`]; a warning repeated by BuildKit's batch splitting comes once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub digest: String,
    pub level: i64,
    pub short: Bytes,
    pub detail: Vec<Bytes>,
    pub url: String,
    /// The source file the warning points into, e.g. `Dockerfile`.
    pub source_file: Option<String>,
    /// 1-based (start, end) line ranges in that file.
    pub lines: Vec<(i32, i32)>,
}
