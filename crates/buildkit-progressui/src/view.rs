//! The build's vertices as every renderer sees them, folded from [`BuildEvent`]s.
//!
//! [`Vertices`] keeps, per vertex and in the order the vertices first started: its name, its
//! position in that order, its run intervals (how many, when the latest began, whether one is
//! open), its outcome, its duration (the sum of its merged intervals, BuildKit's `DONE x.xs`),
//! and a tail of its last complete output lines with the time each began ([`TailLine`]), for the
//! closing block of a failed step. What only one renderer shows (plain's print numbers and
//! pending lines, the tty's sanitized last lines, statuses and warnings) stays in that renderer.
//!
//! Output of a vertex that no event has started is not kept (the tracker reports it, but no
//! renderer shows it).
//!
//! ```
//! use buildkit_events::{Event, Outcome, Time, VertexCompleted, VertexStarted};
//! use buildkit_progressui::view::Vertices;
//! use docker_build::decode::BuildEvent;
//!
//! let mut vertices = Vertices::new(10, 4096);
//! vertices.apply(&BuildEvent::Vertex(Event::Started(VertexStarted {
//!     digest: "sha256:a".into(),
//!     name: "[1/2] FROM x".into(),
//!     inputs: Vec::new(),
//!     started: Time(0),
//!     interval: 0,
//! })));
//! assert!(vertices.get("sha256:a").unwrap().is_running());
//! vertices.apply(&BuildEvent::Vertex(Event::Completed(VertexCompleted {
//!     digest: "sha256:a".into(),
//!     name: "[1/2] FROM x".into(),
//!     outcome: Outcome::Cached,
//!     started: Time(0),
//!     completed: Time(5),
//!     duration: buildkit_events::Elapsed(5),
//!     interval: 0,
//! })));
//! let v = vertices.get("sha256:a").unwrap();
//! assert_eq!((v.index(), v.outcome()), (0, Some(&Outcome::Cached)));
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use buildkit_events::{Elapsed, Event, LineEnd, LogLine, Outcome, Time};
use docker_build::decode::BuildEvent;

use crate::format::seconds_between;

/// How many lines of a failed step the closing block repeats (BuildKit's `logsBufferSize`), in
/// plain and tty alike.
pub const FAILED_TAIL_LINES: usize = 10;
/// Longest line of a failed step kept for the closing block, in bytes, in plain and tty alike.
pub const FAILED_TAIL_LINE_BYTES: usize = 4096;
/// What a kept tail line costs besides its bytes (its `Vec` and times), counted in a tail's
/// byte budget ([`Vertices::with_tail_budget`]).
const TAIL_LINE_OVERHEAD: usize = 64;

/// Every vertex an event started (or completed), in the order they first did.
#[derive(Debug, Clone)]
pub struct Vertices {
    list: Vec<VertexView>,
    by_digest: HashMap<Arc<str>, usize>,
    tail_lines: usize,
    tail_line_bytes: usize,
    /// Bytes a vertex's tail may hold (lines and their overhead).
    tail_budget: usize,
    /// Tails of vertices that completed successfully are let go.
    forget_settled: bool,
    first_start: Option<Time>,
    /// The vertex of the latest log line, progress or warning and its position: such events
    /// come in runs of one vertex, and comparing the digest beats hashing it.
    last: Option<(Arc<str>, usize)>,
}

/// One vertex of [`Vertices`].
#[derive(Debug, Clone)]
pub struct VertexView {
    digest: Arc<str>,
    name: String,
    index: usize,
    intervals: u32,
    interval_start: Option<Time>,
    running_since: Option<Time>,
    stop: Option<Time>,
    outcome: Option<Outcome>,
    duration: Elapsed,
    tail: VecDeque<TailLine>,
    open: Option<TailLine>,
    /// What `tail` costs against the budget.
    tail_cost: usize,
    /// Complete lines pushed out of `tail`.
    dropped: u64,
}

/// One line of a vertex's output, kept for its closing block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailLine {
    time: Time,
    since: Option<Time>,
    bytes: Vec<u8>,
}

impl Vertices {
    /// An empty view that keeps the last `tail_lines` complete lines of each vertex, each cut
    /// to its first `tail_line_bytes` bytes (`Vertices::new(0, 0)` keeps none).
    pub fn new(tail_lines: usize, tail_line_bytes: usize) -> Self {
        Self {
            list: Vec::new(),
            by_digest: HashMap::new(),
            tail_lines,
            tail_line_bytes,
            tail_budget: usize::MAX,
            forget_settled: false,
            first_start: None,
            last: None,
        }
    }

    /// Also bounds each vertex's tail to `bytes` (its lines' allocations plus a small overhead
    /// per line): the oldest lines make room, and are counted ([`VertexView::dropped`]).
    pub fn with_tail_budget(mut self, bytes: usize) -> Self {
        self.tail_budget = bytes;
        self
    }

    /// Lets go of a vertex's tail when it completes successfully (done or cached) and when it
    /// starts again, so that only running and failed vertices hold output (the tty's closing
    /// block shows a failed step's output, which can be long).
    pub fn forgetting_settled_tails(mut self) -> Self {
        self.forget_settled = true;
        self
    }

    /// Folds one event into the view. Returns the position of the vertex the event is about
    /// (see [`VertexView::index`]) when the view knows it: always for a start or a completion,
    /// for other vertex events only when the vertex has started; `None` for events that are
    /// about no vertex.
    pub fn apply(&mut self, event: &BuildEvent) -> Option<usize> {
        let BuildEvent::Vertex(event) = event else {
            return None;
        };
        match event {
            Event::Started(s) => {
                if self.first_start.is_none_or(|f| s.started < f) {
                    self.first_start = Some(s.started);
                }
                let i = self.vertex(&s.digest);
                let v = &mut self.list[i];
                if self.forget_settled && v.outcome.is_some() {
                    v.forget_tail();
                }
                v.name.clone_from(&s.name);
                v.intervals += 1;
                v.interval_start = Some(s.started);
                v.running_since = Some(s.started);
                v.outcome = None;
                Some(i)
            }
            Event::Completed(c) => {
                let i = self.vertex(&c.digest);
                let v = &mut self.list[i];
                if v.name.is_empty() {
                    v.name.clone_from(&c.name);
                }
                v.running_since = None;
                v.stop = Some(c.completed);
                v.duration = c.duration;
                v.outcome = Some(c.outcome.clone());
                if self.forget_settled && v.settled() {
                    v.forget_tail();
                }
                Some(i)
            }
            Event::Log(l) => {
                let i = self.find(&l.digest)?;
                let limits = (self.tail_lines, self.tail_line_bytes, self.tail_budget);
                let v = &mut self.list[i];
                if !(self.forget_settled && v.settled()) {
                    v.log(l, limits);
                }
                Some(i)
            }
            Event::Progress(p) => self.find(&p.digest),
            Event::Warning(w) => self.find(&w.digest),
            other => self.index_of(other.digest()),
        }
    }

    fn vertex(&mut self, digest: &Arc<str>) -> usize {
        if let Some(&i) = self.by_digest.get(digest) {
            return i;
        }
        let i = self.list.len();
        self.by_digest.insert(Arc::clone(digest), i);
        self.list.push(VertexView {
            digest: Arc::clone(digest),
            name: String::new(),
            index: i,
            intervals: 0,
            interval_start: None,
            running_since: None,
            stop: None,
            outcome: None,
            duration: Elapsed(0),
            tail: VecDeque::new(),
            open: None,
            tail_cost: 0,
            dropped: 0,
        });
        i
    }

    /// [`Vertices::index_of`] through the one-entry cache `last`.
    fn find(&mut self, digest: &Arc<str>) -> Option<usize> {
        if let Some((last, i)) = &self.last {
            if Arc::ptr_eq(last, digest) || **last == **digest {
                return Some(*i);
            }
        }
        let i = self.index_of(digest)?;
        self.last = Some((Arc::clone(digest), i));
        Some(i)
    }

    /// The position of the vertex `digest` (see [`VertexView::index`]).
    pub fn index_of(&self, digest: &str) -> Option<usize> {
        self.by_digest.get(digest).copied()
    }

    /// The vertex `digest`.
    pub fn get(&self, digest: &str) -> Option<&VertexView> {
        self.index_of(digest).map(|i| &self.list[i])
    }

    /// The vertices in the order they first started.
    pub fn iter(&self) -> std::slice::Iter<'_, VertexView> {
        self.list.iter()
    }

    /// How many vertices there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether no vertex started yet.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The earliest start of any vertex.
    pub fn first_start(&self) -> Option<Time> {
        self.first_start
    }
}

impl std::ops::Index<usize> for Vertices {
    type Output = VertexView;

    /// The vertex at position `index` (see [`VertexView::index`]).
    fn index(&self, index: usize) -> &VertexView {
        &self.list[index]
    }
}

impl<'a> IntoIterator for &'a Vertices {
    type Item = &'a VertexView;
    type IntoIter = std::slice::Iter<'a, VertexView>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl VertexView {
    /// `limits`: lines kept, bytes kept of each, bytes the whole tail may cost.
    fn log(&mut self, l: &LogLine, limits: (usize, usize, usize)) {
        let (tail_lines, tail_line_bytes, budget) = limits;
        if tail_lines == 0 {
            return;
        }
        let since = self.interval_start;
        // A whole line in a full tail takes the room of the line it pushes out (the same tail
        // afterwards, one allocation fewer per line).
        let reused =
            if self.open.is_none() && l.end != LineEnd::Split && self.tail.len() == tail_lines {
                self.pop_tail().map(|old| {
                    let mut bytes = old.bytes;
                    bytes.clear();
                    bytes
                })
            } else {
                None
            };
        // Pieces of one line (and, like BuildKit's printer, whatever follows a piece that was
        // cut) continue the open line; each vertex has one.
        let open = self.open.get_or_insert_with(|| TailLine {
            time: l.timestamp,
            since,
            bytes: reused.unwrap_or_default(),
        });
        let room = tail_line_bytes.saturating_sub(open.bytes.len());
        open.bytes
            .extend_from_slice(&l.bytes[..l.bytes.len().min(room)]);
        if l.end != LineEnd::Split {
            let line = self.open.take().expect("opened above");
            self.tail_cost += line_cost(&line);
            self.tail.push_back(line);
            while self.tail.len() > tail_lines || (self.tail_cost > budget && self.tail.len() > 1) {
                self.pop_tail();
            }
        }
    }

    /// Whether it completed successfully (done or cached) and has not started again.
    fn settled(&self) -> bool {
        matches!(self.outcome, Some(Outcome::Done | Outcome::Cached))
    }

    /// Lets the oldest kept line go (counted in `dropped`).
    fn pop_tail(&mut self) -> Option<TailLine> {
        let old = self.tail.pop_front()?;
        self.tail_cost -= line_cost(&old);
        self.dropped += 1;
        Some(old)
    }

    fn forget_tail(&mut self) {
        self.tail = VecDeque::new();
        self.open = None;
        self.tail_cost = 0;
        self.dropped = 0;
    }

    /// How many complete lines the tail let go to stay within its bounds (since the tail was
    /// last let go of, see [`Vertices::forgetting_settled_tails`]).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The vertex digest.
    pub fn digest(&self) -> &Arc<str> {
        &self.digest
    }

    /// The display name (from its latest start).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its position among the vertices, in the order they first started (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many intervals it started (2 after a restart).
    pub fn intervals(&self) -> u32 {
        self.intervals
    }

    /// Start of its latest interval (log times count from it).
    pub fn interval_start(&self) -> Option<Time> {
        self.interval_start
    }

    /// Start of the interval in progress, while it runs.
    pub fn running_since(&self) -> Option<Time> {
        self.running_since
    }

    /// Whether an interval is open.
    pub fn is_running(&self) -> bool {
        self.running_since.is_some()
    }

    /// End of its latest completed interval.
    pub fn stop(&self) -> Option<Time> {
        self.stop
    }

    /// How its latest interval ended; `None` while it runs.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The sum of its merged run intervals at its latest completion (BuildKit's `DONE x.xs`).
    pub fn duration(&self) -> Elapsed {
        self.duration
    }

    /// Its last complete output lines, oldest first, then a line still being written (if
    /// any).
    pub fn tail(&self) -> impl Iterator<Item = &TailLine> + '_ {
        self.tail.iter().chain(self.open.as_ref())
    }
}

/// What a kept line costs against a tail's byte budget.
fn line_cost(line: &TailLine) -> usize {
    line.bytes.capacity() + TAIL_LINE_OVERHEAD
}

impl TailLine {
    /// When the line began (the time of the log chunk it began in).
    pub fn time(&self) -> Time {
        self.time
    }

    /// Seconds from the start of the interval in which the line began to the line's time, the
    /// way BuildKit prefixes output lines (0 when the interval start is unknown).
    pub fn elapsed(&self) -> f64 {
        self.since
            .map_or(0.0, |start| seconds_between(start, self.time))
    }

    /// The line without its `\n` (cut to the view's limit), as sent: `\r` and invalid UTF-8
    /// kept.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn view(events: &[BuildEvent], lines: usize, bytes: usize) -> Vertices {
        let mut view = Vertices::new(lines, bytes);
        for e in events {
            view.apply(e);
        }
        view
    }

    fn tail(v: &VertexView) -> Vec<(String, String)> {
        v.tail()
            .map(|l| {
                (
                    format!("{:.3}", l.elapsed()),
                    String::from_utf8_lossy(l.bytes()).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn vertices_keep_the_order_they_first_started_in_and_their_intervals() {
        let view = view(
            &[
                started("b", "B", 0),
                started("a", "A", 10),
                completed("b", Outcome::Done, 0, 100, 100),
                started("b", "B again", 200),
            ],
            10,
            4096,
        );
        let order: Vec<&str> = view.iter().map(VertexView::name).collect();
        assert_eq!(order, ["B again", "A"]);
        assert_eq!(view.first_start(), Some(ms(0)));
        let b = view.get("b").unwrap();
        assert_eq!((b.index(), b.intervals()), (0, 2));
        assert!(
            b.is_running() && b.outcome().is_none(),
            "a restart runs again"
        );
        assert_eq!(b.interval_start(), Some(ms(200)));
        assert_eq!(b.stop(), Some(ms(100)));
        assert_eq!(b.duration(), Elapsed(100_000_000));
        assert_eq!(view.index_of("a"), Some(1));
        assert_eq!(view[1].digest().as_ref(), "a");
    }

    #[test]
    fn completion_gives_the_outcome_and_the_duration() {
        let view = view(
            &[
                started("a", "A", 0),
                completed("a", Outcome::Failed("exit code: 1".into()), 0, 1500, 1500),
            ],
            10,
            4096,
        );
        let a = &view[0];
        assert!(!a.is_running());
        assert_eq!(a.outcome(), Some(&Outcome::Failed("exit code: 1".into())));
        assert_eq!(a.duration(), Elapsed(1_500_000_000));
    }

    #[test]
    fn the_tail_keeps_the_last_lines_with_their_times_and_joins_pieces() {
        let mut events = vec![started("a", "A", 1000)];
        for i in 0..12 {
            events.push(log("a", &format!("line {i}"), 1000 + i * 100));
        }
        events.push(log_piece("a", "first ", LineEnd::Split, 2500));
        events.push(log_piece("a", "second", LineEnd::Unterminated, 2600));
        events.push(log_piece("a", "open", LineEnd::Split, 2700));
        let view = view(&events, 3, 4096);
        assert_eq!(
            tail(&view[0]),
            [
                ("1.000".into(), "line 10".into()),
                ("1.100".into(), "line 11".into()),
                ("1.500".into(), "first second".into()),
                // Still being written: not one of the 3 complete lines.
                ("1.700".into(), "open".into()),
            ]
        );
        assert_eq!(view[0].tail().last().unwrap().time(), ms(2700));
    }

    #[test]
    fn tail_lines_count_from_the_interval_they_began_in_and_are_cut() {
        let events = [
            started("a", "A", 0),
            log("a", "0123456789", 500),
            completed("a", Outcome::Done, 0, 600, 600),
            started("a", "A", 5000),
            log("a", "abc", 5250),
        ];
        let view = view(&events, 10, 4);
        assert_eq!(
            tail(&view[0]),
            [
                ("0.500".into(), "0123".into()),
                ("0.250".into(), "abc".into())
            ]
        );
    }

    #[test]
    fn events_of_unknown_vertices_are_not_kept() {
        let mut view = Vertices::new(10, 4096);
        assert_eq!(view.apply(&log("x", "lost", 0)), None);
        assert_eq!(
            view.apply(&progress("x", "id", 0, None, 0, Some(0), None)),
            None
        );
        assert_eq!(view.apply(&warning("x", "w")), None);
        assert_eq!(view.apply(&finished()), None);
        assert!(view.is_empty());
        assert_eq!(view.apply(&started("x", "X", 10)), Some(0));
        assert_eq!(view.apply(&warning("x", "w")), Some(0));
        assert_eq!(view[0].tail().count(), 0);
    }

    #[test]
    fn a_tail_budget_drops_the_oldest_lines_and_counts_them() {
        let mut view = Vertices::new(100, 4096).with_tail_budget(3 * (16 + TAIL_LINE_OVERHEAD));
        view.apply(&started("a", "A", 0));
        for i in 0..10 {
            view.apply(&log("a", &format!("line {i:02}"), i));
        }
        let kept: Vec<_> = tail(&view[0]).into_iter().map(|(_, l)| l).collect();
        assert_eq!(kept, ["line 07", "line 08", "line 09"]);
        assert_eq!(view[0].dropped(), 7);
    }

    #[test]
    fn settled_tails_can_be_let_go() {
        let events = [
            started("a", "A", 0),
            log("a", "kept while running", 1),
            completed("a", Outcome::Done, 0, 2, 2),
            log("a", "after its end", 3),
            started("b", "B", 0),
            log("b", "kept: it failed", 1),
            completed("b", Outcome::Failed("x".into()), 0, 2, 2),
        ];
        let mut view = Vertices::new(10, 4096).forgetting_settled_tails();
        for e in &events[..2] {
            view.apply(e);
        }
        assert_eq!(view[0].tail().count(), 1);
        for e in &events[2..] {
            view.apply(e);
        }
        assert_eq!(view[0].tail().count(), 0);
        assert_eq!(view[1].tail().count(), 1);
        // A restart begins a new tail.
        view.apply(&started("b", "B", 5));
        assert_eq!(view[1].tail().count(), 0);
    }

    #[test]
    fn no_tail_is_kept_when_asked_for_none() {
        let view = view(&[started("a", "A", 0), log("a", "x", 1)], 0, 0);
        assert_eq!(view[0].tail().count(), 0);
    }
}
