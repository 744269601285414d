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
//! Differences from BuildKit's display: the `(done/total)` count covers vertices that have
//! started (BuildKit also counts described ones that never ran); the last lines of a running
//! step are shown by keeping its last 6 lines (a `\r` keeps what follows it, escape sequences
//! are dropped) instead of emulating a terminal; a step still running when the body ended is
//! shown as `INTERRUPTED`.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use buildkit_events::{Duration, Event, LineEnd, LogLine, Outcome, Time};
use docker_build::decode::BuildEvent;

use super::Render;
use super::format::{bytes, log_elapsed, seconds, seconds_between};

/// Lines of output shown under a running step.
pub const LOG_LINES: usize = 6;
/// Lines of a failed step repeated after the final frame.
const ERROR_TAIL: usize = 10;
/// Shortest wall time between two live frames.
const FRAME_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Everything a frame shows, folded from events.
#[derive(Debug, Default, Clone)]
pub struct TtyState {
    vertices: Vec<VertexView>,
    by_digest: HashMap<Arc<str>, usize>,
    first_start: Option<Time>,
    latest: Option<Time>,
    finished: bool,
    /// Vertices described but never started, known once the build finished.
    pending: usize,
    image_id: Option<String>,
}

#[derive(Debug, Clone)]
struct VertexView {
    name: String,
    /// Run time of the intervals that ended.
    closed: Duration,
    /// Start of the interval in progress.
    running_since: Option<Time>,
    /// Start of the latest interval (log times are relative to it).
    interval_start: Time,
    outcome: Option<Outcome>,
    statuses: Vec<StatusView>,
    warnings: Vec<String>,
    /// Last lines, sanitized for the terminal.
    logs: VecDeque<String>,
    /// The last entry of `logs` is a line still being written.
    log_open: bool,
    /// Last complete lines as `<elapsed> <text>`, for the error block.
    tail: VecDeque<Vec<u8>>,
    /// `<elapsed> <text so far>` of a line still being written.
    tail_open: Vec<u8>,
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

    /// Start of the first vertex.
    pub fn first_start(&self) -> Option<Time> {
        self.first_start
    }

    fn observe(&mut self, t: Time) {
        if self.latest.is_none_or(|l| t > l) {
            self.latest = Some(t);
        }
    }

    /// Folds one event into the state.
    pub fn apply(&mut self, event: &BuildEvent) {
        match event {
            BuildEvent::Vertex(Event::Started(s)) => {
                self.observe(s.started);
                if self.first_start.is_none_or(|f| s.started < f) {
                    self.first_start = Some(s.started);
                }
                let v = self.vertex(&s.digest);
                v.name = s.name.clone();
                v.running_since = Some(s.started);
                v.interval_start = s.started;
                v.outcome = None;
            }
            BuildEvent::Vertex(Event::Completed(c)) => {
                self.observe(c.completed);
                let v = self.vertex(&c.digest);
                if v.name.is_empty() {
                    v.name = c.name.clone();
                }
                v.closed = c.duration;
                v.running_since = None;
                v.outcome = Some(c.outcome.clone());
            }
            BuildEvent::Vertex(Event::Log(l)) => {
                self.observe(l.timestamp);
                if let Some(&i) = self.by_digest.get(&l.digest) {
                    self.vertices[i].log(l);
                }
            }
            BuildEvent::Vertex(Event::Progress(p)) => {
                self.observe(p.timestamp);
                let Some(&i) = self.by_digest.get(&p.digest) else {
                    return;
                };
                let v = &mut self.vertices[i];
                match v.statuses.iter_mut().find(|s| s.id == p.id) {
                    Some(s) => {
                        s.current = p.current;
                        s.total = p.total;
                        s.started = p.started.or(s.started);
                        s.completed = p.completed;
                    }
                    // Like BuildKit, a status is shown once it has started.
                    None if p.started.is_some() => v.statuses.push(StatusView {
                        id: p.id.clone(),
                        current: p.current,
                        total: p.total,
                        started: p.started,
                        completed: p.completed,
                    }),
                    None => {}
                }
            }
            BuildEvent::Vertex(Event::Warning(w)) => {
                if let Some(&i) = self.by_digest.get(&w.digest) {
                    let short = sanitize(&String::from_utf8_lossy(&w.short));
                    self.vertices[i].warnings.push(short);
                }
            }
            BuildEvent::ImageBuilt { id } => self.image_id = Some(id.clone()),
            BuildEvent::Finished(summary) => {
                self.finished = true;
                self.pending = summary.vertices.pending;
            }
            _ => {}
        }
    }

    fn vertex(&mut self, digest: &str) -> &mut VertexView {
        let next = self.vertices.len();
        let i = *self.by_digest.entry(digest.into()).or_insert(next);
        if i == next {
            self.vertices.push(VertexView {
                name: String::new(),
                closed: Duration(0),
                running_since: None,
                interval_start: Time(0),
                outcome: None,
                statuses: Vec::new(),
                warnings: Vec::new(),
                logs: VecDeque::new(),
                log_open: false,
                tail: VecDeque::new(),
                tail_open: Vec::new(),
            });
        }
        &mut self.vertices[i]
    }

    /// Writes BuildKit's closing block (`------`, ` > name:`, last lines, `------`) for every
    /// failed step, and our `Successfully built <id>` line.
    pub fn write_summary(&self, out: &mut impl Write) -> io::Result<()> {
        for v in &self.vertices {
            if !matches!(v.outcome, Some(Outcome::Failed(_))) {
                continue;
            }
            writeln!(out, "------")?;
            writeln!(out, " > {}:", v.name)?;
            for line in v
                .tail
                .iter()
                .chain(Some(&v.tail_open).filter(|l| !l.is_empty()))
            {
                out.write_all(line)?;
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

impl VertexView {
    fn log(&mut self, l: &LogLine) {
        let text = String::from_utf8_lossy(&l.bytes);
        if self.log_open {
            if let Some(last) = self.logs.back_mut() {
                last.push_str(&text);
                *last = sanitize(last);
            }
        } else {
            if self.logs.len() == LOG_LINES {
                self.logs.pop_front();
            }
            self.logs.push_back(sanitize(&text));
        }
        if self.tail_open.is_empty() {
            let elapsed = seconds_between(self.interval_start, l.timestamp);
            self.tail_open = format!("{} ", log_elapsed(elapsed)).into_bytes();
        }
        self.tail_open.extend_from_slice(&l.bytes);
        self.log_open = l.end == LineEnd::Split;
        if !self.log_open {
            if self.tail.len() == ERROR_TAIL {
                self.tail.pop_front();
            }
            self.tail.push_back(std::mem::take(&mut self.tail_open));
        }
    }

    fn run_time(&self, now: Time) -> f64 {
        let open = self
            .running_since
            .map_or(0.0, |since| seconds_between(since, now).max(0.0));
        seconds(self.closed) + open
    }
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
/// use bktrace::render::tty::{frame, TtyState};
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
    let completed = state
        .vertices
        .iter()
        .filter(|v| v.running_since.is_none())
        .count();
    let total = state.vertices.len() + state.pending;
    let elapsed = state
        .first_start
        .map_or(0.0, |f| seconds_between(f, now).max(0.0));
    let mut header = format!("[+] Building {elapsed:.1}s ({completed}/{total})");
    if state.finished && completed == total && total > 0 {
        header.push_str(" FINISHED");
    }

    let mut rows = Vec::new();
    for v in &state.vertices {
        let running = v.running_since.is_some();
        let (prefix, tone) = match &v.outcome {
            None => ("", Tone::Plain),
            Some(Outcome::Done) => ("", Tone::Done),
            Some(Outcome::Cached) => ("CACHED ", Tone::Done),
            Some(Outcome::Failed(_)) => ("ERROR ", Tone::Error),
            Some(Outcome::Canceled) => ("CANCELED ", Tone::Canceled),
            Some(Outcome::Interrupted) => ("INTERRUPTED ", Tone::Canceled),
        };
        let name = format!("{prefix}{}", v.name.replace('\t', " "));
        let run_time = v.run_time(now);
        if let Some(text) = job_line(&name, "", run_time, width) {
            rows.push(Row {
                text,
                tone,
                settled: !running,
            });
        }
        for s in &v.statuses {
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
        for w in &v.warnings {
            if let Some(text) = job_line(&format!("WARN: {w}"), "", run_time, width) {
                rows.push(Row {
                    text,
                    tone: Tone::Warning,
                    settled: !running,
                });
            }
        }
        if running {
            for line in &v.logs {
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

/// Terminal size: (width, height); height `None` when unknown.
pub type SizeFn = fn() -> (usize, Option<usize>);

/// The size of the terminal on stdout, or 80 columns and no height limit.
pub fn stdout_size() -> (usize, Option<usize>) {
    match terminal_size::terminal_size() {
        Some((terminal_size::Width(w), terminal_size::Height(h))) if w > 0 => {
            (usize::from(w), (h > 0).then_some(usize::from(h)))
        }
        _ => (80, None),
    }
}

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
    last_draw: Option<Instant>,
    /// Wall clock minus record clock, fixed at the first start (live builds).
    clock_offset: Option<i128>,
}

fn wall_nanos() -> i128 {
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

impl<W: Write> Tty<W> {
    /// A renderer for `out`. `live`: redraw as events arrive (a build); otherwise only the final
    /// frame is drawn (a replay). `color`: use SGR colours (pass `false` when `NO_COLOR` is set).
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

    fn now(&self) -> Time {
        match self.clock_offset {
            Some(offset) if self.live && !self.state.finished => Time(wall_nanos() - offset),
            _ => self.state.latest.unwrap_or_default(),
        }
    }

    fn draw(&mut self, final_frame: bool) -> io::Result<()> {
        let (width, height) = (self.size)();
        let now = self.now();
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
        self.last_draw = Some(Instant::now());
        Ok(())
    }
}

impl<W: Write> Render for Tty<W> {
    fn event(&mut self, event: &BuildEvent) -> io::Result<()> {
        if let BuildEvent::Vertex(Event::Started(s)) = event {
            if self.clock_offset.is_none() {
                self.clock_offset = Some(wall_nanos() - s.started.0);
            }
        }
        self.state.apply(event);
        if let BuildEvent::Finished(_) = event {
            self.draw(true)?;
            self.state.write_summary(&mut self.out)?;
            return self.out.flush();
        }
        if self.live && self.last_draw.is_none_or(|t| t.elapsed() >= FRAME_INTERVAL) {
            self.draw(false)?;
        }
        Ok(())
    }

    fn idle(&mut self, _quiet: std::time::Duration) -> io::Result<()> {
        if self.live
            && !self.state.finished
            && self.last_draw.is_none_or(|t| t.elapsed() >= FRAME_INTERVAL)
        {
            self.draw(false)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::*;

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
        tty.event(&started("a", "A", 0)).unwrap();
        let first = String::from_utf8(tty.out.clone()).unwrap();
        assert!(first.starts_with("[+] Building "), "{first:?}");
        assert_eq!(first.lines().count(), 2, "{first:?}");
        tty.event(&completed("a", Outcome::Done, 0, 100, 100))
            .unwrap();
        tty.event(&finished()).unwrap();
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
            tty.event(&e).unwrap();
        }
        assert!(tty.out.is_empty());
        tty.event(&finished()).unwrap();
        let out = String::from_utf8(tty.into_inner()).unwrap();
        assert!(out.starts_with("[+] Building 1.6s (2/3)\n"), "{out}");
        assert!(!out.contains('\x1b'), "{out:?}");
    }
}
