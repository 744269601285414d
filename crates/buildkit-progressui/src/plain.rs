//! `--progress=plain`: BuildKit's plain printer (`util/progress/progressui`, `printer.go`
//! `textMux` over `display.go` `trace`), ported to work on decoded events.
//!
//! ```text
//! #1 [internal] load build definition from Dockerfile
//! #1 transferring dockerfile: 60B done
//! #1 DONE 0.0s
//!
//! #5 [2/2] RUN echo 1
//! #5 0.084 1
//! #5 DONE 0.2s
//! ```
//!
//! Formats (all BuildKit's):
//! - a block starts with a blank line (not before the first) and `#N <name>`; `N` counts
//!   vertices in the order they are first printed;
//! - `#N <elapsed> <line>` for output, elapsed = log time − start of the vertex's latest
//!   interval (3 decimals below 10 s, 2 below 100 s, else 1);
//! - `#N <id>[ <cur> / <total>][ <t>s][ done]` for sub-task progress, only for statuses seen
//!   with a start time; an unfinished one is skipped unless it moved ≥ 5 % of its total or
//!   5 s passed (record time) since the last line printed for that id;
//! - `#N WARN: <short>`;
//! - `#N DONE 0.3s` (sum of the merged run intervals) / `#N CACHED` / `#N ERROR: <error>` /
//!   `#N CANCELED` once the vertex is complete and none of its statuses printed in the same
//!   pass is still open;
//! - `#N ...` when the printer switches away from a vertex that is still running;
//! - at the end, for each failed step, `------`, ` > <name>:`, its last 10 lines (with their
//!   elapsed prefix, without `#N`), `------`.
//!
//! When lines are printed also follows BuildKit: updates are folded into per-vertex state and
//! printed in passes. BuildKit runs a pass at most every 100 ms (and 150 ms after the last
//! update); each pass prints the vertices that completed (the open one first, then by
//! completion time) and then one running vertex, chosen by its anti-flicker heuristic (stay
//! on the open vertex unless it has been quiet for 5 s or another waited 10 s). BuildKit
//! measures those delays with the wall clock; this port measures them with the times the
//! records carry (the latest seen so far), so a replay prints the same text whatever the
//! chunking of the body, and close to what buildx printed while the build ran.
//!
//! Like BuildKit, a pass comes only once a whole record is applied: given record boundaries
//! ([`BuildEvent::RecordApplied`], `DecoderConfig::boundaries`, or [`BuildEvent::Record`]s),
//! a record ends at its `RecordApplied` (or the next record, any other event, a live build's
//! quiet). Before the first boundary (the first record, with `RecordApplied`) and without
//! any (the classic builder, or a decoder not asked for them) every event counts as a record
//! of its own.
//!
//! Where this printer differs from BuildKit's:
//! - output of a vertex no record has started is not shown (BuildKit shows it if an earlier
//!   record described the vertex as pending);
//! - stdout and stderr of a step are split into lines separately (BuildKit mixes them);
//! - vertices of a progress group are shown individually (BuildKit merges them into one);
//! - when the body ends while a step is still running (the client went away), the step is
//!   closed with `#N ...` (BuildKit prints nothing more for it);
//! - memory does not grow with the output: a vertex holding more than 1 MiB of unprinted
//!   output (lines, warnings) is printed at once, whatever the anti-flicker and fairness
//!   delays say; and of a line left unfinished when the printer turns to another vertex,
//!   BuildKit prints the whole line again when it comes back, this printer only the rest
//!   once the printed start is longer than 64 KiB;
//! - ours: daemon text outside any step (`Successfully tagged x`) is printed as its own block,
//!   and `Successfully built <image id>` follows the daemon's report of the image id (before
//!   its next text, e.g. `Successfully tagged x`; left out when the daemon says
//!   `Successfully built` itself, as the classic builder does). The build's failure message is not printed here: the
//!   CLI prints it to stderr, as buildx prints its `ERROR:` line.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{self, Write};

use buildkit_events::{Event, LineEnd, Outcome, Progress, Time};
use docker_build::decode::BuildEvent;

use crate::Render;
use crate::format::{bytes, log_elapsed, push_log_elapsed, seconds, seconds_between};
use crate::github::Commands;
use crate::view::{FAILED_TAIL_LINE_BYTES, FAILED_TAIL_LINES, Vertices};

mod upload;

/// An unfinished status is printed again after this much record time (`minTimeDelta`).
pub(crate) const MIN_TIME_DELTA: i128 = 5_000_000_000;
/// … or after moving this share of its total (`minProgressDelta`).
const MIN_PROGRESS_DELTA: f64 = 0.05;
/// Stay on a running vertex this long before giving way (`antiFlicker`).
const ANTI_FLICKER_SECS: f64 = 5.0;
/// Show a waiting vertex after this long (`maxDelay`).
const MAX_DELAY_NANOS: i128 = 10_000_000_000;
/// At most one pass per this much time (the display limiter).
const DISPLAY_INTERVAL: i128 = 100_000_000;
/// A pass this long after the last update (the ticker).
const TICK_INTERVAL: i128 = 150_000_000;
/// Output a vertex may hold unprinted, in bytes: beyond it the printer turns to the vertex at
/// once (ours; BuildKit waits for its delays, however much output piles up).
const HELD_MAX: usize = 1024 * 1024;
/// What a held line costs besides its bytes (its `Vec` and the allocation), counted in
/// [`HELD_MAX`].
const LINE_OVERHEAD: usize = 48;
/// Statuses a vertex keeps (in the order first seen, which is the order they are printed in a
/// pass); beyond this the completed ones are let go after a pass.
const STATUSES_MAX: usize = 256;
/// Longest printed start of an unfinished line kept to print again should the printer leave
/// the vertex mid-line (BuildKit prints the whole line again); beyond it only the rest is
/// printed when the printer comes back.
const REPRINT_MAX: usize = 64 * 1024;

/// The plain renderer. Writes to any [`Write`].
#[derive(Debug)]
pub struct Plain<W> {
    /// The output, with GitHub's workflow commands around the blocks in GitHub mode.
    out: Framed<W>,
    /// Names, intervals, outcomes and tails of the vertices, in the order they first started.
    view: Vertices,
    /// What this printer keeps per vertex, by the vertex's position in `view`.
    vertices: Vec<Vtx>,
    /// Vertices with something to print (`trace.updates`), by position (a `BTreeSet`: a
    /// few small integers, inserted once per event, cheaper to compare than to hash).
    updates: BTreeSet<usize>,
    next_number: u32,
    /// The vertex whose block is open (`textMux.current`).
    current: Option<usize>,
    not_first: bool,
    /// The last block printed was daemon text (consecutive texts share a block).
    in_text: bool,
    /// Last printed (current, timestamp) per status id (`textMux.last`).
    last: HashMap<String, (i64, Time)>,
    /// The latest time the events carried: this printer's clock.
    clock: Option<Time>,
    last_allowed: Option<Time>,
    last_update: Option<Time>,
    /// Our `Successfully built <id>` line, held until it is clear the daemon does not say it.
    pending_built: Option<String>,
    /// The context upload's block (`upload.rs`).
    upload: upload::UploadBlock,
    /// Record boundaries come ([`BuildEvent::RecordApplied`] after a record's events, or
    /// [`BuildEvent::Record`] before them): a pass waits for the end of a record (BuildKit
    /// applies a whole record, then prints).
    records: bool,
    /// Events of a record were applied and its pass is still to come.
    in_record: bool,
}

#[derive(Debug, Default)]
struct Vtx {
    /// The `#N` of its block; 0 until first printed.
    number: u32,
    /// Statuses seen with a start time (the completed ones only until there are more than
    /// [`STATUSES_MAX`]).
    statuses: Vec<Progress>,
    status_updates: HashSet<String>,
    /// Warnings not printed yet.
    warnings: Vec<bytes::Bytes>,
    /// Lines not printed yet, each `<elapsed> <text>`; the last one may be partial.
    logs: Vec<Vec<u8>>,
    logs_partial: bool,
    /// How much of `logs[0]` was printed already (its start is dropped once longer than
    /// [`REPRINT_MAX`]).
    logs_offset: usize,
    /// `logs[0]` continues a line printed in an earlier pass of the open block: the rest
    /// follows from `logs_offset`, without a `#N` prefix.
    logs_continued: bool,
    /// Bytes of `logs` not printed yet.
    held: usize,
    /// Updates since the vertex last got the printer's attention, and when that began.
    count: u64,
    last_block_time: Option<Time>,
}

impl Vtx {
    fn update(&mut self, n: u64, now: Time) {
        if self.count == 0 {
            self.last_block_time = Some(now);
        }
        self.count += n;
    }
}

impl<W: Write> Plain<W> {
    /// A renderer writing to `out`.
    pub fn new(out: W) -> Self {
        Self::framed(out, None)
    }

    /// A renderer writing to `out`, framed by `github`'s workflow commands when given (the
    /// GitHub mode, [`crate::github`]).
    pub(crate) fn framed(out: W, github: Option<Commands>) -> Self {
        Self {
            out: Framed {
                inner: out,
                github,
                written: 0,
            },
            view: Vertices::new(FAILED_TAIL_LINES, FAILED_TAIL_LINE_BYTES),
            vertices: Vec::new(),
            updates: BTreeSet::new(),
            next_number: 0,
            current: None,
            not_first: false,
            in_text: false,
            last: HashMap::new(),
            clock: None,
            last_allowed: None,
            last_update: None,
            pending_built: None,
            upload: upload::UploadBlock::default(),
            records: false,
            in_record: false,
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out.inner
    }

    /// The GitHub framing's writer and commands (GitHub mode only).
    pub(crate) fn github(&mut self) -> Option<(&mut W, &mut Commands)> {
        let Framed { inner, github, .. } = &mut self.out;
        github.as_mut().map(|g| (inner, g))
    }

    /// Starts a block: closes the GitHub group of the last one, writes the blank line between
    /// blocks, and opens a group titled `group` (GitHub mode).
    fn begin_block(&mut self, group: Option<&str>) -> io::Result<()> {
        let Framed { inner, github, .. } = &mut self.out;
        if let Some(g) = github.as_mut() {
            g.end_group(inner)?;
        }
        if self.not_first {
            // A blank line is no workflow command: written outside the group, as it is.
            inner.write_all(b"\n")?;
            if let Some(g) = github.as_mut() {
                g.wrote(b"\n");
            }
        }
        self.not_first = true;
        if let (Some(g), Some(title)) = (github.as_mut(), group) {
            g.group(inner, title)?;
        }
        Ok(())
    }

    fn now(&self) -> Time {
        self.clock.unwrap_or_default()
    }

    /// A printing pass, as BuildKit's ticker runs it (live builds call it through
    /// [`Render::idle`] when no event came for 150 ms; replays never do, which keeps their
    /// output independent of timing).
    pub fn refresh(&mut self) -> io::Result<()> {
        self.print()?;
        self.out.flush()
    }

    /// Moves the clock to `t` (running the ticker's pass if 150 ms passed since the last
    /// update, before the first event of a record), applies the vertex event, and at the end
    /// of its record runs a pass if the display limiter allows. With records, the end of a
    /// record is the next record or any other event ([`Plain::end_record`]); without, every
    /// event is a record of its own.
    fn step(&mut self, t: Option<Time>, event: &BuildEvent) -> io::Result<()> {
        if let Some(t) = t {
            if let Some(last) = self.last_update {
                if !self.in_record && t.0 >= last.0 + TICK_INTERVAL {
                    self.print()?;
                }
            }
            if self.clock.is_none_or(|c| t > c) {
                self.clock = Some(t);
            }
        }
        let vertex = self.apply(event);
        self.last_update = Some(self.now());
        if let Some(i) = vertex {
            if self.vertices[i].held > HELD_MAX {
                // Ours: a vertex holding too much output is printed now, whatever BuildKit's
                // delays say (and inside a record), so that memory does not grow with the
                // output of a vertex left waiting.
                self.print_vtx(i)?;
            }
        }
        self.in_record = true;
        if !self.records {
            self.end_record()?;
        }
        Ok(())
    }

    /// The record whose events were applied is whole: the display limiter's pass, if it
    /// allows one (`update` then `print` in BuildKit's display loop).
    fn end_record(&mut self) -> io::Result<()> {
        if !std::mem::take(&mut self.in_record) {
            return Ok(());
        }
        let now = self.now();
        if self
            .last_allowed
            .is_none_or(|l| now.0 >= l.0 + DISPLAY_INTERVAL)
        {
            self.last_allowed = Some(now);
            self.print()?;
        }
        Ok(())
    }

    /// Folds a vertex event into the view and this printer's state. Events of a vertex no
    /// record has started are not shown (see the module notes).
    fn apply(&mut self, event: &BuildEvent) -> Option<usize> {
        let now = self.now();
        let i = self.view.apply(event)?;
        if self.vertices.len() < self.view.len() {
            self.vertices.resize_with(self.view.len(), Vtx::default);
        }
        let since = self.view[i].interval_start();
        let v = &mut self.vertices[i];
        match event {
            BuildEvent::Vertex(Event::Started(_) | Event::Completed(_)) => {
                v.update(1, now);
                self.updates.insert(i);
            }
            BuildEvent::Vertex(Event::Log(l)) => {
                if v.logs_partial && !v.logs.is_empty() {
                    v.logs
                        .last_mut()
                        .expect("not empty")
                        .extend_from_slice(&l.bytes);
                    v.held += l.bytes.len();
                } else {
                    let nanos = since.map_or(0, |start| l.timestamp.0 - start.0);
                    let mut line = Vec::with_capacity(l.bytes.len() + 8);
                    push_log_elapsed(&mut line, nanos);
                    line.extend_from_slice(&l.bytes);
                    v.held += line.len() + LINE_OVERHEAD;
                    v.logs.push(line);
                }
                v.logs_partial = l.end == LineEnd::Split;
                v.update(1, now);
                self.updates.insert(i);
            }
            BuildEvent::Vertex(Event::Progress(p)) => {
                match v.statuses.iter_mut().find(|s| s.id == p.id) {
                    Some(s) => *s = p.clone(),
                    // Like BuildKit, a status is listed once it is seen with a start time.
                    None if p.started.is_some() => v.statuses.push(p.clone()),
                    None => {}
                }
                v.status_updates.insert(p.id.clone());
                v.update(1, now);
                self.updates.insert(i);
            }
            BuildEvent::Vertex(Event::Warning(w)) => {
                v.held += w.short.len();
                v.warnings.push(w.short.clone());
                v.update(1, now);
                // BuildKit does not mark the vertex updated for a warning; it shows with the
                // next update of the vertex.
            }
            _ => {}
        }
        Some(i)
    }

    /// `textMux.print`: one pass.
    fn print(&mut self) -> io::Result<()> {
        let mut completed = Vec::new();
        let mut rest = Vec::new();
        for v in &self.view {
            let i = v.index();
            if !self.updates.contains(&i) {
                continue;
            }
            if v.is_running() {
                rest.push(i);
            } else {
                completed.push(i);
            }
        }
        let current = self.current;

        // Items that have completed are printed first: the open one, then by completion.
        if let Some(cur) = current {
            if completed.contains(&cur) {
                self.print_vtx(cur)?;
            }
        }
        completed.sort_by_key(|&i| self.view[i].stop());
        for &i in &completed {
            if Some(i) != current {
                self.print_vtx(i)?;
            }
        }

        if rest.is_empty() {
            if let Some(cur) = current {
                if self.view[cur].is_running() {
                    return Ok(());
                }
            }
            // Make any open vertex active.
            let open = self.view.iter().find(|v| v.is_running()).map(|v| v.index());
            if let Some(i) = open {
                self.print_vtx(i)?;
            }
            return Ok(());
        }

        // Now the active one.
        if let Some(cur) = current {
            if rest.contains(&cur) {
                self.print_vtx(cur)?;
            }
        }

        struct Stat {
            block_time: f64,
            speed: f64,
            share: f64,
            over_limit: bool,
        }
        let now = self.now();
        if let Some(cur) = current {
            if !rest.contains(&cur) {
                rest.push(cur);
            }
        }
        let mut stats: HashMap<usize, Stat> = HashMap::new();
        let mut sum = 0.0;
        let mut max: Option<usize> = None;
        for &i in &rest {
            let v = &self.vertices[i];
            let Some(block) = v.last_block_time else {
                continue;
            };
            let nanos = now.0 - block.0;
            let block_time = nanos as f64 / 1e9;
            let speed = v.count as f64 / block_time;
            let over_limit = nanos > MAX_DELAY_NANOS && Some(i) != current;
            sum += speed;
            let faster = max.is_none_or(|m| stats[&m].speed < speed);
            stats.insert(
                i,
                Stat {
                    block_time,
                    speed,
                    share: 0.0,
                    over_limit,
                },
            );
            if over_limit || faster {
                max = Some(i);
            }
        }
        for stat in stats.values_mut() {
            stat.share = stat.speed / sum;
        }

        let current_completed = current.is_some_and(|c| completed.contains(&c));
        if current_completed || current.is_none() {
            if let Some(max) = max {
                self.print_vtx(max)?;
            }
            return Ok(());
        }
        // Show items that were held back too long.
        let over = rest
            .iter()
            .copied()
            .find(|i| stats.get(i).is_some_and(|s| s.over_limit));
        if let Some(i) = over {
            return self.print_vtx(i);
        }
        // Fair split between vertices.
        let cur = current.expect("checked above");
        if let Some(stat) = stats.get(&cur) {
            if 1.0 / (1.0 - stat.share) * ANTI_FLICKER_SECS < stat.block_time {
                if let Some(max) = max {
                    self.print_vtx(max)?;
                }
            }
        }
        Ok(())
    }

    /// Writes ` ...` for the open block, which the printer leaves while its vertex runs.
    fn leave_current(&mut self) -> io::Result<()> {
        if let Some(old) = self.current.take() {
            let old = &mut self.vertices[old];
            if old.logs_partial {
                self.out.write_all(b"\n")?;
            }
            // The unfinished line is printed again, whole (or its rest, see `REPRINT_MAX`),
            // when the printer comes back.
            old.held += old.logs_offset;
            old.logs_offset = 0;
            old.logs_continued = false;
            old.count = 0;
            writeln!(self.out, "#{} ...", old.number)?;
        }
        Ok(())
    }

    /// `textMux.printVtx`.
    fn print_vtx(&mut self, i: usize) -> io::Result<()> {
        if self.vertices[i].number == 0 {
            self.next_number += 1;
            self.vertices[i].number = self.next_number;
        }
        if self.current != Some(i) {
            self.leave_current()?;
            let header = format!("#{} {}", self.vertices[i].number, self.view[i].name());
            self.begin_block(Some(&header))?;
            self.in_text = false;
            writeln!(self.out, "{header}")?;
        }

        let view = &self.view[i];
        let v = &mut self.vertices[i];
        let number = v.number;
        let mut open_status = false;
        for p in &v.statuses {
            if !v.status_updates.contains(&p.id) {
                continue;
            }
            if let (Some(&(last_current, last_time)), None) = (self.last.get(&p.id), p.completed) {
                let delta = match p.total {
                    Some(total) if total > 0 => (p.current - last_current) as f64 / total as f64,
                    _ => 0.0,
                };
                if delta < MIN_PROGRESS_DELTA && p.timestamp.0 - last_time.0 < MIN_TIME_DELTA {
                    continue;
                }
            }
            if p.completed.is_some() {
                // Only unfinished statuses are throttled: forget a finished one.
                self.last.remove(&p.id);
            } else {
                self.last.insert(p.id.clone(), (p.current, p.timestamp));
            }
            let mut line = format!("#{number} {}", p.id);
            match p.total {
                Some(total) => line.push_str(&format!(" {} / {}", bytes(p.current), bytes(total))),
                None if p.current != 0 => line.push_str(&format!(" {}", bytes(p.current))),
                None => {}
            }
            if let Some(started) = p.started {
                let elapsed = seconds_between(started, p.completed.unwrap_or(p.timestamp));
                if elapsed > 0.01 {
                    line.push_str(&format!(" {elapsed:.1}s"));
                }
            }
            if p.completed.is_some() {
                line.push_str(" done");
            } else {
                open_status = true;
            }
            writeln!(self.out, "{line}")?;
        }
        v.status_updates.clear();
        if v.statuses.len() > STATUSES_MAX {
            // Ours: the completed ones are printed; an update would list one again.
            v.statuses.retain(|p| p.completed.is_none());
        }

        for w in v.warnings.drain(..) {
            write!(self.out, "#{number} WARN: ")?;
            self.out.write_all(&w)?;
            self.out.write_all(b"\n")?;
        }

        let n = v.logs.len();
        let prefix = if n > 0 {
            format!("#{number} ")
        } else {
            String::new()
        };
        for (j, line) in v.logs.iter().enumerate() {
            if j == 0 && v.logs_continued {
                // The rest of a line whose start was printed in an earlier pass.
                self.out.write_all(&line[v.logs_offset.min(line.len())..])?;
            } else {
                self.out.write_all(prefix.as_bytes())?;
                self.out.write_all(line)?;
            }
            let last_partial = j == n - 1 && v.logs_partial;
            if !last_partial {
                self.out.write_all(b"\n")?;
            }
        }
        if n > 0 {
            if v.logs_partial {
                v.logs.drain(..n - 1);
                if v.logs[0].len() > REPRINT_MAX {
                    v.logs[0] = Vec::new();
                }
                v.logs_offset = v.logs[0].len();
                v.logs_continued = true;
            } else {
                v.logs.clear();
                v.logs_offset = 0;
                v.logs_continued = false;
            }
            // Let go of the room a burst of lines took.
            v.logs.shrink_to(16);
        }
        v.held = 0;

        self.current = Some(i);
        if !view.is_running() && !open_status {
            self.current = None;
            v.count = 0;
            if v.logs_partial {
                self.out.write_all(b"\n")?;
            }
            match view.outcome() {
                Some(Outcome::Failed(error)) => writeln!(self.out, "#{number} ERROR: {error}")?,
                Some(Outcome::Canceled) => writeln!(self.out, "#{number} CANCELED")?,
                Some(Outcome::Cached) => writeln!(self.out, "#{number} CACHED")?,
                // Ours: the body ended while it ran.
                Some(Outcome::Interrupted) => writeln!(self.out, "#{number} ...")?,
                Some(Outcome::Done) | None => {
                    writeln!(self.out, "#{number} DONE {:.1}s", seconds(view.duration()))?
                }
                Some(other) => writeln!(self.out, "#{number} {other}")?,
            }
        }
        self.updates.remove(&i);
        Ok(())
    }

    fn message(&mut self, text: &str) -> io::Result<()> {
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            return Ok(());
        }
        // Whatever is waiting goes first.
        self.print()?;
        if text.starts_with("Successfully built ") {
            // The classic builder says it itself (with the short id).
            self.pending_built = None;
        } else if let Some(id) = self.pending_built.take() {
            self.text_block(&format!("Successfully built {id}"))?;
        }
        self.text_block(text)
    }

    /// Daemon text (or ours) as a block of its own; consecutive texts share one.
    fn text_block(&mut self, text: &str) -> io::Result<()> {
        self.leave_current()?;
        if !self.in_text {
            self.begin_block(None)?;
        }
        self.in_text = true;
        writeln!(self.out, "{text}")
    }

    fn finished(&mut self) -> io::Result<()> {
        self.print()?;
        // `printErrorLogs`, in the order the vertices started: each failed step's last lines,
        // cut as BuildKit's printer keeps them (outside any GitHub group, to be seen).
        if let Some((inner, g)) = self.github() {
            g.end_group(inner)?;
        }
        for v in &self.view {
            if !matches!(v.outcome(), Some(Outcome::Failed(_))) {
                continue;
            }
            writeln!(self.out, "------")?;
            writeln!(self.out, " > {}:", v.name())?;
            for line in v.tail() {
                let mut text = format!("{} ", log_elapsed(line.elapsed())).into_bytes();
                text.extend_from_slice(line.bytes());
                text.truncate(FAILED_TAIL_LINE_BYTES);
                self.out.write_all(&text)?;
                self.out.write_all(b"\n")?;
            }
            writeln!(self.out, "------")?;
        }
        if let Some(id) = self.pending_built.take() {
            self.text_block(&format!("Successfully built {id}"))?;
        }
        if let Some((inner, g)) = self.github() {
            g.end_group(inner)?;
            g.resume(inner)?;
        }
        self.out.flush()
    }
}

impl<W: Write> Render for Plain<W> {
    /// Plain output depends only on the times inside the events: `now` is not used.
    fn event(&mut self, event: &BuildEvent, _now: Time) -> io::Result<()> {
        if !matches!(event, BuildEvent::Vertex(_)) {
            // Whatever is not a vertex event comes between records.
            self.end_record()?;
        }
        match event {
            BuildEvent::Record(_) | BuildEvent::RecordApplied => {
                self.records = true;
                Ok(())
            }
            BuildEvent::Vertex(Event::Started(s)) => self.step(Some(s.started), event),
            BuildEvent::Vertex(Event::Completed(c)) => self.step(Some(c.completed), event),
            BuildEvent::Vertex(Event::Log(l)) => self.step(Some(l.timestamp), event),
            BuildEvent::Vertex(Event::Progress(p)) => self.step(Some(p.timestamp), event),
            BuildEvent::Vertex(Event::Warning(_)) => self.step(None, event),
            BuildEvent::ImageBuilt { id } => {
                self.pending_built = Some(id.clone());
                Ok(())
            }
            BuildEvent::Message(text) => self.message(text),
            BuildEvent::ContextUpload(upload) => self.context_upload(upload),
            BuildEvent::Finished(_) => self.finished(),
            // Records, bad lines and the failure: the CLI reports the latter two on stderr,
            // as buildx prints its `ERROR:` line.
            _ => Ok(()),
        }
    }

    /// BuildKit's ticker: a pass once `quiet` reaches 150 ms without an update.
    fn idle(&mut self, _now: Time, quiet: std::time::Duration) -> io::Result<()> {
        if quiet.as_nanos() >= TICK_INTERVAL as u128 {
            // No event for a while: the last record is whole.
            self.end_record()?;
            self.refresh()?;
        }
        Ok(())
    }
}

/// Plain's writer: the output, and in GitHub mode the workflow commands that keep whatever it
/// writes from being read as a command.
#[derive(Debug)]
struct Framed<W> {
    inner: W,
    github: Option<Commands>,
    /// Bytes written through it so far (the upload's block tells by it whether anything came
    /// after its last line).
    written: u64,
}

impl<W: Write> Write for Framed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.github {
            None => self.inner.write(buf)?,
            Some(g) => {
                g.stop(&mut self.inner)?;
                let n = self.inner.write(buf)?;
                g.wrote(&buf[..n]);
                n
            }
        };
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The sizes of what the plain printer keeps, for the tests that bound its memory.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Footprint {
    vertices: usize,
    statuses: usize,
    status_updates: usize,
    warnings: usize,
    /// Bytes of the kept lines (printed or not).
    log_bytes: usize,
    held: usize,
    last: usize,
    updates: usize,
}

#[cfg(test)]
impl<W> Plain<W> {
    fn footprint(&self) -> Footprint {
        let sum = |f: fn(&Vtx) -> usize| self.vertices.iter().map(f).sum();
        Footprint {
            vertices: self.view.len().max(self.vertices.len()),
            statuses: sum(|v| v.statuses.len()),
            status_updates: sum(|v| v.status_updates.len()),
            warnings: sum(|v| v.warnings.len()),
            log_bytes: sum(|v| v.logs.iter().map(Vec::len).sum()),
            held: sum(|v| v.held),
            last: self.last.len(),
            updates: self.updates.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    /// The corpus fed again and again (the memory stress input): after the first passes,
    /// nothing the printer keeps grows.
    #[test]
    fn repeating_the_corpus_does_not_grow_the_printer() {
        let plain = std::cell::RefCell::new(Plain::new(io::sink()));
        let mut seen = Vec::new();
        repeat_corpus(
            6,
            |e| plain.borrow_mut().event(e, Time(0)).unwrap(),
            |_| seen.push(plain.borrow().footprint()),
        );
        assert!(seen[2].vertices > 100, "{:?}", seen[2]);
        for f in &seen[3..] {
            assert_eq!(*f, seen[2], "{seen:#?}");
        }
    }

    /// Printed warnings and finished statuses are let go; the throttle forgets a finished
    /// status.
    #[test]
    fn printed_warnings_and_finished_statuses_are_let_go() {
        let mut plain = Plain::new(Vec::new());
        plain.event(&started("a", "A", 0), Time(0)).unwrap();
        for i in 0..1_000 {
            let t = 1 + i * 200;
            let id = format!("sha256:layer{i}");
            for e in [
                warning("a", &format!("warning {i}")),
                progress("a", &id, 0, Some(10), t, Some(t), None),
                progress("a", &id, 10, Some(10), t + 100, Some(t), Some(t + 100)),
                log("a", "line", t + 150),
            ] {
                plain.event(&e, Time(0)).unwrap();
            }
            let f = plain.footprint();
            assert!(
                f.warnings <= 1
                    && f.statuses <= STATUSES_MAX + 1
                    && f.last <= 1
                    && f.log_bytes < 100,
                "{f:?}"
            );
        }
        plain.event(&finished(), Time(0)).unwrap();
        let text = String::from_utf8(plain.into_inner()).unwrap();
        assert_eq!(text.matches("#1 WARN: warning ").count(), 1_000);
        assert_eq!(text.matches(" 10B / 10B ").count(), 1_000);
        assert!(text.contains("#1 WARN: warning 999\n"), "{text}");
    }

    /// A line that never ends (a progress bar without `\r`, say) is printed as it comes,
    /// and only a bounded start of it is kept.
    #[test]
    fn an_endless_line_keeps_bounded_memory() {
        let mut plain = Plain::new(Vec::new());
        plain.event(&started("a", "A", 0), Time(0)).unwrap();
        let piece = "x".repeat(1024);
        for i in 0..2_000 {
            let e = log_piece("a", &piece, LineEnd::Split, 1 + i * 50);
            plain.event(&e, Time(0)).unwrap();
            let f = plain.footprint();
            assert!(f.log_bytes <= REPRINT_MAX + 2 * 1024, "{f:?}");
        }
        let e = log_piece("a", "end", LineEnd::Newline, 100_001);
        plain.event(&e, Time(0)).unwrap();
        plain
            .event(&completed("a", Outcome::Done, 0, 100_002, 100_002), Time(0))
            .unwrap();
        plain.event(&finished(), Time(0)).unwrap();
        let text = String::from_utf8(plain.into_inner()).unwrap();
        let x = "x".repeat(2_000 * 1024);
        assert_eq!(text, format!("#1 A\n#1 0.001 {x}end\n#1 DONE 100.0s\n"));
    }

    /// Leaving a vertex mid-line: BuildKit prints the whole line again when it comes back; a
    /// line whose printed start was longer than `REPRINT_MAX` goes on with its rest only.
    #[test]
    fn a_line_left_unfinished_is_printed_again_or_continued() {
        for (len, again) in [(10, "0.200 xxxxxxxxxx"), (REPRINT_MAX + 1, "")] {
            let text = render(&[
                started("a", "A", 0),
                log_piece("a", &"x".repeat(len), LineEnd::Split, 200),
                started("b", "B", 250),
                completed("b", Outcome::Done, 250, 400, 150),
                log_piece("a", "tail", LineEnd::Newline, 600),
                completed("a", Outcome::Done, 0, 700, 700),
            ]);
            let x = "x".repeat(len);
            assert_eq!(
                text,
                format!(
                    "#1 A\n#1 0.200 {x}\n#1 ...\n\n#2 B\n#2 DONE 0.1s\n\n\
                     #1 A\n#1 {again}tail\n#1 DONE 0.7s\n"
                ),
                "{len}"
            );
        }
    }

    /// A vertex the printer does not turn to (another one holds it) may not pile up its
    /// output without bound: beyond `HELD_MAX` it is printed at once, in order.
    #[test]
    fn a_waiting_vertex_holding_too_much_output_is_printed_at_once() {
        let mut plain = Plain::new(Vec::new());
        for e in [
            started("a", "A", 0),
            started("b", "B", 0),
            log("a", "a1", 10),
        ] {
            plain.event(&e, Time(0)).unwrap();
        }
        // All at one time: no pass of BuildKit's would turn to B.
        let line = "y".repeat(1000);
        for i in 0..5_000 {
            plain
                .event(&log("b", &format!("{i} {line}"), 20), Time(0))
                .unwrap();
            let f = plain.footprint();
            assert!(f.held <= HELD_MAX + 2 * 1024, "{f:?}");
        }
        for e in [
            completed("a", Outcome::Done, 0, 30, 30),
            completed("b", Outcome::Done, 0, 40, 40),
            finished(),
        ] {
            plain.event(&e, Time(0)).unwrap();
        }
        let text = String::from_utf8(plain.into_inner()).unwrap();
        let b_lines: Vec<usize> = text
            .lines()
            .filter_map(|l| l.strip_prefix("#2 0.020 "))
            .map(|l| l.split(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(b_lines, (0..5_000).collect::<Vec<_>>());
        assert!(text.starts_with("#1 A\n#1 ...\n\n#2 B\n#2 0.020 0 y"));
        // At the end the open block (B) closes first, then A shows its line.
        assert!(
            text.ends_with("yyy\n#2 DONE 0.0s\n\n#1 A\n#1 0.010 a1\n#1 DONE 0.0s\n"),
            "{}",
            &text[text.len() - 100..]
        );
    }

    fn render(events: &[BuildEvent]) -> String {
        let mut plain = Plain::new(Vec::new());
        for e in events {
            plain.event(e, Time(0)).unwrap();
        }
        plain.event(&finished(), Time(0)).unwrap();
        String::from_utf8(plain.into_inner()).unwrap()
    }

    /// Issue 15, item 8: BuildKit applies a whole record, then prints. A record holding a log
    /// line and an unfinished status prints both in one pass, the status first (`printVtx`
    /// writes statuses, warnings, then logs); a pass inside the record would print the log
    /// alone, and the status only once done: its unfinished line never shown, the two lines
    /// swapped.
    #[test]
    fn a_whole_record_is_applied_before_a_pass() {
        use buildkit_proto::{StatusResponse, VertexStatus};
        let layer = |t, completed| VertexStatus {
            current: 50,
            total: 100,
            ..vertex_status("a", "extracting sha256:1", t, Some(1_050), completed)
        };
        let events = decode_records_for(
            crate::Mode::Plain,
            [
                StatusResponse {
                    vertexes: vec![vertex("a", "[1/1] FROM base", Some(0), None, "")],
                    ..Default::default()
                },
                StatusResponse {
                    logs: vec![vertex_log("a", b"hello\n", 1_000)],
                    statuses: vec![layer(1_050, None)],
                    ..Default::default()
                },
                StatusResponse {
                    vertexes: vec![vertex("a", "[1/1] FROM base", Some(0), Some(1_100), "")],
                    statuses: vec![layer(1_080, Some(1_080))],
                    ..Default::default()
                },
            ],
        );
        assert_eq!(
            render(&events),
            "#1 [1/1] FROM base\n\
             #1 extracting sha256:1 50B / 100B\n\
             #1 1.000 hello\n\
             #1 extracting sha256:1 50B / 100B 0.0s done\n\
             #1 DONE 1.1s\n"
        );
    }

    #[test]
    fn blocks_logs_and_completions() {
        let text = render(&[
            started("a", "[1/2] FROM x", 0),
            completed("a", Outcome::Cached, 0, 10, 10),
            started("b", "[2/2] RUN echo hi", 20),
            log("b", "hi", 104),
            log("b", "there", 12_345),
            completed("b", Outcome::Done, 20, 12_400, 12_380),
        ]);
        assert_eq!(
            text,
            "#1 [1/2] FROM x\n#1 CACHED\n\n#2 [2/2] RUN echo hi\n#2 0.084 hi\n#2 12.32 there\n#2 DONE 12.4s\n"
        );
    }

    #[test]
    fn updates_within_100ms_are_printed_together() {
        // Two intervals of one vertex, 3 ms apart: one block, one DONE (the merged sum).
        let text = render(&[
            started("a", "[internal] load remote build context", 0),
            completed("a", Outcome::Done, 0, 4, 4),
            started("a", "[internal] load remote build context", 5),
            completed("a", Outcome::Done, 5, 6, 5),
        ]);
        assert_eq!(
            text,
            "#1 [internal] load remote build context\n#1 DONE 0.0s\n"
        );
    }

    #[test]
    fn statuses_are_throttled_by_progress_and_record_time() {
        let text = render(&[
            started("a", "[1/1] FROM y", 0),
            progress("a", "sha256:l", 0, Some(1000), 0, Some(0), None),
            // 2 % since the last printed line and 0.2 s: skipped.
            progress("a", "sha256:l", 20, Some(1000), 200, Some(0), None),
            // 6 %: printed.
            progress("a", "sha256:l", 60, Some(1000), 400, Some(0), None),
            // 1 % but 5.1 s later: printed.
            progress("a", "sha256:l", 70, Some(1000), 5_500, Some(0), None),
            progress(
                "a",
                "sha256:l",
                1000,
                Some(1000),
                5_600,
                Some(0),
                Some(5_600),
            ),
            // Never seen with a start time: not shown.
            progress("a", "extracting", 0, None, 5_700, None, Some(5_700)),
            progress(
                "a",
                "resolve docker.io/y",
                451,
                None,
                5_800,
                Some(5_795),
                Some(5_800),
            ),
            completed("a", Outcome::Done, 0, 6_000, 6_000),
        ]);
        assert_eq!(
            text,
            "#1 [1/1] FROM y\n\
             #1 sha256:l 0B / 1.00kB\n\
             #1 sha256:l 60B / 1.00kB 0.4s\n\
             #1 sha256:l 70B / 1.00kB 5.5s\n\
             #1 sha256:l 1.00kB / 1.00kB 5.6s done\n\
             #1 resolve docker.io/y 451B done\n\
             #1 DONE 6.0s\n"
        );
    }

    #[test]
    fn a_running_vertex_keeps_the_output_until_it_completes() {
        // Two steps logging alternately; the first keeps the printer (anti-flicker).
        let text = render(&[
            started("a", "A", 0),
            started("b", "B", 0),
            log("a", "a1", 200),
            log("b", "b1", 300),
            log("a", "a2", 400),
            log("b", "b2", 500),
            log("a", "a3", 600),
            completed("a", Outcome::Done, 0, 700, 700),
            completed("b", Outcome::Done, 0, 800, 800),
        ]);
        assert_eq!(
            text,
            "#1 A\n#1 0.200 a1\n#1 0.400 a2\n#1 0.600 a3\n#1 DONE 0.7s\n\n\
             #2 B\n#2 0.300 b1\n#2 0.500 b2\n#2 DONE 0.8s\n"
        );
    }

    #[test]
    fn a_quiet_vertex_gives_way_after_the_anti_flicker_delay() {
        let mut events = vec![started("a", "A", 0), started("b", "B", 0)];
        for s in 1..=7 {
            events.push(log("b", &format!("b{s}"), s * 1000));
        }
        events.push(completed("b", Outcome::Done, 0, 7_500, 7_500));
        events.push(completed("a", Outcome::Done, 0, 8_000, 8_000));
        let text = render(&events);
        assert_eq!(
            text,
            "#1 A\n#1 ...\n\n#2 B\n\
             #2 1.000 b1\n#2 2.000 b2\n#2 3.000 b3\n#2 4.000 b4\n#2 5.000 b5\n#2 6.000 b6\n\
             #2 7.000 b7\n#2 DONE 7.5s\n\n#1 A\n#1 DONE 8.0s\n"
        );
    }

    #[test]
    fn failures_cancellations_and_the_closing_block() {
        let mut events = vec![started("a", "[2/3] RUN make", 0)];
        for i in 0..12 {
            events.push(log("a", &format!("line {i}"), 1000 + i * 10));
        }
        events.push(completed(
            "a",
            Outcome::Failed("exit code: 2".into()),
            0,
            2000,
            2000,
        ));
        events.push(started("b", "[3/3] RUN other", 0));
        events.push(completed("b", Outcome::Canceled, 0, 2100, 2100));
        let text = render(&events);
        let expected_tail: String = (2..12)
            .map(|i| format!("1.{:03} line {i}\n", i * 10))
            .collect();
        assert!(text.contains("#1 ERROR: exit code: 2\n"), "{text}");
        assert!(
            text.contains("\n#2 [3/3] RUN other\n#2 CANCELED\n"),
            "{text}"
        );
        assert!(
            text.ends_with(&format!(
                "------\n > [2/3] RUN make:\n{expected_tail}------\n"
            )),
            "{text}"
        );
    }

    #[test]
    fn split_lines_continue_without_a_new_prefix() {
        let text = render(&[
            started("a", "A", 0),
            log_piece("a", "first part ", LineEnd::Split, 500),
            log_piece("a", "second part", LineEnd::Newline, 900),
            completed("a", Outcome::Done, 0, 1000, 1000),
        ]);
        assert_eq!(
            text,
            "#1 A\n#1 0.500 first part second part\n#1 DONE 1.0s\n"
        );
    }

    #[test]
    fn daemon_text_the_image_id_and_an_interrupted_step() {
        let text = render(&[
            started("a", "A", 0),
            completed("a", Outcome::Done, 0, 100, 100),
            BuildEvent::ImageBuilt {
                id: "sha256:i".into(),
            },
            BuildEvent::Message("Successfully tagged x:latest\n".into()),
            started("b", "B", 200),
            log("b", "tick", 300),
            completed("b", Outcome::Interrupted, 200, 300, 100),
        ]);
        assert_eq!(
            text,
            "#1 A\n#1 DONE 0.1s\n\nSuccessfully built sha256:i\nSuccessfully tagged x:latest\n\n\
             #2 B\n#2 0.100 tick\n#2 ...\n"
        );
    }

    #[test]
    fn live_idle_passes_print_held_output_after_150ms_of_quiet() {
        let mut plain = Plain::new(Vec::new());
        plain.event(&started("a", "A", 0), Time(0)).unwrap();
        // 50 ms after the last pass: the display limiter holds it.
        plain.event(&log("a", "held", 50), Time(0)).unwrap();
        let out = |p: &Plain<Vec<u8>>| String::from_utf8(p.out.inner.clone()).unwrap();
        assert_eq!(out(&plain), "#1 A\n");
        Render::idle(&mut plain, Time(0), std::time::Duration::from_millis(100)).unwrap();
        assert_eq!(out(&plain), "#1 A\n");
        Render::idle(&mut plain, Time(0), std::time::Duration::from_millis(150)).unwrap();
        assert_eq!(out(&plain), "#1 A\n#1 0.050 held\n");
    }

    #[test]
    fn warnings_show_with_their_vertex() {
        let text = render(&[
            started("a", "[internal] load build definition from Dockerfile", 0),
            warning(
                "a",
                "JSONArgsRecommended: JSON arguments recommended for CMD (line 9)",
            ),
            completed("a", Outcome::Done, 0, 10, 10),
        ]);
        assert_eq!(
            text,
            "#1 [internal] load build definition from Dockerfile\n\
             #1 WARN: JSONArgsRecommended: JSON arguments recommended for CMD (line 9)\n\
             #1 DONE 0.0s\n"
        );
    }
}
