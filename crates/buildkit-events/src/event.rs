//! The closed set of events the tracker yields, and the types they carry.

use std::fmt;

use std::sync::Arc;

use bytes::Bytes;

/// A point in time taken from the records (never from a clock): nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub i128);

impl Time {
    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(self) -> i128 {
        self.0
    }

    /// The span from `earlier` to `self`, or zero if `earlier` is later.
    ///
    /// ```
    /// use buildkit_events::{Elapsed, Time};
    /// assert_eq!(Time(1_500).saturating_duration_since(Time(500)), Elapsed(1_000));
    /// assert_eq!(Time(500).saturating_duration_since(Time(1_500)), Elapsed(0));
    /// ```
    pub fn saturating_duration_since(self, earlier: Time) -> Elapsed {
        if self.0 > earlier.0 {
            Elapsed((self.0 - earlier.0).unsigned_abs())
        } else {
            Elapsed(0)
        }
    }
}

impl From<&buildkit_proto::Timestamp> for Time {
    fn from(t: &buildkit_proto::Timestamp) -> Self {
        Time(t.unix_nanos())
    }
}

/// A span between two [`Time`]s, in nanoseconds (never negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Elapsed(pub u128);

impl Elapsed {
    /// The span in nanoseconds.
    pub fn as_nanos(self) -> u128 {
        self.0
    }

    /// The span in seconds, e.g. for BuildKit's `DONE 0.7s` (`{:.1}`).
    ///
    /// ```
    /// assert_eq!(buildkit_events::Elapsed(1_250_000_000).as_secs_f64(), 1.25);
    /// ```
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// The span as a [`std::time::Duration`] (saturating at its maximum).
    pub fn to_std(self) -> std::time::Duration {
        let secs = u64::try_from(self.0 / 1_000_000_000).unwrap_or(u64::MAX);
        let nanos = (self.0 % 1_000_000_000) as u32;
        std::time::Duration::new(secs, nanos)
    }
}

/// Seconds with a unit, 3 decimals unless a precision is given; width and alignment are
/// honoured: `format!("{:>6.1}", d)` → `  0.7s`.
///
/// ```
/// use buildkit_events::Elapsed;
/// let d = Elapsed(700_000_000);
/// assert_eq!(format!("{d}"), "0.700s");
/// assert_eq!(format!("{d:.1}"), "0.7s");
/// assert_eq!(format!("[{d:>6.1}]"), "[  0.7s]");
/// assert_eq!(format!("[{d:<6.1}]"), "[0.7s  ]");
/// ```
impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let precision = f.precision().unwrap_or(3);
        let text = format!("{:.*}s", precision, self.as_secs_f64());
        // `pad` would cut the text to the precision; padding is done by hand.
        pad(f, &text)
    }
}

/// Writes `text` padded to the formatter's width and alignment (left by default), ignoring
/// its precision.
fn pad(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    let len = text.chars().count();
    let Some(width) = f.width().filter(|&w| w > len) else {
        return f.write_str(text);
    };
    let fill = width - len;
    let (before, after) = match f.align() {
        Some(fmt::Alignment::Right) => (fill, 0),
        Some(fmt::Alignment::Center) => (fill / 2, fill - fill / 2),
        Some(fmt::Alignment::Left) | None => (0, fill),
    };
    let fill_char = f.fill();
    for _ in 0..before {
        fmt::Write::write_char(f, fill_char)?;
    }
    f.write_str(text)?;
    for _ in 0..after {
        fmt::Write::write_char(f, fill_char)?;
    }
    Ok(())
}

/// One thing that happened to one vertex. Every variant names its vertex by digest.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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

impl Event {
    /// The digest of the vertex the event is about.
    pub fn digest(&self) -> &str {
        match self {
            Event::Started(e) => &e.digest,
            Event::Completed(e) => &e.digest,
            Event::Log(e) => &e.digest,
            Event::Progress(e) => &e.digest,
            Event::Warning(e) => &e.digest,
        }
    }
}

/// Payload of [`Event::Started`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexStarted {
    /// The vertex digest, e.g. `sha256:…`.
    pub digest: Arc<str>,
    /// The display name, e.g. `[2/3] RUN echo hi`.
    pub name: String,
    /// Digests of the vertices this one consumes.
    pub inputs: Vec<String>,
    /// Start of the interval.
    pub started: Time,
    /// 0 for the first interval, 1 for the first restart, ...
    pub interval: u32,
}

/// How an interval of a vertex ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

impl Outcome {
    /// Whether this is [`Outcome::Failed`].
    pub fn is_failed(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }

    /// One lowercase word: `done`, `cached`, `failed`, `canceled` or `interrupted` (the error
    /// text of a failure is left out).
    ///
    /// ```
    /// use buildkit_events::Outcome;
    /// assert_eq!(Outcome::Failed("exit code: 1".into()).label(), "failed");
    /// assert_eq!(format!("{:<9}|", Outcome::Cached.label()), "cached   |");
    /// ```
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Cached => "cached",
            Outcome::Failed(_) => "failed",
            Outcome::Canceled => "canceled",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// BuildKit's plain-printer wording: `DONE`, `CACHED`, `ERROR: <error>`, `CANCELED`, and
/// `INTERRUPTED` for an interval the input left open; width and alignment are honoured.
///
/// ```
/// use buildkit_events::Outcome;
/// assert_eq!(format!("[{:>8}]", Outcome::Done), "[    DONE]");
/// assert_eq!(Outcome::Failed("boom".into()).to_string(), "ERROR: boom");
/// ```
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Done => pad(f, "DONE"),
            Outcome::Cached => pad(f, "CACHED"),
            Outcome::Failed(error) if f.width().is_none() => write!(f, "ERROR: {error}"),
            Outcome::Failed(error) => pad(f, &format!("ERROR: {error}")),
            Outcome::Canceled => pad(f, "CANCELED"),
            Outcome::Interrupted => pad(f, "INTERRUPTED"),
        }
    }
}

/// Payload of [`Event::Completed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexCompleted {
    /// The vertex digest.
    pub digest: Arc<str>,
    /// The display name.
    pub name: String,
    /// How the interval ended.
    pub outcome: Outcome,
    /// Start of the interval that ended.
    pub started: Time,
    /// End of the interval; for [`Outcome::Interrupted`], the latest time seen in the input.
    pub completed: Time,
    /// Sum of the vertex's merged run intervals so far, as BuildKit's printer computes it.
    pub duration: Elapsed,
    /// Which interval ended (matches [`VertexStarted::interval`]).
    pub interval: u32,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Stream {
    /// Stream 1, the process's standard output.
    Stdout,
    /// Stream 2, standard error (BuildKit's own messages use it too).
    Stderr,
    /// Any other stream number BuildKit sends.
    Other(i64),
}

impl Stream {
    /// The stream of a `VertexLog.stream` number.
    pub fn from_number(n: i64) -> Self {
        match n {
            buildkit_proto::STREAM_STDOUT => Stream::Stdout,
            buildkit_proto::STREAM_STDERR => Stream::Stderr,
            other => Stream::Other(other),
        }
    }

    /// The `VertexLog.stream` number.
    pub fn number(self) -> i64 {
        match self {
            Stream::Stdout => buildkit_proto::STREAM_STDOUT,
            Stream::Stderr => buildkit_proto::STREAM_STDERR,
            Stream::Other(n) => n,
        }
    }
}

/// `stdout`, `stderr`, or `stream <n>`.
impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stream::Stdout => f.write_str("stdout"),
            Stream::Stderr => f.write_str("stderr"),
            Stream::Other(n) => write!(f, "stream {n}"),
        }
    }
}

/// How a [`LogLine`]'s bytes ended in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
    /// The vertex digest (possibly of a vertex no record has described yet).
    pub digest: Arc<str>,
    /// The stream the bytes came from.
    pub stream: Stream,
    /// The line without its `\n`; `\r` and invalid UTF-8 kept as sent.
    pub bytes: Bytes,
    /// How the piece ended.
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
    /// The vertex digest.
    pub digest: Arc<str>,
    /// Status id, unique per vertex, e.g. a layer digest or `exporting layers`.
    pub id: String,
    /// The action, e.g. `extracting`; often empty.
    pub action: String,
    /// Units done so far (bytes for transfers).
    pub current: i64,
    /// `None` when BuildKit does not know the total (sent as 0).
    pub total: Option<i64>,
    /// Time of this update (the latest time seen so far if BuildKit left it out).
    pub timestamp: Time,
    /// When the sub-task started, if it has.
    pub started: Option<Time>,
    /// When the sub-task finished, if it has.
    pub completed: Option<Time>,
}

/// Payload of [`Event::Warning`]; a warning repeated by BuildKit's batch splitting comes once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The vertex digest.
    pub digest: Arc<str>,
    /// Severity as sent (BuildKit uses 1 for lint warnings).
    pub level: i64,
    /// One-line message, e.g. `JSONArgsRecommended: … (line 9)`.
    pub short: Bytes,
    /// Description paragraphs.
    pub detail: Vec<Bytes>,
    /// Documentation link, empty if none.
    pub url: String,
    /// The source file the warning points into, e.g. `Dockerfile`.
    pub source_file: Option<String>,
    /// 1-based (start, end) line ranges in that file.
    pub lines: Vec<(i32, i32)>,
    /// The text of that file as the warning carries it (BuildKit sends the whole Dockerfile),
    /// empty if none. A slice of the decoded record: no copy, and bounded as the record is.
    pub source_data: Bytes,
}

impl Warning {
    /// The lines of the source file the warning points at, marked `>>>`, as
    /// `docker --debug buildx build` prints them under the warning (see [`source_snippet`]);
    /// `None` without a file, its text or a line range.
    ///
    /// [`source_snippet`]: crate::source_snippet
    pub fn snippet(&self) -> Option<String> {
        let file = self.source_file.as_deref()?;
        if self.source_data.is_empty() {
            return None;
        }
        crate::source_snippet(file, &self.source_data, &self.lines)
    }
}
