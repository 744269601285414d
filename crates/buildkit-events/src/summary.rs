//! What [`Tracker::finish`](crate::Tracker::finish) reports about the whole build.

use std::sync::Arc;

use crate::event::{Duration, LogLine, Outcome, Time};

/// How many started vertices ended (their latest interval) with each outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// [`Outcome::Done`].
    pub done: usize,
    /// [`Outcome::Cached`].
    pub cached: usize,
    /// [`Outcome::Failed`].
    pub failed: usize,
    /// [`Outcome::Canceled`].
    pub canceled: usize,
    /// [`Outcome::Interrupted`].
    pub interrupted: usize,
}

impl OutcomeCounts {
    pub(crate) fn add(&mut self, outcome: &Outcome) {
        let slot = match outcome {
            Outcome::Done => &mut self.done,
            Outcome::Cached => &mut self.cached,
            Outcome::Failed(_) => &mut self.failed,
            Outcome::Canceled => &mut self.canceled,
            Outcome::Interrupted => &mut self.interrupted,
        };
        *slot += 1;
    }

    /// Sum of all counts.
    pub fn total(&self) -> usize {
        self.done + self.cached + self.failed + self.canceled + self.interrupted
    }
}

/// One started vertex in the [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexSummary {
    /// The vertex digest.
    pub digest: Arc<str>,
    /// Its display name.
    pub name: String,
    /// Outcome of its latest interval.
    pub outcome: Outcome,
    /// Sum of its merged run intervals (BuildKit's `DONE x.xs`).
    pub duration: Duration,
    /// How many intervals it ran (2 for a restart).
    pub intervals: u32,
}

/// The first vertex that failed, with the tail of its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedVertex {
    /// The vertex digest.
    pub digest: Arc<str>,
    /// Its display name.
    pub name: String,
    /// Its error text, e.g. `process "/bin/sh -c …" did not complete successfully: exit code: 3`.
    pub error: String,
    /// Its last log lines, oldest first (at most [`Config::log_tail_lines`](crate::Config)).
    pub last_lines: Vec<LogLine>,
}

/// The result of a whole build, as far as the records tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Started vertices by outcome.
    pub counts: OutcomeCounts,
    /// Vertices described but never started (e.g. steps after a failure).
    pub pending: usize,
    /// Earliest start of any vertex.
    pub first_started: Option<Time>,
    /// Latest completion of any vertex.
    pub last_completed: Option<Time>,
    /// From `first_started` to `last_completed` (zero if either is missing).
    pub wall_time: Duration,
    /// Every started vertex, in the order they first started.
    pub vertices: Vec<VertexSummary>,
    /// The first vertex that completed with [`Outcome::Failed`].
    pub failed: Option<FailedVertex>,
}
