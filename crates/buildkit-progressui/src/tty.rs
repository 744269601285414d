//! `--progress=tty`: a live view modelled on BuildKit's terminal display.
//!
//! ```text
//! [+] Building 1.6s (9/9) FINISHED
//!  => [internal] load build definition from Dockerfile                     0.0s
//!  => => transferring dockerfile: 125B                                      0.0s
//!  => CACHED [1/3] FROM docker.io/library/bbase:latest                      0.0s
//!  => [2/3] RUN for i in 1 2 3; do echo $i; sleep 1; done                   1.2s
//!  => => # 1
//!  => => # 2
//! ```
//!
//! The view is split in two: [`TtyState`] folds events into what is shown, and [`frame`] is a
//! pure function from (state, width, height, now) to the lines of one frame, so frames are
//! tested as text. [`Tty`] puts frames on a terminal: it moves the cursor up over the previous
//! frame and clears it (`ESC [ n A`, `ESC [ J`), at most every 100 ms of wall time for a live
//! build, and only once (the final frame) for a replay.
//!
//! As BuildKit's display, given [`BuildEvent::Record`]s (see
//! [`Mode::wants_records`](crate::Mode::wants_records)): the `(done/total)` count covers every
//! vertex the records described, started or not; the header's time counts from the start of
//! the first vertex seen started (mapped onto the caller's clock when it is seen), so a vertex
//! kept from an earlier build, with an old start, does not inflate it; the output under a
//! running step comes from the records' raw bytes, the line being written shown as its latest
//! `\r` segment (a progress bar moves before its newline). After the final frame, each failed
//! step's whole output (buildx's `printErrorLogs`). Without records (the classic builder), the
//! count covers the started vertices (and, once the build finished, those never started), and
//! only whole lines show.
//!
//! Differences from BuildKit's display: the last lines of a running step are shown by keeping
//! its last 6 lines (a `\r` keeps what follows it, escape sequences are dropped) instead of
//! emulating a terminal; a step still running when the body ended is shown as `INTERRUPTED`.
//! So that memory does not grow with the output: lines are kept cut to 4 KiB (those under a
//! running step and a failed step's closing block), a failed step's closing block keeps its
//! last [`FAILED_LOG_LINES`] lines and at most [`FAILED_LOG_BYTES`] (then says how many earlier
//! lines it dropped), a step that succeeded lets its output go, a step shows at most 64
//! statuses (the oldest completed ones make room) and 64 distinct warnings (then
//! `WARN: N more`).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};

use buildkit_events::{Event, LineEnd, LogLine, Outcome, Time};
use buildkit_proto::StatusResponse;
use docker_build::decode::BuildEvent;

use crate::Render;
use crate::format::{bytes, log_elapsed, seconds, seconds_between};
use crate::view::{FAILED_TAIL_LINE_BYTES, VertexView, Vertices};

/// Lines of output shown under a running step.
pub const LOG_LINES: usize = 6;
/// Longest kept line of the output shown under a running step, in bytes (the frame shows
/// only the start of it that fits the terminal's width).
const LOG_LINE_MAX: usize = 4096;
/// Statuses kept per vertex: beyond this the oldest completed ones are dropped.
const STATUSES_MAX: usize = 64;
/// Warnings kept per vertex: beyond this they are only counted.
const WARNINGS_MAX: usize = 64;
/// Shortest wall time between two live frames, in nanoseconds.
const FRAME_INTERVAL: i128 = 100_000_000;
/// Lines of a failed step kept for the block after the view (buildx prints its whole output;
/// beyond this the oldest lines are dropped and counted).
pub const FAILED_LOG_LINES: usize = 10_000;
/// Bytes the lines of [`FAILED_LOG_LINES`] may take per step (each line is cut to 4 KiB).
pub const FAILED_LOG_BYTES: usize = 4 * 1024 * 1024;

/// Everything a frame shows, folded from events.
#[derive(Debug, Clone)]
pub struct TtyState {
    /// Names, intervals, outcomes and tails of the vertices, in the order they first started.
    view: Vertices,
    /// What only the tty shows, per vertex, by the vertex's position in `view`.
    extra: Vec<TtyVertex>,
    latest: Option<Time>,
    finished: bool,
    /// Vertices described but never started, known once the build finished.
    pending: usize,
    image_id: Option<String>,
    /// The context upload's latest state (shown above the vertices, `upload.rs`).
    upload: Option<docker_build::ContextUpload>,
    /// [`BuildEvent::Record`]s come: the count and the output under running steps are taken
    /// from them.
    records: bool,
    /// Every vertex the records described (started or not), with the output shown under it
    /// while it runs, from the records' raw bytes.
    described: HashMap<String, LiveLog>,
    /// Start of the first vertex seen started: the header's elapsed time counts from it.
    header_start: Option<Time>,
}

impl Default for TtyState {
    fn default() -> Self {
        Self {
            view: Vertices::new(FAILED_LOG_LINES, FAILED_TAIL_LINE_BYTES)
                .with_tail_budget(FAILED_LOG_BYTES)
                .forgetting_settled_tails(),
            extra: Vec::new(),
            latest: None,
            finished: false,
            pending: 0,
            image_id: None,
            upload: None,
            records: false,
            described: HashMap::new(),
            header_start: None,
        }
    }
}

/// The last lines of a vertex's raw output as a terminal shows them: complete lines, then the
/// line being written as its latest `\r` segment (a progress bar shows as it moves).
#[derive(Debug, Clone, Default)]
struct LiveLog {
    /// The last complete lines, sanitized, each cut to [`LOG_LINE_MAX`].
    lines: VecDeque<String>,
    /// The line being written, raw: what follows its last `\r` (that has text after it), cut
    /// to [`LOG_LINE_MAX`].
    partial: Vec<u8>,
}

impl LiveLog {
    fn push(&mut self, mut data: &[u8]) {
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            self.extend_partial(&data[..end]);
            let mut line = sanitize(&String::from_utf8_lossy(&self.partial));
            truncate(&mut line, LOG_LINE_MAX);
            if self.lines.len() == LOG_LINES {
                self.lines.pop_front();
            }
            self.lines.push_back(line);
            self.partial.clear();
            data = &data[end + 1..];
        }
        self.extend_partial(data);
        if self.partial.capacity() > 2 * LOG_LINE_MAX {
            self.partial.shrink_to(LOG_LINE_MAX);
        }
    }

    /// Appends a piece without `\n`, keeping only what a terminal would still show.
    fn extend_partial(&mut self, piece: &[u8]) {
        // What follows the last `\r` that has text after it overwrites what came before.
        let text_end = piece.iter().rposition(|&b| b != b'\r').map_or(0, |i| i + 1);
        match piece[..text_end].iter().rposition(|&b| b == b'\r') {
            Some(cr) => {
                self.partial.clear();
                self.partial.extend_from_slice(&piece[cr + 1..]);
            }
            None => {
                // A `\r` ending what is held is overwritten by the text that follows it.
                if text_end > 0 && self.partial.last() == Some(&b'\r') {
                    self.partial.clear();
                }
                self.partial.extend_from_slice(piece);
            }
        }
        if self.partial.len() > LOG_LINE_MAX {
            // Keep a trailing `\r`: it still decides what the next piece overwrites.
            let cr = self.partial.last() == Some(&b'\r');
            self.partial.truncate(LOG_LINE_MAX);
            if cr {
                self.partial.push(b'\r');
            }
        }
    }

    /// The lines shown, oldest first (at most [`LOG_LINES`]).
    fn shown(&self) -> Vec<String> {
        let partial =
            (!self.partial.is_empty()).then(|| sanitize(&String::from_utf8_lossy(&self.partial)));
        let all: Vec<String> = self.lines.iter().cloned().chain(partial).collect();
        all[all.len().saturating_sub(LOG_LINES)..].to_vec()
    }
}

#[derive(Debug, Clone, Default)]
struct TtyVertex {
    statuses: Vec<StatusView>,
    /// Distinct warnings, at most [`WARNINGS_MAX`].
    warnings: Vec<String>,
    /// Warnings beyond [`WARNINGS_MAX`].
    more_warnings: usize,
    /// Last lines, sanitized for the terminal, each cut to [`LOG_LINE_MAX`].
    logs: VecDeque<String>,
    /// The last entry of `logs` is a line still being written.
    log_open: bool,
}

#[derive(Debug, Clone)]
struct StatusView {
    id: String,
    current: i64,
    total: Option<i64>,
    started: Option<Time>,
    completed: Option<Time>,
}

impl TtyState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether [`BuildEvent::Finished`] has been seen.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The latest time any event carried (a replay's "now").
    pub fn latest(&self) -> Option<Time> {
        self.latest
    }

    /// Start of the first vertex seen started (in the order of the records' vertices when
    /// [`BuildEvent::Record`]s come, else of the events): the header's elapsed time counts
    /// from it, as buildx's does. Not the earliest start: a vertex kept from an earlier,
    /// canceled build carries its old start.
    pub fn first_start(&self) -> Option<Time> {
        self.header_start
    }

    /// The header's `(done/total)`: vertices completed, and every vertex known — with
    /// records, every vertex they described, started or not (buildx's count); without, the
    /// started ones and, once the build finished, those it never started.
    pub fn counts(&self) -> (usize, usize) {
        let completed = self.view.iter().filter(|v| !v.is_running()).count();
        let total = if self.records {
            self.described.len().max(self.view.len())
        } else {
            self.view.len() + self.pending
        };
        (completed, total)
    }

    fn record(&mut self, record: &StatusResponse) {
        self.records = true;
        for v in &record.vertexes {
            if self.header_start.is_none() {
                self.header_start = v.started.as_ref().map(Time::from);
            }
            if !self.described.contains_key(&v.digest) {
                self.described.insert(v.digest.clone(), LiveLog::default());
            }
        }
        for l in &record.logs {
            // Like buildx, output of a vertex no record described is not shown.
            if let Some(live) = self.described.get_mut(&l.vertex) {
                live.push(&l.msg);
            }
        }
    }

    /// The vertices shown.
    pub fn vertices(&self) -> &Vertices {
        &self.view
    }

    fn observe(&mut self, t: Time) {
        if self.latest.is_none_or(|l| t > l) {
            self.latest = Some(t);
        }
    }

    /// Folds one event into the state.
    pub fn apply(&mut self, event: &BuildEvent) {
        match event {
            BuildEvent::Record(record) => return self.record(record),
            BuildEvent::Vertex(Event::Started(s)) => {
                self.header_start.get_or_insert(s.started);
                self.observe(s.started)
            }
            BuildEvent::Vertex(Event::Completed(c)) => self.observe(c.completed),
            BuildEvent::Vertex(Event::Log(l)) => self.observe(l.timestamp),
            BuildEvent::Vertex(Event::Progress(p)) => self.observe(p.timestamp),
            _ => {}
        }
        let vertex = self.view.apply(event);
        if self.extra.len() < self.view.len() {
            self.extra.resize_with(self.view.len(), TtyVertex::default);
        }
        match event {
            // With records, the output shown comes from their raw bytes (see `record`).
            BuildEvent::Vertex(Event::Log(l)) if !self.records => {
                if let Some(i) = vertex {
                    self.extra[i].log(l);
                }
            }
            BuildEvent::Vertex(Event::Progress(p)) => {
                let Some(i) = vertex else {
                    return;
                };
                let v = &mut self.extra[i];
                match v.statuses.iter_mut().find(|s| s.id == p.id) {
                    Some(s) => {
                        s.current = p.current;
                        s.total = p.total;
                        s.started = p.started.or(s.started);
                        s.completed = p.completed;
                    }
                    // Like BuildKit, a status is shown once it has started.
                    None if p.started.is_some() => {
                        if v.statuses.len() >= STATUSES_MAX {
                            if let Some(old) = v.statuses.iter().position(|s| s.completed.is_some())
                            {
                                v.statuses.remove(old);
                            }
                        }
                        v.statuses.push(StatusView {
                            id: p.id.clone(),
                            current: p.current,
                            total: p.total,
                            started: p.started,
                            completed: p.completed,
                        });
                    }
                    None => {}
                }
            }
            BuildEvent::Vertex(Event::Warning(w)) => {
                if let Some(i) = vertex {
                    let mut short = sanitize(&String::from_utf8_lossy(&w.short));
                    truncate(&mut short, LOG_LINE_MAX);
                    let v = &mut self.extra[i];
                    if v.warnings.contains(&short) {
                        // The same line again (the tracker reports each distinct warning
                        // once; its details differ): nothing new to show.
                    } else if v.warnings.len() < WARNINGS_MAX {
                        v.warnings.push(short);
                    } else {
                        v.more_warnings += 1;
                    }
                }
            }
            BuildEvent::ImageBuilt { id } => self.image_id = Some(id.clone()),
            BuildEvent::ContextUpload(u) => self.upload = Some(*u),
            BuildEvent::Finished(summary) => {
                self.finished = true;
                self.pending = summary.summary.pending;
            }
            // Started, Completed: the shared view holds them; records, messages, bad lines
            // and the failure are not part of the live view.
            _ => {}
        }
    }

    /// Writes buildx's closing block (`------`, ` > name:`, the step's output, `------`) for
    /// every failed step, and our `Successfully built <id>` line. The output is the step's
    /// whole output as buildx prints it, up to [`FAILED_LOG_LINES`] lines of at most 4 KiB and
    /// [`FAILED_LOG_BYTES`]; beyond that the block starts with how many earlier lines were not
    /// kept.
    pub fn write_summary(&self, out: &mut impl Write) -> io::Result<()> {
        for v in &self.view {
            if !matches!(v.outcome(), Some(Outcome::Failed(_))) {
                continue;
            }
            writeln!(out, "------")?;
            writeln!(out, " > {}:", v.name())?;
            if v.dropped() > 0 {
                writeln!(out, "[... {} earlier lines not kept ...]", v.dropped())?;
            }
            for line in v.tail() {
                write!(out, "{} ", log_elapsed(line.elapsed()))?;
                out.write_all(line.bytes())?;
                out.write_all(b"\n")?;
            }
            writeln!(out, "------")?;
        }
        if let Some(id) = &self.image_id {
            writeln!(out, "Successfully built {id}")?;
        }
        Ok(())
    }
}

impl TtyVertex {
    fn log(&mut self, l: &LogLine) {
        let text = String::from_utf8_lossy(&l.bytes);
        if self.log_open {
            if let Some(last) = self.logs.back_mut() {
                last.push_str(&text);
                *last = sanitize(last);
                truncate(last, LOG_LINE_MAX);
            }
        } else {
            if self.logs.len() == LOG_LINES {
                self.logs.pop_front();
            }
            let mut line = sanitize(&text);
            truncate(&mut line, LOG_LINE_MAX);
            self.logs.push_back(line);
        }
        self.log_open = l.end == LineEnd::Split;
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary, and lets go of the room a
/// long text took.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    if text.capacity() > 2 * max {
        text.shrink_to_fit();
    }
}

/// Seconds `v` has run by `now`: its closed intervals and the one in progress.
fn run_time(v: &VertexView, now: Time) -> f64 {
    let open = v
        .running_since()
        .map_or(0.0, |since| seconds_between(since, now).max(0.0));
    seconds(v.duration()) + open
}

/// What the terminal shows of a line of output: the part after the last `\r`, tabs as
/// spaces, without escape sequences or other control characters.
fn sanitize(text: &str) -> String {
    let text = text.trim_end_matches('\r');
    let text = text.rsplit('\r').next().unwrap_or("");
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\t' => out.push(' '),
            '\x1b' => match chars.next() {
                // CSI: ESC [ parameters final-byte.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: ESC ] text, ended by BEL or ESC \.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                // ESC, intermediate bytes, final byte (e.g. `ESC ( B`).
                Some(c) if ('\x20'..='\x2f').contains(&c) => {
                    for c in chars.by_ref() {
                        if !('\x20'..='\x2f').contains(&c) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Colours of a frame line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tone {
    Plain,
    Done,
    Error,
    Canceled,
    Warning,
    Faint,
}

impl Tone {
    fn paint(self, line: String) -> String {
        let code = match self {
            Tone::Plain => return line,
            Tone::Done => "34",
            Tone::Error => "31",
            Tone::Canceled | Tone::Warning => "33",
            Tone::Faint => "2",
        };
        format!("\x1b[{code}m{line}\x1b[0m")
    }
}

/// One line of the frame before height limiting.
struct Row {
    text: String,
    tone: Tone,
    /// Belongs to a step that is not running (dropped first when the frame is too tall).
    settled: bool,
}

/// `" => "` + name (+ `" "` + status), padded so that the timer ends at column `width - 1`,
/// as BuildKit's `align` does; `None` when the terminal is too narrow for it.
fn job_line(name: &str, status: &str, secs: f64, width: usize) -> Option<String> {
    const PFX: &str = " => ";
    let secs = if secs < 0.05 { 0.0 } else { secs };
    let timer = format!(" {secs:3.1}s");
    // BuildKit's timer string ends in "\n", hence the + 1.
    let mut left = width as isize - PFX.len() as isize - (timer.len() as isize + 1) - 1;
    let mut show_status = false;
    if !status.is_empty() && left + status.chars().count() as isize > 20 {
        show_status = true;
        left -= status.chars().count() as isize + 1;
    }
    if left < 12 {
        return None;
    }
    let name: String = name.chars().take(left as usize).collect();
    let mut line = format!("{PFX}{name}");
    if show_status {
        line.push(' ');
        line.push_str(status);
    }
    let pad_to = width.saturating_sub(timer.len() + 2);
    let len = line.chars().count();
    if len < pad_to {
        line.extend(std::iter::repeat_n(' ', pad_to - len));
    }
    line.push(' ');
    line.push_str(&timer);
    Some(line)
}

/// The lines of one frame (without line breaks).
///
/// `width` is the terminal's width; `height`, when given, limits the frame to `height - 2`
/// lines below the header, dropping lines of settled steps first (a final frame passes
/// `None`). `now` is in record time: the running timers count up to it. With `color`, lines
/// carry SGR colour codes (done blue, error red, canceled and warnings yellow, output faint).
///
/// ```
/// use buildkit_progressui::tty::{frame, TtyState};
/// use buildkit_events::Time;
///
/// let state = TtyState::new();
/// assert_eq!(frame(&state, 40, None, Time(0), false), ["[+] Building 0.0s (0/0)"]);
/// ```
pub fn frame(
    state: &TtyState,
    width: usize,
    height: Option<usize>,
    now: Time,
    color: bool,
) -> Vec<String> {
    let (completed, total) = state.counts();
    let elapsed = state
        .first_start()
        .map_or(0.0, |f| seconds_between(f, now).max(0.0));
    let mut header = format!("[+] Building {elapsed:.1}s ({completed}/{total})");
    if state.finished && completed == total && total > 0 {
        header.push_str(" FINISHED");
    }

    let mut rows = upload_rows(state.upload.as_ref(), now, width);
    for (v, extra) in state.view.iter().zip(&state.extra) {
        let running = v.is_running();
        let (prefix, tone) = match v.outcome() {
            None => ("", Tone::Plain),
            Some(Outcome::Done) => ("", Tone::Done),
            Some(Outcome::Cached) => ("CACHED ", Tone::Done),
            Some(Outcome::Failed(_)) => ("ERROR ", Tone::Error),
            Some(Outcome::Canceled) => ("CANCELED ", Tone::Canceled),
            Some(Outcome::Interrupted) => ("INTERRUPTED ", Tone::Canceled),
            Some(_) => ("", Tone::Plain),
        };
        let name = format!("{prefix}{}", v.name().replace('\t', " "));
        let run_time = run_time(v, now);
        if let Some(text) = job_line(&name, "", run_time, width) {
            rows.push(Row {
                text,
                tone,
                settled: !running,
            });
        }
        for s in &extra.statuses {
            let status = match s.total {
                Some(total) => format!("{} / {}", bytes(s.current), bytes(total)),
                None if s.current != 0 => bytes(s.current),
                None => String::new(),
            };
            let secs = match s.started {
                Some(start) => seconds_between(start, s.completed.unwrap_or(now)).max(0.0),
                None => 0.0,
            };
            let settled = s.completed.is_some() || !running;
            if let Some(text) = job_line(&format!("=> {}", s.id), &status, secs, width) {
                let tone = if s.completed.is_some() {
                    Tone::Done
                } else {
                    Tone::Plain
                };
                rows.push(Row {
                    text,
                    tone,
                    settled,
                });
            }
        }
        let more = (extra.more_warnings > 0).then(|| format!("{} more", extra.more_warnings));
        for w in extra.warnings.iter().chain(more.as_ref()) {
            if let Some(text) = job_line(&format!("WARN: {w}"), "", run_time, width) {
                rows.push(Row {
                    text,
                    tone: Tone::Warning,
                    settled: !running,
                });
            }
        }
        if running {
            let live = if state.records {
                state
                    .described
                    .get(&**v.digest())
                    .map(LiveLog::shown)
                    .unwrap_or_default()
            } else {
                extra.logs.iter().cloned().collect()
            };
            for line in &live {
                let text: String = format!(" => => # {line}")
                    .chars()
                    .take(width.saturating_sub(1))
                    .collect();
                rows.push(Row {
                    text,
                    tone: Tone::Faint,
                    settled: false,
                });
            }
        }
    }

    if let Some(height) = height {
        let limit = height.saturating_sub(2);
        while rows.len() > limit {
            match rows.iter().position(|r| r.settled) {
                Some(i) => rows.remove(i),
                None => rows.remove(0),
            };
        }
    }

    let mut lines = Vec::with_capacity(rows.len() + 1);
    lines.push(header);
    for row in rows {
        lines.push(if color {
            row.tone.paint(row.text)
        } else {
            row.text
        });
    }
    lines
}

/// The context upload's job line and its `transferring context:` status line, as BuildKit
/// shows its own `[internal] load build context` (the timer runs to `now` until it is done).
fn upload_rows(upload: Option<&docker_build::ContextUpload>, now: Time, width: usize) -> Vec<Row> {
    use crate::upload::{STATUS_ID, VERTEX_NAME};
    let Some(u) = upload else {
        return Vec::new();
    };
    let end = if u.done { u.at } else { now.max(u.at) };
    let secs = seconds_between(u.started, end).max(0.0);
    let tone = if u.done { Tone::Done } else { Tone::Plain };
    let size = bytes(i64::try_from(u.sent).unwrap_or(i64::MAX));
    [
        job_line(VERTEX_NAME, "", secs, width),
        job_line(&format!("=> {STATUS_ID}"), &size, secs, width),
    ]
    .into_iter()
    .flatten()
    .map(|text| Row {
        text,
        tone,
        settled: u.done,
    })
    .collect()
}

/// Terminal size: (width, height); height `None` when unknown. The caller detects it (this
/// crate has no terminal library); [`Tty`] asks before each frame, so a resized terminal gets
/// frames of its new size.
pub type SizeFn = fn() -> (usize, Option<usize>);

/// Puts [`frame`]s on a terminal.
#[derive(Debug)]
pub struct Tty<W> {
    out: W,
    state: TtyState,
    live: bool,
    color: bool,
    size: SizeFn,
    /// Lines of the frame on screen.
    drawn: usize,
    /// The caller's wall-clock time of the last frame.
    last_draw: Option<Time>,
    /// Wall clock minus record clock, fixed at the first start (live builds).
    clock_offset: Option<i128>,
}

impl<W: Write> Tty<W> {
    /// A renderer for `out`. `live`: redraw as events arrive (a build); otherwise only the final
    /// frame is drawn (a replay). `color`: use SGR colours (pass `false` when `NO_COLOR` is set).
    ///
    /// Live, the running timers count in the caller's wall-clock time (the `now` of
    /// [`Render::event`] and [`Render::idle`]), mapped onto the records' clock at the first
    /// start; a frame is drawn at most every 100 ms of it. A replay shows the final frame at the
    /// latest time the records carry and ignores `now`.
    pub fn new(out: W, live: bool, color: bool, size: SizeFn) -> Self {
        Self {
            out,
            state: TtyState::new(),
            live,
            color,
            size,
            drawn: 0,
            last_draw: None,
            clock_offset: None,
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// The state shown.
    pub fn state(&self) -> &TtyState {
        &self.state
    }

    /// The time a frame drawn at wall-clock time `wall` shows, in record time.
    fn frame_time(&self, wall: Time) -> Time {
        match self.clock_offset {
            Some(offset) if self.live && !self.state.finished => Time(wall.0 - offset),
            _ => self.state.latest.unwrap_or_default(),
        }
    }

    /// Whether a live frame is due at wall-clock time `wall` (a clock that went back counts as
    /// due, so that it cannot stop the redraws).
    fn frame_due(&self, wall: Time) -> bool {
        self.live
            && self
                .last_draw
                .is_none_or(|last| wall < last || wall.0 - last.0 >= FRAME_INTERVAL)
    }

    fn draw(&mut self, final_frame: bool, wall: Time) -> io::Result<()> {
        let (width, height) = (self.size)();
        let now = self.frame_time(wall);
        let lines = frame(
            &self.state,
            width,
            if final_frame { None } else { height },
            now,
            self.color,
        );
        let mut buf = Vec::new();
        if self.drawn > 0 {
            write!(buf, "\x1b[{}A\x1b[J", self.drawn)?;
        }
        for line in &lines {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        self.out.write_all(&buf)?;
        self.out.flush()?;
        self.drawn = lines.len();
        self.last_draw = Some(wall);
        Ok(())
    }
}

impl<W: Write> Render for Tty<W> {
    fn event(&mut self, event: &BuildEvent, now: Time) -> io::Result<()> {
        // With records, a live frame is drawn between two of them, as buildx applies a whole
        // record and then draws: as the next one comes, not inside one.
        let inside = self.state.records && matches!(event, BuildEvent::Vertex(_));
        if matches!(event, BuildEvent::Record(_)) && self.state.records && self.frame_due(now) {
            self.draw(false, now)?;
        }
        self.state.apply(event);
        if self.clock_offset.is_none() {
            // Like buildx, the record clock is mapped onto ours when the first vertex is seen
            // started.
            if let Some(start) = self.state.header_start {
                self.clock_offset = Some(now.0 - start.0);
            }
        }
        if let BuildEvent::Finished(_) = event {
            self.draw(true, now)?;
            self.state.write_summary(&mut self.out)?;
            return self.out.flush();
        }
        if !inside && !matches!(event, BuildEvent::Record(_)) && self.frame_due(now) {
            self.draw(false, now)?;
        }
        Ok(())
    }

    fn idle(&mut self, now: Time, _quiet: std::time::Duration) -> io::Result<()> {
        if !self.state.finished && self.frame_due(now) {
            self.draw(false, now)?;
        }
        Ok(())
    }
}

/// The sizes of what the tty view keeps, for the tests that bound its memory.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Footprint {
    vertices: usize,
    statuses: usize,
    warnings: usize,
    /// Bytes of the output lines kept to show under running steps.
    log_bytes: usize,
    /// Bytes of the output kept for the closing blocks (tails of running and failed steps;
    /// the others let theirs go), each bounded by [`FAILED_LOG_BYTES`].
    tail_bytes: usize,
}

#[cfg(test)]
impl TtyState {
    fn footprint(&self) -> Footprint {
        Footprint {
            vertices: self
                .view
                .len()
                .max(self.extra.len())
                .max(self.described.len()),
            statuses: self.extra.iter().map(|v| v.statuses.len()).sum(),
            warnings: self.extra.iter().map(|v| v.warnings.len()).sum(),
            log_bytes: self
                .extra
                .iter()
                .flat_map(|v| &v.logs)
                .map(String::len)
                .chain(
                    self.described
                        .values()
                        .flat_map(|l| l.lines.iter().map(String::len).chain([l.partial.len()])),
                )
                .sum(),
            tail_bytes: self
                .view
                .iter()
                .flat_map(|v| v.tail())
                .map(|l| l.bytes().len())
                .sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use buildkit_proto::StatusResponse;

    use super::*;
    use crate::testing::*;

    /// The corpus fed again and again (the memory stress input): after the first passes,
    /// nothing the view keeps grows.
    #[test]
    fn repeating_the_corpus_does_not_grow_the_view() {
        let tty = std::cell::RefCell::new(Tty::new(io::sink(), false, false, || (80, None)));
        let mut seen = Vec::new();
        repeat_corpus(
            13,
            |e| tty.borrow_mut().event(e, Time(0)).unwrap(),
            |_| seen.push(tty.borrow().state().footprint()),
        );
        // The lines shown under vertices that print a line or two per build fill up over the
        // first passes; then nothing changes, but for the closing-block tails of the steps the
        // recordings leave running or failed: their output adds up (the same snapshots again
        // start no new run), within each tail's budget.
        assert!(seen[10].vertices > 100, "{:?}", seen[10]);
        let state = tty.borrow();
        let view = state.state().vertices();
        let unsettled = view
            .iter()
            .filter(|v| matches!(v.outcome(), None | Some(Outcome::Failed(_))))
            .count();
        for f in &seen[11..] {
            let shown = Footprint {
                tail_bytes: seen[10].tail_bytes,
                ..*f
            };
            assert_eq!(shown, seen[10], "{seen:#?}");
            assert!(f.tail_bytes <= unsettled * FAILED_LOG_BYTES, "{f:?}");
        }
        // Steps that succeeded keep no tail.
        assert!(
            view.iter()
                .filter(|v| matches!(v.outcome(), Some(Outcome::Done | Outcome::Cached)))
                .all(|v| v.tail().next().is_none())
        );
    }

    /// Endless whole lines under a running step: its tail (kept for a closing block) stays
    /// within its budget, and counts what it let go.
    #[test]
    fn endless_lines_of_a_running_step_are_bounded() {
        let mut state = TtyState::new();
        state.apply(&started("a", "A", 0));
        let line = "y".repeat(1000);
        for i in 0..20_000 {
            state.apply(&log("a", &line, i));
        }
        let f = state.footprint();
        assert!(f.tail_bytes <= FAILED_LOG_BYTES, "{f:?}");
        let a = &state.vertices()[0];
        assert_eq!(a.dropped() + a.tail().count() as u64, 20_000);
        assert!(f.log_bytes <= LOG_LINES * 1000, "{f:?}");
    }

    /// Endless lines, statuses and warnings: what the view keeps of them is bounded.
    #[test]
    fn endless_output_statuses_and_warnings_are_bounded() {
        let mut state = TtyState::new();
        state.apply(&started("a", "A", 0));
        let piece = "z".repeat(1000);
        for i in 0..3_000 {
            let t = 1 + i;
            for e in [
                log_piece("a", &piece, LineEnd::Split, t),
                progress("a", &format!("layer {i}"), 1, Some(1), t, Some(t), Some(t)),
                warning("a", &format!("warning {i}")),
            ] {
                state.apply(&e);
            }
            let f = state.footprint();
            assert!(
                f.log_bytes + f.tail_bytes <= 2 * LOG_LINE_MAX + 1000
                    && f.statuses <= STATUSES_MAX
                    && f.warnings <= WARNINGS_MAX,
                "{f:?}"
            );
        }
        state.apply(&log_piece("a", "end", LineEnd::Newline, 5_000));
        state.apply(&completed(
            "a",
            Outcome::Failed("boom".into()),
            0,
            5_001,
            5_001,
        ));
        let f = state.footprint();
        assert!(f.log_bytes + f.tail_bytes <= 2 * LOG_LINE_MAX + 1000);
        let lines = frame(&state, 80, None, ms(5_001), false);
        assert_eq!(
            lines.iter().filter(|l| l.contains("=> layer ")).count(),
            STATUSES_MAX
        );
        assert!(lines.iter().any(|l| l.contains("=> layer 2999 ")));
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("WARN: {} more", 3_000 - WARNINGS_MAX))),
            "{lines:#?}"
        );
        let mut summary = Vec::new();
        state.write_summary(&mut summary).unwrap();
        let summary = String::from_utf8(summary).unwrap();
        // The failed step's last line, cut for the closing block.
        assert!(summary.contains(&format!("\n0.001 {}\n", "z".repeat(FAILED_TAIL_LINE_BYTES))));
    }

    fn state(events: &[BuildEvent]) -> TtyState {
        let mut state = TtyState::new();
        for e in events {
            state.apply(e);
        }
        state
    }

    fn running_build() -> Vec<BuildEvent> {
        vec![
            started("a", "[internal] load build definition from Dockerfile", 0),
            progress(
                "a",
                "transferring dockerfile: 60B",
                0,
                None,
                10,
                Some(0),
                Some(10),
            ),
            warning(
                "a",
                "JSONArgsRecommended: JSON arguments recommended (line 3)",
            ),
            completed("a", Outcome::Done, 0, 20, 20),
            started("b", "[1/2] FROM docker.io/library/busybox:latest", 20),
            completed("b", Outcome::Cached, 20, 20, 0),
            started(
                "c",
                "[2/2] RUN for i in 1 2 3; do echo $i; sleep 1; done",
                30,
            ),
            log("c", "1", 1_000),
            log_piece("c", "progress 50%\rprogress 100%", LineEnd::Newline, 1_500),
            log_piece("c", "\x1b[1mbold\x1b[0m\tand tab", LineEnd::Newline, 1_600),
        ]
    }

    #[test]
    fn frame_of_a_running_build() {
        let lines = frame(&state(&running_build()), 60, None, ms(2_430), false);
        let expected = [
            "[+] Building 2.4s (2/3)",
            " => [internal] load build definition from Dockerfile   0.0s",
            " => => transferring dockerfile: 60B                    0.0s",
            " => WARN: JSONArgsRecommended: JSON arguments recomme  0.0s",
            " => CACHED [1/2] FROM docker.io/library/busybox:lates  0.0s",
            " => [2/2] RUN for i in 1 2 3; do echo $i; sleep 1; do  2.4s",
            " => => # 1",
            " => => # progress 100%",
            " => => # bold and tab",
        ];
        assert_eq!(lines, expected);
        for line in &lines[1..6] {
            assert_eq!(line.chars().count(), 59, "{line:?}");
        }
    }

    #[test]
    fn final_frame_hides_output_and_says_finished() {
        let mut events = running_build();
        events.push(completed("c", Outcome::Done, 30, 3_100, 3_070));
        events.push(finished());
        let state = state(&events);
        let lines = frame(&state, 60, None, state.latest().unwrap(), false);
        assert_eq!(lines[0], "[+] Building 3.1s (3/3) FINISHED");
        assert_eq!(lines.len(), 6, "{lines:#?}");
        assert!(lines[5].ends_with(" 3.1s"), "{}", lines[5]);
        assert!(
            !lines.iter().any(|l| l.contains("# ")),
            "no output once done"
        );
    }

    #[test]
    fn failed_steps_are_marked_and_summarised() {
        let events = vec![
            started("a", "[2/3] RUN make", 0),
            log("a", "cc: error", 500),
            completed("a", Outcome::Failed("exit code: 2".into()), 0, 600, 600),
            started("b", "[3/3] RUN other", 0),
            completed("b", Outcome::Canceled, 0, 700, 700),
            started("c", "[x] gone", 0),
            completed("c", Outcome::Interrupted, 0, 800, 800),
        ];
        let state = state(&events);
        let lines = frame(&state, 40, None, ms(800), false);
        assert_eq!(
            lines,
            [
                "[+] Building 0.8s (3/3)",
                " => ERROR [2/3] RUN make           0.6s",
                " => CANCELED [3/3] RUN other       0.7s",
                " => INTERRUPTED [x] gone           0.8s",
            ]
        );
        let mut out = Vec::new();
        state.write_summary(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "------\n > [2/3] RUN make:\n0.500 cc: error\n------\n"
        );
    }

    fn summary(state: &TtyState) -> String {
        let mut out = Vec::new();
        state.write_summary(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn record() -> StatusResponse {
        StatusResponse::default()
    }

    /// Issue 15, item 7: after the view, buildx prints the whole output of a failed step (not
    /// its last 10 lines as the plain printer does).
    #[test]
    fn a_failed_step_shows_its_whole_output_after_the_view() {
        let mut events = vec![started("a", "[2/2] RUN make", 0)];
        for i in 0..25 {
            events.push(log("a", &format!("line {i}"), 100 + i));
        }
        events.push(completed(
            "a",
            Outcome::Failed("exit code: 2".into()),
            0,
            200,
            200,
        ));
        let mut expected = String::from("------\n > [2/2] RUN make:\n");
        for i in 0..25 {
            expected.push_str(&format!("0.{:03} line {i}\n", 100 + i));
        }
        expected.push_str("------\n");
        assert_eq!(summary(&state(&events)), expected);
    }

    /// The output kept for that block is bounded: beyond it the oldest lines are dropped, and
    /// the block says how many.
    #[test]
    fn a_failed_step_beyond_the_kept_output_says_how_many_lines_were_dropped() {
        let mut state = TtyState::new();
        state.apply(&started("a", "[2/2] RUN make", 0));
        for i in 0..10_007 {
            state.apply(&log("a", &format!("line {i}"), 1));
        }
        state.apply(&completed(
            "a",
            Outcome::Failed("exit code: 2".into()),
            0,
            2,
            2,
        ));
        let text = summary(&state);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..4],
            [
                "------",
                " > [2/2] RUN make:",
                "[... 7 earlier lines not kept ...]",
                "0.001 line 7"
            ]
        );
        assert_eq!(lines[lines.len() - 2..], ["0.001 line 10006", "------"]);
        assert_eq!(lines.len(), 10_000 + 4);
    }

    /// Issue 15, item 7: a line rewritten with `\r` (a progress bar) shows its latest state
    /// live, before its newline arrives, as buildx's terminal shows it.
    #[test]
    fn a_carriage_return_progress_bar_shows_live_before_its_newline() {
        let running = StatusResponse {
            vertexes: vec![vertex("a", "[1/1] RUN fetch", Some(0), None, "")],
            ..record()
        };
        let chunk = |data: &[u8], t| StatusResponse {
            logs: vec![vertex_log("a", data, t)],
            ..record()
        };
        let mut state = TtyState::new();
        let mut shown = Vec::new();
        for r in [
            running,
            chunk(b"fetching\n10%\r", 100),
            chunk(b"20%\r30", 200),
            chunk(b"%\r", 300),
            chunk(b"100%\ndone\n", 400),
        ] {
            for e in decode_records([r]) {
                state.apply(&e);
            }
            let lines = frame(&state, 40, None, ms(500), false);
            shown.push(lines[2..].join(" | "));
        }
        assert_eq!(
            shown,
            [
                "",
                " => => # fetching |  => => # 10%",
                " => => # fetching |  => => # 30",
                " => => # fetching |  => => # 30%",
                " => => # fetching |  => => # 100% |  => => # done",
            ]
        );
    }

    /// Issue 15, item 7: `(done/total)` counts every vertex the records described, started or
    /// not, as buildx does.
    #[test]
    fn the_header_counts_every_vertex_described_started_or_not() {
        let events = decode_records([StatusResponse {
            vertexes: vec![
                vertex("a", "A", Some(0), Some(10), ""),
                vertex("b", "B", Some(10), None, ""),
                vertex("c", "C", None, None, ""),
                vertex("d", "D", None, None, ""),
            ],
            ..record()
        }]);
        let lines = frame(&state(&events), 40, None, ms(10), false);
        assert_eq!(lines[0], "[+] Building 0.0s (1/4)");
    }

    /// Issue 15, item 7: a vertex kept from an earlier, canceled build carries its old start.
    /// buildx times the header from the start of the first vertex it saw started, so such a
    /// vertex arriving later does not push the header back.
    #[test]
    fn an_old_start_of_a_reused_vertex_does_not_inflate_the_header() {
        let events = decode_records([
            StatusResponse {
                vertexes: vec![
                    vertex("c", "C", None, None, ""),
                    vertex(
                        "a",
                        "[internal] load build definition",
                        Some(100_000),
                        None,
                        "",
                    ),
                ],
                ..record()
            },
            StatusResponse {
                vertexes: vec![vertex(
                    "b",
                    "[1/2] FROM base",
                    Some(91_100),
                    Some(100_500),
                    "",
                )],
                ..record()
            },
        ]);
        let lines = frame(&state(&events), 40, None, ms(103_000), false);
        assert_eq!(lines[0], "[+] Building 3.0s (1/3)");
        // The same from events alone (no records: a decoder not asked for them).
        let events = [
            started("a", "A", 100_000),
            started("b", "B", 91_100),
            completed("b", Outcome::Cached, 91_100, 100_500, 0),
        ];
        let lines = frame(&state(&events), 40, None, ms(103_000), false);
        assert_eq!(lines[0], "[+] Building 3.0s (1/2)");
    }

    /// Like buildx (apply a record, then draw), a live frame shows whole records: the one
    /// drawn as the next record comes shows every event of the records before and nothing of
    /// the next.
    #[test]
    fn live_frames_show_whole_records() {
        let events = decode_records([
            StatusResponse {
                vertexes: vec![
                    vertex("a", "A", Some(0), None, ""),
                    vertex("b", "B", None, None, ""),
                ],
                logs: vec![vertex_log("a", b"one\n", 10)],
                ..record()
            },
            StatusResponse {
                vertexes: vec![vertex("b", "B", Some(300), None, "")],
                logs: vec![vertex_log("a", b"two\n", 300)],
                ..record()
            },
        ]);
        let second = events
            .iter()
            .rposition(|e| matches!(e, BuildEvent::Record(_)))
            .unwrap();
        let mut tty = Tty::new(Vec::new(), true, false, || (40, None));
        let wall = |t: i64| Time(ms(t).0 + 1_000_000_000_000);
        for (i, e) in events.iter().enumerate() {
            tty.event(e, wall(if i < second { 0 } else { 300 }))
                .unwrap();
        }
        let out = String::from_utf8(tty.into_inner()).unwrap();
        // No frame before the first record is whole; the one as the second comes.
        assert_eq!(out.matches("[+] Building").count(), 1, "{out:?}");
        let last = &out[out.rfind("[+]").unwrap()..];
        assert_eq!(
            last.lines().collect::<Vec<_>>(),
            [
                "[+] Building 0.3s (0/2)",
                " => A                              0.3s",
                " => => # one",
            ],
            "{out:?}"
        );
    }

    #[test]
    fn colours_mark_outcomes() {
        let events = vec![
            started("a", "A", 0),
            completed("a", Outcome::Done, 0, 10, 10),
            started("b", "B", 0),
            completed("b", Outcome::Failed("x".into()), 0, 10, 10),
            started("c", "C", 0),
            log("c", "out", 5),
        ];
        let lines = frame(&state(&events), 30, None, ms(10), true);
        assert_eq!(lines[1], "\x1b[34m => A                    0.0s\x1b[0m");
        assert_eq!(lines[2], "\x1b[31m => ERROR B              0.0s\x1b[0m");
        assert_eq!(lines[3], " => C                    0.0s");
        assert_eq!(lines[4], "\x1b[2m => => # out\x1b[0m");
    }

    #[test]
    fn a_short_terminal_drops_finished_lines_first() {
        let mut events = Vec::new();
        for i in 0..6 {
            let d = format!("d{i}");
            events.push(started(&d, &format!("step {i}"), 0));
            events.push(completed(&d, Outcome::Done, 0, 100, 100));
        }
        events.push(started("r", "running", 0));
        events.push(log("r", "x", 50));
        let lines = frame(&state(&events), 40, Some(6), ms(200), false);
        assert_eq!(
            lines,
            [
                "[+] Building 0.2s (6/7)",
                " => step 4                         0.1s",
                " => step 5                         0.1s",
                " => running                        0.2s",
                " => => # x",
            ]
        );
    }

    #[test]
    fn job_lines_are_aligned_and_left_out_when_too_narrow() {
        let line = job_line("=> sha256:abcdef", "1.00MB / 2.00MB", 0.3, 50).unwrap();
        assert_eq!(line, " => => sha256:abcdef 1.00MB / 2.00MB         0.3s");
        assert_eq!(line.len(), 49);
        // Like BuildKit, a line whose name would get fewer than 12 columns is left out.
        assert_eq!(
            job_line("=> sha256:abcdef", "1.00MB / 2.00MB", 0.3, 30),
            None
        );
        let line = job_line("=> sha256:abcdef", "", 0.3, 30).unwrap();
        assert_eq!(line, " => => sha256:abcdef     0.3s");
        assert_eq!(line.len(), 29);
        assert_eq!(job_line("anything", "", 0.0, 20), None);
    }

    #[test]
    fn sanitize_keeps_what_a_terminal_shows() {
        assert_eq!(sanitize("a\rb\r"), "b");
        assert_eq!(sanitize("\x1b[31mred\x1b[0m\tx\x07"), "red x");
        assert_eq!(sanitize("\x1b(Bplain"), "plain");
        assert_eq!(
            sanitize("\x1b]0;title\x07text\x1b]8;;u\x1b\\link"),
            "textlink"
        );
    }

    #[test]
    fn a_live_view_redraws_over_the_previous_frame() {
        let mut tty = Tty::new(Vec::new(), true, false, || (40, Some(20)));
        tty.event(&started("a", "A", 0), Time(0)).unwrap();
        let first = String::from_utf8(tty.out.clone()).unwrap();
        assert!(first.starts_with("[+] Building "), "{first:?}");
        assert_eq!(first.lines().count(), 2, "{first:?}");
        tty.event(&completed("a", Outcome::Done, 0, 100, 100), Time(0))
            .unwrap();
        tty.event(&finished(), Time(0)).unwrap();
        let all = String::from_utf8(tty.into_inner()).unwrap();
        let last = all
            .rfind("\x1b[2A\x1b[J")
            .expect("the final frame replaces the first");
        assert_eq!(
            &all[last..],
            "\x1b[2A\x1b[J[+] Building 0.1s (1/1) FINISHED\n => A                              0.1s\n"
        );
    }

    #[test]
    fn a_replay_draws_only_the_final_frame() {
        let mut tty = Tty::new(Vec::new(), false, false, || (40, Some(20)));
        for e in running_build() {
            tty.event(&e, Time(0)).unwrap();
        }
        assert!(tty.out.is_empty());
        tty.event(&finished(), Time(0)).unwrap();
        let out = String::from_utf8(tty.into_inner()).unwrap();
        assert!(out.starts_with("[+] Building 1.6s (2/3)\n"), "{out}");
        assert!(!out.contains('\x1b'), "{out:?}");
    }

    #[test]
    fn live_timers_count_in_the_callers_time_and_frames_are_throttled() {
        let mut tty = Tty::new(Vec::new(), true, false, || (40, None));
        // The daemon's clock and ours differ: the first start fixes the offset.
        let wall = |t: i64| Time(ms(t).0 + 1_000_000_000_000);
        tty.event(&started("a", "A", 5_000), wall(0)).unwrap();
        // 50 ms later: too soon for a new frame.
        tty.event(&log("a", "x", 5_050), wall(50)).unwrap();
        tty.idle(wall(80), std::time::Duration::from_millis(30))
            .unwrap();
        let frames = |tty: &Tty<Vec<u8>>| {
            String::from_utf8(tty.out.clone())
                .unwrap()
                .matches("[+] Building")
                .count()
        };
        assert_eq!(frames(&tty), 1);
        // 2.5 s of wall time after the start, and no event since: the timer shows it.
        tty.idle(wall(2_500), std::time::Duration::from_millis(2_450))
            .unwrap();
        assert_eq!(frames(&tty), 2);
        let out = String::from_utf8(tty.out.clone()).unwrap();
        let last = &out[out.rfind("[+]").unwrap()..];
        assert!(last.starts_with("[+] Building 2.5s (0/1)\n"), "{last:?}");
        assert!(
            last.contains(" => A                              2.5s\n"),
            "{last:?}"
        );
    }
}
