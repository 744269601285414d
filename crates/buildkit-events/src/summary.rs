//! What [`Tracker::finish`](crate::Tracker::finish) reports about the whole build.

use std::sync::Arc;

use crate::event::{Elapsed, LogLine, Outcome, Time};
use crate::name::StepName;

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

/// One started vertex in the [`Summary`]: the step-level view, for "one line per step" output.
///
/// ```
/// # use std::sync::Arc;
/// use buildkit_events::{Elapsed, Outcome, Step, Time};
///
/// let step = Step {
///     digest: Arc::from("sha256:1"),
///     name: "[build 1/3] FROM docker.io/library/alpine".into(),
///     inputs: vec![],
///     outcome: Outcome::Cached,
///     duration: Elapsed(800_000),
///     intervals: 2,
///     first_started: Time(0),
///     last_completed: Time(1_000_000),
///     runs: vec![(Time(0), Time(400_000)), (Time(600_000), Time(1_000_000))],
/// };
/// // BuildKit resolved the image (`DONE`), then found it in its cache (`CACHED`).
/// assert!(step.repeated());
/// assert!(!step.is_internal());
/// assert_eq!(step.parsed_name().stage, Some("build"));
/// assert_eq!(format!("{:<8}{}", step.outcome.label(), step.parsed_name().command),
///            "cached  FROM docker.io/library/alpine");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The vertex digest.
    pub digest: Arc<str>,
    /// Its display name.
    pub name: String,
    /// Digests of the vertices it consumes (its edges in the build graph).
    pub inputs: Vec<String>,
    /// The final outcome: that of its latest interval.
    pub outcome: Outcome,
    /// Sum of its merged run intervals (BuildKit's `DONE x.xs`).
    pub duration: Elapsed,
    /// How many intervals it ran: more than one when BuildKit ran it again (see
    /// [`Step::repeated`]).
    pub intervals: u32,
    /// Start of its first interval.
    pub first_started: Time,
    /// End of its latest interval.
    pub last_completed: Time,
    /// Its merged run intervals `(start, end)`, sorted by start, as BuildKit's printer merges
    /// them (what [`Step::duration`] adds up); an interval the input left open ends at
    /// [`Step::last_completed`]. A vertex restarted more than 64 times lists only its latest
    /// runs (the older ones are folded into the duration; see the crate docs, *Memory*).
    pub runs: Vec<(Time, Time)>,
}

impl Step {
    /// BuildKit completed this vertex more than once, e.g. `[1/3] FROM …` reported `DONE` and
    /// then `CACHED`, or a remote context loaded twice; [`Step::outcome`] is the last one.
    pub fn repeated(&self) -> bool {
        self.intervals > 1
    }

    /// BuildKit's own work (`[internal] …`, `[auth] …`) rather than a Dockerfile instruction.
    pub fn is_internal(&self) -> bool {
        self.parsed_name().internal
    }

    /// The name taken apart: stage, position, instruction.
    pub fn parsed_name(&self) -> StepName<'_> {
        StepName::parse(&self.name)
    }
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
///
/// Whether the build *succeeded* is not decided here: that needs the daemon's word (an image id,
/// an error) besides the vertices; see `docker_build::BuildSummary::succeeded`.
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
    pub wall_time: Elapsed,
    /// Every started vertex that has completed, in the order they first started.
    pub steps: Vec<Step>,
    /// The first vertex that completed with [`Outcome::Failed`].
    pub failed: Option<FailedVertex>,
}
