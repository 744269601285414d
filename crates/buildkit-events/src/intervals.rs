//! A vertex's run intervals, kept and merged the way BuildKit's progress printer does
//! (`util/progress/progressui/display.go`: `intervals` keyed by start, `mergeIntervals`).

use std::collections::BTreeMap;

/// One (merged) run interval, in nanoseconds since the Unix epoch. `stop == None` is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: i128,
    pub(crate) stop: Option<i128>,
}

impl Span {
    /// Length of a closed span (0 for an open one, or one whose stop precedes its start).
    pub(crate) fn closed_len(&self) -> u128 {
        match self.stop {
            Some(stop) if stop > self.start => (stop - self.start).unsigned_abs(),
            _ => 0,
        }
    }
}

/// What [`Intervals::insert`] did with a snapshot's (started, completed) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    /// The interval was added or overwritten.
    Applied,
    /// The snapshot re-sent an interval that had already completed, without its completion:
    /// it is older than what we know and was ignored.
    Stale,
}

/// How many raw intervals a vertex keeps before older ones are folded (see
/// [`Intervals::compact`]): a vertex restarted without end costs bounded memory and time.
pub(crate) const MAX_RAW: usize = 64;
/// How many of the newest raw intervals folding keeps (at least).
const KEEP_RAW: usize = MAX_RAW / 2;

/// Raw intervals keyed by start time, plus their merged form.
#[derive(Debug, Clone, Default)]
pub(crate) struct Intervals {
    raw: BTreeMap<i128, Option<i128>>,
    merged: Vec<Span>,
    /// Total length of the merged intervals folded away by [`Intervals::compact`].
    folded_total: u128,
    /// End of the folded intervals: a snapshot starting at or before it is ignored.
    folded_until: Option<i128>,
    /// End of a closed interval whose raw entries were collapsed into one: an open snapshot
    /// starting before it is ignored (it would have re-sent one of the collapsed starts).
    sealed_until: Option<i128>,
}

impl Intervals {
    /// Records the interval of one snapshot that has `started`.
    ///
    /// Unlike BuildKit's printer, a completed interval also closes, at its own completion
    /// time, every interval that an earlier start left open (Docker 20.10's double start: the
    /// completion of the first start was collapsed into the second's by BuildKit's progress
    /// writer and never arrives; see the crate docs' Semantics).
    pub(crate) fn insert(&mut self, start: i128, stop: Option<i128>) -> Insert {
        if self.folded_until.is_some_and(|until| start <= until)
            || (stop.is_none() && self.sealed_until.is_some_and(|until| start < until))
        {
            return Insert::Stale;
        }
        let slot = self.raw.entry(start).or_insert(stop);
        if stop.is_none() && slot.is_some() {
            return Insert::Stale;
        }
        *slot = stop;
        if let Some(stop) = stop {
            for (&earlier, open) in self.raw.range_mut(..start) {
                if open.is_none() {
                    *open = Some(stop.max(earlier));
                }
            }
        }
        self.merged = merge(&self.raw);
        if self.raw.len() > MAX_RAW {
            self.compact();
        }
        Insert::Applied
    }

    /// Bounds the raw intervals (more than [`MAX_RAW`] only come from a vertex restarted over
    /// and over): the merged intervals before the one holding the [`KEEP_RAW`]-th newest raw
    /// interval are folded into a total, and snapshots that start inside the folded ones are
    /// ignored from then on; if that leaves too many raw intervals (runs announced with ever
    /// new starts), the kept merged intervals replace them (and open snapshots starting
    /// before the end of the last closed one are ignored from then on, as re-sent stale ones
    /// would be).
    fn compact(&mut self) {
        let keep_key = *self
            .raw
            .keys()
            .nth(self.raw.len() - KEEP_RAW)
            .expect("more than KEEP_RAW");
        let keep = self
            .merged
            .iter()
            .rposition(|s| s.start <= keep_key)
            .unwrap_or(0);
        if let [folded @ .., last] = &self.merged[..=keep] {
            if !folded.is_empty() {
                let until = folded
                    .iter()
                    .map(|s| s.stop.map_or(s.start, |stop| stop.max(s.start)))
                    .max()
                    .expect("not empty");
                self.folded_total = folded
                    .iter()
                    .map(Span::closed_len)
                    .fold(self.folded_total, u128::saturating_add);
                self.folded_until = Some(self.folded_until.map_or(until, |u| u.max(until)));
                self.raw = self.raw.split_off(&last.start);
                self.merged = merge(&self.raw);
            }
        }
        if self.raw.len() > MAX_RAW {
            // The kept merged intervals (at most `KEEP_RAW + 1`) become the raw ones.
            self.raw = self.merged.iter().map(|s| (s.start, s.stop)).collect();
            let sealed = self.merged.iter().filter_map(|s| s.stop).max();
            if let Some(stop) = sealed {
                self.sealed_until = Some(self.sealed_until.map_or(stop, |u| u.max(stop)));
            }
            self.merged = merge(&self.raw);
        }
    }

    /// How many raw intervals are kept (for the tests that bound memory).
    #[cfg(test)]
    pub(crate) fn raw_len(&self) -> usize {
        self.raw.len()
    }

    /// The merged intervals, sorted by start; only the last one can be open.
    pub(crate) fn merged(&self) -> &[Span] {
        &self.merged
    }

    /// Whether the last merged interval is open (BuildKit's printer: started, not completed).
    #[cfg(test)]
    fn is_open(&self) -> bool {
        self.merged.last().is_some_and(|s| s.stop.is_none())
    }

    /// Sum of the closed merged intervals that start at or before `until` (the folded ones
    /// all do: nothing that starts inside them is applied any more).
    pub(crate) fn closed_total_until(&self, until: i128) -> u128 {
        self.merged
            .iter()
            .take_while(|s| s.start <= until)
            .map(Span::closed_len)
            .fold(self.folded_total, u128::saturating_add)
    }

    /// Sum of all closed merged intervals.
    pub(crate) fn closed_total(&self) -> u128 {
        self.merged
            .iter()
            .map(Span::closed_len)
            .fold(self.folded_total, u128::saturating_add)
    }
}

/// A vertex's run intervals, merged the way BuildKit's progress printer merges them: the
/// tracker's own bookkeeping, for consumers that rebuild a vertex's runs from its events
/// (e.g. a timeline from the `(started, completed)` of each [`Event::Completed`](crate::Event)).
///
/// Intervals are keyed by start (a second interval with the same start replaces the first);
/// an interval starting at or before the end of the previous one joins it; an open interval
/// swallows every later one. Memory is bounded as in the tracker: past 64 raw intervals the
/// oldest merged ones are folded into [`RunIntervals::total`] and no longer listed by
/// [`RunIntervals::merged`] (see the crate docs, *Memory*).
///
/// ```
/// use buildkit_events::{Elapsed, RunIntervals, Time};
///
/// let mut runs = RunIntervals::new();
/// runs.insert(Time(0), Some(Time(10)));
/// runs.insert(Time(5), Some(Time(20))); // overlaps: joins the first
/// runs.insert(Time(30), Some(Time(35))); // a later run of its own
/// let merged: Vec<_> = runs.merged().collect();
/// assert_eq!(merged, [(Time(0), Some(Time(20))), (Time(30), Some(Time(35)))]);
/// assert_eq!(runs.total(), Elapsed(25)); // BuildKit's `DONE 0.0s` counts 20 + 5 ns
/// ```
#[derive(Debug, Clone, Default)]
pub struct RunIntervals(Intervals);

impl RunIntervals {
    /// No runs yet.
    pub fn new() -> Self {
        RunIntervals::default()
    }

    /// Adds one run: `stop == None` while it is open. Like a vertex snapshot in the tracker,
    /// an open re-send of a run that has completed is ignored, and a completion closes the
    /// runs that began before it and were left open.
    pub fn insert(&mut self, start: crate::Time, stop: Option<crate::Time>) {
        self.0.insert(start.0, stop.map(|t| t.0));
    }

    /// The merged runs, sorted by start: `(start, stop)`, `stop == None` for an open one
    /// (only the last can be open).
    pub fn merged(&self) -> impl ExactSizeIterator<Item = (crate::Time, Option<crate::Time>)> + '_ {
        self.0
            .merged()
            .iter()
            .map(|s| (crate::Time(s.start), s.stop.map(crate::Time)))
    }

    /// The sum of the closed merged runs, folded ones included (BuildKit's `DONE x.xs`).
    pub fn total(&self) -> crate::Elapsed {
        crate::Elapsed(self.0.closed_total())
    }

    /// Whether the last merged run is open.
    pub fn is_open(&self) -> bool {
        self.0.merged().last().is_some_and(|s| s.stop.is_none())
    }
}

/// BuildKit's `mergeIntervals`: sorted by start; an interval starting at or before the
/// current one's stop is joined to it; an open interval swallows every later one.
fn merge(raw: &BTreeMap<i128, Option<i128>>) -> Vec<Span> {
    let mut out = Vec::new();
    let mut iter = raw.iter().map(|(&start, &stop)| Span { start, stop });
    let Some(mut cur) = iter.next() else {
        return out;
    };
    for next in iter {
        let Some(cur_stop) = cur.stop else {
            break;
        };
        if cur_stop < next.start {
            out.push(cur);
            cur = next;
            continue;
        }
        match next.stop {
            None => {
                cur.stop = None;
                break;
            }
            Some(next_stop) if next_stop > cur_stop => cur.stop = Some(next_stop),
            Some(_) => {}
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(iv: &Intervals) -> Vec<(i128, Option<i128>)> {
        iv.merged().iter().map(|s| (s.start, s.stop)).collect()
    }

    #[test]
    fn disjoint_intervals_stay_apart() {
        let mut iv = Intervals::default();
        iv.insert(0, Some(10));
        iv.insert(12, Some(15));
        assert_eq!(spans(&iv), vec![(0, Some(10)), (12, Some(15))]);
        assert!(!iv.is_open());
        assert_eq!(iv.closed_total(), 13);
        assert_eq!(iv.closed_total_until(11), 10);
    }

    #[test]
    fn touching_and_overlapping_intervals_join() {
        let mut iv = Intervals::default();
        iv.insert(0, Some(10));
        iv.insert(10, Some(20));
        iv.insert(5, Some(8));
        assert_eq!(spans(&iv), vec![(0, Some(20))]);
        assert_eq!(iv.closed_total(), 20);
    }

    #[test]
    fn open_interval_swallows_later_open_ones() {
        let mut iv = Intervals::default();
        iv.insert(0, None);
        iv.insert(5, None);
        assert_eq!(spans(&iv), vec![(0, None)]);
        assert!(iv.is_open());
        assert_eq!(iv.closed_total(), 0);
    }

    #[test]
    fn a_later_completion_closes_earlier_open_intervals() {
        // Docker 20.10: {started: 0}, then {started: 5, completed: 6}; 0's completion never
        // comes. BuildKit's printer keeps [0, ∞) open; we close it at 6.
        let mut iv = Intervals::default();
        iv.insert(0, None);
        iv.insert(3, None);
        assert_eq!(iv.insert(5, Some(6)), Insert::Applied);
        assert_eq!(spans(&iv), vec![(0, Some(6))]);
        assert!(!iv.is_open());
        assert_eq!(iv.closed_total(), 6);
        // Re-sent open snapshots of the closed starts are stale.
        assert_eq!(iv.insert(0, None), Insert::Stale);
        assert_eq!(iv.insert(3, None), Insert::Stale);
        // A late completion of the first start itself overwrites the time, as in the printer.
        iv.insert(0, Some(4));
        assert_eq!(spans(&iv), vec![(0, Some(6))]);
        iv.insert(0, Some(9));
        assert_eq!(spans(&iv), vec![(0, Some(9))]);
        // A later run is its own interval; an open one after a closed one is not closed by a
        // completion that starts before it.
        iv.insert(100, None);
        iv.insert(50, Some(60));
        assert_eq!(spans(&iv), vec![(0, Some(9)), (50, Some(60)), (100, None)]);
    }

    #[test]
    fn overlapping_open_interval_reopens() {
        let mut iv = Intervals::default();
        iv.insert(0, Some(10));
        iv.insert(10, None);
        assert_eq!(spans(&iv), vec![(0, None)]);
    }

    #[test]
    fn stale_reopen_of_a_completed_interval_is_ignored() {
        let mut iv = Intervals::default();
        assert_eq!(iv.insert(0, None), Insert::Applied);
        assert_eq!(iv.insert(0, Some(4)), Insert::Applied);
        assert_eq!(iv.insert(0, None), Insert::Stale);
        assert_eq!(spans(&iv), vec![(0, Some(4))]);
        // A later completion time overwrites, as in BuildKit's printer.
        assert_eq!(iv.insert(0, Some(9)), Insert::Applied);
        assert_eq!(spans(&iv), vec![(0, Some(9))]);
    }

    #[test]
    fn restarts_without_end_keep_a_bounded_number_of_raw_intervals() {
        let mut iv = Intervals::default();
        for i in 0..10_000i128 {
            assert_eq!(iv.insert(i * 10, None), Insert::Applied);
            assert_eq!(iv.insert(i * 10, Some(i * 10 + 4)), Insert::Applied);
            assert!(iv.raw_len() <= MAX_RAW, "{} raw intervals", iv.raw_len());
            assert!(iv.merged().len() <= MAX_RAW);
        }
        assert_eq!(iv.closed_total(), 10_000 * 4);
        assert_eq!(iv.closed_total_until(99_990), 10_000 * 4);
        assert!(!iv.is_open());
        // Re-sent snapshots of folded runs change nothing.
        assert_eq!(iv.insert(0, None), Insert::Stale);
        assert_eq!(iv.insert(50, Some(1_000_000)), Insert::Stale);
        assert_eq!(iv.closed_total(), 10_000 * 4);
        // The latest runs are still exact: a re-sent start is stale, a new one opens.
        assert_eq!(iv.insert(99_990, None), Insert::Stale);
        assert_eq!(iv.insert(100_000, None), Insert::Applied);
        assert!(iv.is_open());
    }

    #[test]
    fn overlapping_snapshots_of_one_run_are_collapsed() {
        let mut iv = Intervals::default();
        iv.insert(0, Some(1));
        // One long run announced by many snapshots with different, overlapping starts.
        for i in 0..1_000i128 {
            iv.insert(10 + i, Some(2_000));
            assert!(iv.raw_len() <= MAX_RAW, "{} raw intervals", iv.raw_len());
        }
        assert_eq!(spans(&iv), vec![(10, Some(2_000))]);
        assert_eq!(iv.closed_total(), 1 + 1_990);
        // An open re-send of one of the collapsed starts stays stale; the end re-opens it.
        assert_eq!(iv.insert(500, None), Insert::Stale);
        assert_eq!(iv.insert(2_000, None), Insert::Applied);
        assert!(iv.is_open());
    }

    #[test]
    fn backwards_interval_counts_zero() {
        let mut iv = Intervals::default();
        iv.insert(10, Some(5));
        assert_eq!(iv.closed_total(), 0);
        assert!(!iv.is_open());
    }
}
