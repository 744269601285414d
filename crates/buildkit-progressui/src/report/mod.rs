//! Build insights: what a build's events add up to — totals, the slowest steps, the time of
//! each stage, the failure, a timeline of every step's runs and the **critical path** (the
//! chain of steps, linked by their inputs, whose durations add up to the most) — and writers
//! of it as text, Markdown, JSON and Chrome trace-event JSON.
//!
//! Sans-IO like the rest of the crate: a [`ReportBuilder`] is fed the events (of a live build
//! or a replay, [`ReportBuilder::apply`]) and gives a [`Report`] value; the writers
//! ([`write_text`], [`write_markdown`], [`write_json`], [`write_chrome_trace`], or [`write()`]
//! with a [`Format`]) write it to any [`std::io::Write`]. No clock: every time comes
//! from the records.
//!
//! **Memory** is proportional to the vertices: per started vertex its name, inputs, at most
//! 64 raw run intervals (the tracker's bound, [`buildkit_events::RunIntervals`]) and its last
//! [`TAIL_LINES`] log lines, each cut to [`TAIL_LINE_BYTES`]; never the whole log.
//!
//! **Durations** are BuildKit's: a step's duration is the sum of its merged run intervals
//! (`DONE x.xs`), merged as BuildKit's printer merges them. They come from the tracker's
//! closing [`Summary`] ([`Step::runs`](buildkit_events::Step::runs), in
//! [`BuildEvent::Finished`]) when the builder is given it: a late snapshot can change a
//! vertex's runs without an event. Until then (a build that broke off), from the events:
//! [`Event::Completed`]'s duration, and its `(started, completed)` merged by
//! [`buildkit_events::RunIntervals`], the tracker's own merging.
//!
//! **The critical path** is the heaviest chain through the `inputs` edges, weighted by the
//! steps' durations, listed first to last. An input that never started is absent (weight 0,
//! not on the path). The search is iterative and linear in vertices plus edges; an edge that
//! would close a cycle (hostile data) is ignored, so every input gives a path and no input
//! loops. Among equally heavy chains the one ending at the step that started first is taken,
//! and at each step the input that started first; steps of duration 0 at its start are left
//! out (a path of total 0 is empty).
//!
//! # Example
//!
//! ```
//! use buildkit_events::{Elapsed, Event, Outcome, Time, VertexCompleted, VertexStarted};
//! use buildkit_progressui::report::{self, ReportBuilder};
//!
//! let s = |ms: i128| Time(ms * 1_000_000);
//! let mut builder = ReportBuilder::new();
//! // Two steps: the second consumes the first.
//! for (digest, name, inputs, start, stop) in [
//!     ("sha256:a", "[1/2] FROM busybox", vec![], 0, 500),
//!     ("sha256:b", "[2/2] RUN make", vec!["sha256:a".to_string()], 500, 2_000),
//! ] {
//!     builder.event(&Event::Started(VertexStarted {
//!         digest: digest.into(),
//!         name: name.into(),
//!         inputs,
//!         started: s(start),
//!         interval: 0,
//!     }));
//!     builder.event(&Event::Completed(VertexCompleted {
//!         digest: digest.into(),
//!         name: name.into(),
//!         outcome: Outcome::Done,
//!         started: s(start),
//!         completed: s(stop),
//!         duration: Elapsed((stop - start) as u128 * 1_000_000),
//!         interval: 0,
//!     }));
//! }
//! let report = builder.finish();
//! assert_eq!(report.wall_time, Elapsed(2_000_000_000));
//! let path: Vec<&str> = report.critical_path.iter().map(|p| p.name.as_str()).collect();
//! assert_eq!(path, ["[1/2] FROM busybox", "[2/2] RUN make"]);
//!
//! let mut text = Vec::new();
//! report::write_text(&report, &mut text)?;
//! let text = String::from_utf8(text).unwrap();
//! assert!(text.contains("Critical path: 2.00s"), "{text}");
//!
//! let mut json = Vec::new();
//! report::write_json(&report, &mut json)?;
//! let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
//! assert_eq!(json["critical_path_s"], 2.0);
//! assert_eq!(json["timeline"][1]["inputs"][0], "sha256:a");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;

use buildkit_events::{Elapsed, Event, LineEnd, Outcome, RunIntervals, StepName, Summary, Time};
use docker_build::decode::BuildEvent;
use serde::Serialize;

mod chrome;
mod json;
mod markdown;
mod text;

pub use chrome::write_chrome_trace;
pub use json::write_json;
pub use markdown::write_markdown;
pub use text::write_text;

/// How many of its last log lines each step keeps for the report.
pub const TAIL_LINES: usize = 20;
/// Longest kept log line, in bytes (a longer one is cut, at a character boundary).
pub const TAIL_LINE_BYTES: usize = 2048;
/// How many steps [`Report::slowest`] lists at most.
pub const SLOWEST: usize = 10;

/// The formats a [`Report`] is written in (see [`write()`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// A summary for a terminal ([`write_text`]).
    Text,
    /// A summary for `$GITHUB_STEP_SUMMARY` ([`write_markdown`]).
    Markdown,
    /// The report as one JSON object ([`write_json`]; schema in the workspace README).
    Json,
    /// Chrome trace-event JSON, for Perfetto or `chrome://tracing` ([`write_chrome_trace`]).
    ChromeTrace,
}

/// Writes `report` in `format` to `out`.
pub fn write(report: &Report, format: Format, out: &mut dyn io::Write) -> io::Result<()> {
    match format {
        Format::Text => write_text(report, out),
        Format::Markdown => write_markdown(report, out),
        Format::Json => write_json(report, out),
        Format::ChromeTrace => write_chrome_trace(report, out),
    }
}

/// What a build came to. Serialized (`serde`) it is exactly the `--format json` schema, keys
/// in this order; times are seconds (`f64`), positions relative to the first start of any
/// step (`start_s` 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The schema version: 1.
    pub version: u32,
    /// Earliest start of any step to the latest completion.
    #[serde(rename = "wall_time_s", serialize_with = "secs")]
    pub wall_time: Elapsed,
    /// Steps by outcome.
    pub steps: StepCounts,
    /// `cached / (done + cached)`; 0 when both are 0.
    pub cache_ratio: f64,
    /// Warnings seen (after the tracker's de-duplication).
    pub warnings: u64,
    /// Bytes of log output of all vertices (each line's bytes and its `\n`).
    pub log_bytes: u64,
    /// The steps that took longest (own duration, longest first, ties by first start), at
    /// most [`SLOWEST`]; steps of duration 0 are left out.
    pub slowest: Vec<StepTime>,
    /// Per stage of the Dockerfile, in the order of their first start.
    pub stages: Vec<StageTime>,
    /// The critical path, first step to last.
    pub critical_path: Vec<PathStep>,
    /// The sum of the critical path's durations.
    #[serde(rename = "critical_path_s", serialize_with = "secs")]
    pub critical_path_time: Elapsed,
    /// The first step that failed.
    pub failed: Option<FailedStep>,
    /// Every started step, in the order of its first start.
    pub timeline: Vec<TimelineStep>,
    /// The daemon's error when the build failed (also when no step carried it, e.g. a
    /// Dockerfile syntax error); `null` otherwise. (Added to the schema after version 1's
    /// first keys.)
    pub build_error: Option<String>,
    /// The first start of any step (what `start_s` counts from); not in the JSON.
    #[serde(skip)]
    pub origin: Option<Time>,
}

/// How many steps ended how. `total` counts the started steps (`done + cached + failed +
/// canceled + interrupted`); `pending` ones were described but never started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StepCounts {
    /// Started steps.
    pub total: usize,
    /// Ran and succeeded.
    pub done: usize,
    /// Served from the cache.
    pub cached: usize,
    /// Failed.
    pub failed: usize,
    /// Canceled by BuildKit.
    pub canceled: usize,
    /// Still running when the input ended.
    pub interrupted: usize,
    /// Described but never started (only known from the tracker's [`Summary`]).
    pub pending: usize,
}

/// A step and its own duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepTime {
    /// The vertex digest.
    #[serde(serialize_with = "text")]
    pub digest: Arc<str>,
    /// Its name.
    pub name: String,
    /// Sum of its merged run intervals.
    #[serde(rename = "duration_s", serialize_with = "secs")]
    pub duration: Elapsed,
}

/// The time of one Dockerfile stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageTime {
    /// The stage name (`build` of `[build 2/3]`); `""` for the steps of a single-stage build
    /// (`[2/3]`). BuildKit's internal steps belong to no stage.
    pub stage: String,
    /// How many steps it has.
    pub steps: usize,
    /// How long at least one of its steps ran (the union of their merged intervals).
    #[serde(rename = "duration_s", serialize_with = "secs")]
    pub duration: Elapsed,
    /// First start of its steps.
    #[serde(rename = "start_s", serialize_with = "secs")]
    pub start: Elapsed,
    /// Latest completion of its steps.
    #[serde(rename = "end_s", serialize_with = "secs")]
    pub end: Elapsed,
}

/// One step of the critical path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathStep {
    /// The vertex digest.
    #[serde(serialize_with = "text")]
    pub digest: Arc<str>,
    /// Its name.
    pub name: String,
    /// Its duration.
    #[serde(rename = "duration_s", serialize_with = "secs")]
    pub duration: Elapsed,
    /// `duration / wall time` (0 when the wall time is 0).
    pub share: f64,
}

/// The first step that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedStep {
    /// The vertex digest.
    #[serde(serialize_with = "text")]
    pub digest: Arc<str>,
    /// Its name.
    pub name: String,
    /// Its error text.
    pub error: String,
    /// Its last log lines (at most [`TAIL_LINES`]), oldest first.
    pub last_lines: Vec<String>,
}

/// One started step on the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineStep {
    /// The vertex digest.
    #[serde(serialize_with = "text")]
    pub digest: Arc<str>,
    /// Its name (from its latest start).
    pub name: String,
    /// Its stage (see [`StageTime::stage`]); `None` for internal and other steps.
    pub stage: Option<String>,
    /// How its latest run ended.
    #[serde(serialize_with = "outcome")]
    pub outcome: Outcome,
    /// Sum of its merged run intervals (BuildKit's `DONE x.xs`).
    #[serde(rename = "duration_s", serialize_with = "secs")]
    pub duration: Elapsed,
    /// Its first start.
    #[serde(rename = "start_s", serialize_with = "secs")]
    pub start: Elapsed,
    /// Its latest completion.
    #[serde(rename = "end_s", serialize_with = "secs")]
    pub end: Elapsed,
    /// Its merged run intervals `[start, end]`, sorted.
    #[serde(serialize_with = "spans")]
    pub intervals: Vec<(Elapsed, Elapsed)>,
    /// The digests of the vertices it consumes.
    pub inputs: Vec<String>,
    /// Whether it is on the critical path.
    pub critical: bool,
    /// BuildKit's own work (`[internal] …`).
    pub internal: bool,
    /// Its error text, when it failed.
    pub error: Option<String>,
    /// Its last log lines (at most [`TAIL_LINES`]), invalid UTF-8 replaced.
    pub last_lines: Vec<String>,
}

fn secs<S: serde::Serializer>(d: &Elapsed, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn text<S: serde::Serializer>(t: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t)
}

fn outcome<S: serde::Serializer>(o: &Outcome, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(o.label())
}

fn spans<S: serde::Serializer>(v: &[(Elapsed, Elapsed)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for (a, b) in v {
        seq.serialize_element(&[a.as_secs_f64(), b.as_secs_f64()])?;
    }
    seq.end()
}

/// What the builder keeps of one started vertex.
#[derive(Debug, Clone)]
struct Step {
    digest: Arc<str>,
    name: String,
    inputs: Vec<String>,
    first_started: Time,
    last_completed: Option<Time>,
    runs: RunIntervals,
    /// The merged intervals of the tracker's [`Summary`], when it came: they replace `runs`.
    final_runs: Option<Vec<(Time, Time)>>,
    /// The outcome of its latest completion; `None` while it runs.
    outcome: Option<Outcome>,
    duration: Elapsed,
    tail: VecDeque<String>,
    /// The last tail line was a [`LineEnd::Split`] piece: the next piece continues it.
    continues: bool,
}

impl Step {
    fn log(&mut self, text: &str, end: LineEnd) {
        if self.continues {
            if let Some(last) = self.tail.back_mut() {
                push_bounded(last, text);
            }
        } else {
            if self.tail.len() == TAIL_LINES {
                self.tail.pop_front();
            }
            let mut line = String::new();
            push_bounded(&mut line, text);
            self.tail.push_back(line);
        }
        self.continues = end == LineEnd::Split;
    }
}

/// Appends `text` to `line` up to [`TAIL_LINE_BYTES`], cut at a character boundary.
fn push_bounded(line: &mut String, text: &str) {
    let room = TAIL_LINE_BYTES.saturating_sub(line.len());
    let mut cut = room.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    line.push_str(&text[..cut]);
}

/// Folds a build's events into a [`Report`]; see the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct ReportBuilder {
    steps: Vec<Step>,
    index: HashMap<Arc<str>, usize>,
    first_failed: Option<usize>,
    warnings: u64,
    log_bytes: u64,
    pending: usize,
    build_error: Option<String>,
    /// The latest time any event carried (closes what still runs at [`ReportBuilder::finish`]).
    latest: Option<Time>,
}

impl ReportBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        ReportBuilder::default()
    }

    /// Folds one event of a build (of a decoder, a live build stream or a replay): the vertex
    /// events, the failure's message, and the tracker's [`Summary`] in
    /// [`BuildEvent::Finished`] (for the pending steps).
    pub fn apply(&mut self, event: &BuildEvent) {
        match event {
            BuildEvent::Vertex(e) => self.event(e),
            BuildEvent::Failed(f) if self.build_error.is_none() => {
                self.build_error = Some(f.message.clone());
            }
            BuildEvent::Finished(s) => self.summary(&s.summary),
            _ => {}
        }
    }

    /// Takes what only the tracker's closing [`Summary`] knows: how many vertices were
    /// described but never started, and each step's final duration and merged intervals. (A
    /// late snapshot can change a vertex's intervals and duration without an event, e.g.
    /// Docker 20.10's second start of a vertex inside its first run; without the summary,
    /// the report shows what the events said.)
    pub fn summary(&mut self, summary: &Summary) {
        self.pending = summary.pending;
        for step in &summary.steps {
            let Some(&i) = self.index.get(&step.digest) else {
                continue;
            };
            let ours = &mut self.steps[i];
            ours.duration = step.duration;
            ours.final_runs = Some(step.runs.clone());
            ours.outcome = Some(step.outcome.clone());
            ours.last_completed = Some(step.last_completed);
            ours.first_started = ours.first_started.min(step.first_started);
        }
    }

    fn observe(&mut self, t: Time) {
        if self.latest.is_none_or(|l| t > l) {
            self.latest = Some(t);
        }
    }

    /// Folds one vertex event.
    pub fn event(&mut self, event: &Event) {
        match event {
            Event::Started(s) => {
                self.observe(s.started);
                let i = match self.index.get(&s.digest) {
                    Some(&i) => i,
                    None => {
                        let i = self.steps.len();
                        self.index.insert(Arc::clone(&s.digest), i);
                        self.steps.push(Step {
                            digest: Arc::clone(&s.digest),
                            name: String::new(),
                            inputs: Vec::new(),
                            first_started: s.started,
                            last_completed: None,
                            runs: RunIntervals::new(),
                            final_runs: None,
                            outcome: None,
                            duration: Elapsed(0),
                            tail: VecDeque::new(),
                            continues: false,
                        });
                        i
                    }
                };
                let step = &mut self.steps[i];
                step.name.clone_from(&s.name);
                step.inputs.clone_from(&s.inputs);
                step.first_started = step.first_started.min(s.started);
                step.outcome = None;
            }
            Event::Completed(c) => {
                self.observe(c.completed);
                let Some(&i) = self.index.get(&c.digest) else {
                    // Every completion follows its start; a stray one has no run to show.
                    return;
                };
                let step = &mut self.steps[i];
                step.runs.insert(c.started, Some(c.completed));
                step.duration = c.duration;
                step.outcome = Some(c.outcome.clone());
                step.last_completed = Some(
                    step.last_completed
                        .map_or(c.completed, |l| l.max(c.completed)),
                );
                if c.outcome.is_failed() && self.first_failed.is_none() {
                    self.first_failed = Some(i);
                }
            }
            Event::Log(l) => {
                self.observe(l.timestamp);
                let newline = u64::from(l.end == LineEnd::Newline);
                self.log_bytes = self
                    .log_bytes
                    .saturating_add(l.bytes.len() as u64 + newline);
                if let Some(&i) = self.index.get(&l.digest) {
                    self.steps[i].log(&l.text(), l.end);
                }
            }
            Event::Warning(_) => self.warnings += 1,
            _ => {}
        }
    }

    /// The report of what was folded. A step still running (no [`Event::Completed`] after
    /// its last start: the input ended without the tracker's `finish`) counts as interrupted
    /// at the latest time seen.
    pub fn finish(self) -> Report {
        let latest = self.latest;
        let mut steps = self.steps;
        for step in &mut steps {
            if step.outcome.is_none() {
                step.outcome = Some(Outcome::Interrupted);
            }
            if step.last_completed.is_none() {
                step.last_completed = Some(latest.unwrap_or(step.first_started));
            }
        }
        let origin = steps.iter().map(|s| s.first_started).min();
        let end = steps.iter().filter_map(|s| s.last_completed).max();
        let wall_time = match (origin, end) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Elapsed(0),
        };
        let rel = |t: Time| t.saturating_duration_since(origin.unwrap_or(t));

        let mut counts = StepCounts {
            total: steps.len(),
            pending: self.pending,
            ..StepCounts::default()
        };
        for step in &steps {
            match step.outcome.as_ref().unwrap_or(&Outcome::Interrupted) {
                Outcome::Done => counts.done += 1,
                Outcome::Cached => counts.cached += 1,
                Outcome::Failed(_) => counts.failed += 1,
                Outcome::Canceled => counts.canceled += 1,
                _ => counts.interrupted += 1,
            }
        }
        let ran = counts.done + counts.cached;
        let cache_ratio = if ran == 0 {
            0.0
        } else {
            counts.cached as f64 / ran as f64
        };

        let mut by_duration: Vec<usize> = (0..steps.len())
            .filter(|&i| steps[i].duration > Elapsed(0))
            .collect();
        // `steps` is in first-start order: a stable sort keeps it for ties.
        by_duration.sort_by(|&a, &b| steps[b].duration.cmp(&steps[a].duration));
        let slowest = by_duration
            .into_iter()
            .take(SLOWEST)
            .map(|i| StepTime {
                digest: Arc::clone(&steps[i].digest),
                name: steps[i].name.clone(),
                duration: steps[i].duration,
            })
            .collect();

        let path = critical_path(&steps);
        let critical_path_time = Elapsed(
            path.iter()
                .map(|&i| steps[i].duration.0)
                .fold(0u128, u128::saturating_add),
        );
        let share = |d: Elapsed| {
            if wall_time.0 == 0 {
                0.0
            } else {
                d.as_secs_f64() / wall_time.as_secs_f64()
            }
        };
        let mut critical = vec![false; steps.len()];
        for &i in &path {
            critical[i] = true;
        }
        let critical_path = path
            .iter()
            .map(|&i| PathStep {
                digest: Arc::clone(&steps[i].digest),
                name: steps[i].name.clone(),
                duration: steps[i].duration,
                share: share(steps[i].duration),
            })
            .collect();

        let stage_of = |name: &str| -> Option<String> {
            let parsed = StepName::parse(name);
            match (parsed.internal, parsed.index) {
                (false, Some(_)) => Some(parsed.stage.unwrap_or("").to_string()),
                _ => None,
            }
        };

        let mut timeline = Vec::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            let last = step.last_completed.unwrap_or(step.first_started);
            let mut intervals: Vec<(Elapsed, Elapsed)> = match &step.final_runs {
                Some(runs) => runs.iter().map(|&(a, b)| (rel(a), rel(b))).collect(),
                None => step
                    .runs
                    .merged()
                    .map(|(a, b)| (rel(a), rel(b.unwrap_or(last))))
                    .collect(),
            };
            if intervals.is_empty() {
                // Started, never completed: one open run, closed at the end of the input.
                intervals.push((rel(step.first_started), rel(last)));
            }
            let outcome = step.outcome.clone().unwrap_or(Outcome::Interrupted);
            let error = match &outcome {
                Outcome::Failed(e) => Some(e.clone()),
                _ => None,
            };
            timeline.push(TimelineStep {
                digest: Arc::clone(&step.digest),
                name: step.name.clone(),
                stage: stage_of(&step.name),
                outcome,
                duration: step.duration,
                start: rel(step.first_started),
                end: rel(last),
                intervals,
                inputs: step.inputs.clone(),
                critical: critical[i],
                internal: StepName::parse(&step.name).internal,
                error,
                last_lines: step.tail.iter().cloned().collect(),
            });
        }

        let stages = stage_times(&timeline);

        let failed = self.first_failed.map(|i| {
            let step = &steps[i];
            FailedStep {
                digest: Arc::clone(&step.digest),
                name: step.name.clone(),
                error: match &timeline[i].outcome {
                    Outcome::Failed(e) => e.clone(),
                    _ => String::new(),
                },
                last_lines: step.tail.iter().cloned().collect(),
            }
        });

        Report {
            version: 1,
            wall_time,
            steps: counts,
            cache_ratio,
            warnings: self.warnings,
            log_bytes: self.log_bytes,
            slowest,
            stages,
            critical_path,
            critical_path_time,
            failed,
            timeline,
            build_error: self.build_error,
            origin,
        }
    }
}

/// The time of each stage, in the order of their first start (`timeline` is in first-start
/// order).
fn stage_times(timeline: &[TimelineStep]) -> Vec<StageTime> {
    let mut order: Vec<&str> = Vec::new();
    let mut runs: HashMap<&str, Vec<(Elapsed, Elapsed)>> = HashMap::new();
    let mut stages: HashMap<&str, StageTime> = HashMap::new();
    for step in timeline {
        let Some(stage) = step.stage.as_deref() else {
            continue;
        };
        let entry = stages.entry(stage).or_insert_with(|| {
            order.push(stage);
            StageTime {
                stage: stage.to_string(),
                steps: 0,
                duration: Elapsed(0),
                start: step.start,
                end: step.end,
            }
        });
        entry.steps += 1;
        entry.start = entry.start.min(step.start);
        entry.end = entry.end.max(step.end);
        runs.entry(stage)
            .or_default()
            .extend(step.intervals.iter().copied());
    }
    order
        .into_iter()
        .map(|stage| {
            let mut stage_time = stages.remove(stage).expect("inserted with its order");
            let mut spans = runs.remove(stage).unwrap_or_default();
            spans.sort();
            let mut busy = 0u128;
            let mut current: Option<(Elapsed, Elapsed)> = None;
            for (a, b) in spans {
                match &mut current {
                    Some((_, end)) if a <= *end => *end = (*end).max(b),
                    _ => {
                        if let Some((s, e)) = current {
                            busy += e.0.saturating_sub(s.0);
                        }
                        current = Some((a, b));
                    }
                }
            }
            if let Some((s, e)) = current {
                busy += e.0.saturating_sub(s.0);
            }
            stage_time.duration = Elapsed(busy);
            stage_time
        })
        .collect()
}

/// The heaviest chain through the inputs (see the module docs), as positions in `steps`,
/// first to last. Iterative depth-first search over the inputs in first-start order; an edge
/// to a vertex on the current search path (a cycle) is ignored. O(V + E).
fn critical_path(steps: &[Step]) -> Vec<usize> {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (&*s.digest, i))
        .collect();
    let inputs: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| {
            s.inputs
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    let mut state = vec![NEW; steps.len()];
    let mut weight = vec![0u128; steps.len()];
    let mut best_input: Vec<Option<usize>> = vec![None; steps.len()];
    // (vertex, next input to look at)
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..steps.len() {
        if state[root] != NEW {
            continue;
        }
        state[root] = ON_PATH;
        stack.push((root, 0));
        while let Some(top) = stack.last_mut() {
            let v = top.0;
            if let Some(&u) = inputs[v].get(top.1) {
                top.1 += 1;
                if state[u] == NEW {
                    state[u] = ON_PATH;
                    stack.push((u, 0));
                }
                continue;
            }
            // All inputs of `v` are done (or on the path: a cycle, ignored).
            let mut best: Option<usize> = None;
            for &u in &inputs[v] {
                if state[u] != DONE || weight[u] == 0 {
                    continue;
                }
                if best.is_none_or(|b| weight[u] > weight[b] || (weight[u] == weight[b] && u < b)) {
                    best = Some(u);
                }
            }
            best_input[v] = best;
            weight[v] = steps[v]
                .duration
                .0
                .saturating_add(best.map_or(0, |b| weight[b]));
            state[v] = DONE;
            stack.pop();
        }
    }
    let Some(end) = (0..steps.len())
        .filter(|&i| weight[i] > 0)
        .max_by(|&a, &b| weight[a].cmp(&weight[b]).then(b.cmp(&a)))
    else {
        return Vec::new();
    };
    let mut path = vec![end];
    let mut v = end;
    // Each step of the walk goes to a vertex finished before `v`: it ends.
    while let Some(u) = best_input[v] {
        path.push(u);
        v = u;
    }
    path.reverse();
    // Steps of duration 0 at the start add nothing.
    let zero = path
        .iter()
        .take_while(|&&i| steps[i].duration.0 == 0)
        .count();
    path.drain(..zero);
    path
}

#[cfg(test)]
mod tests;
