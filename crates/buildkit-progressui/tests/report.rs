//! The build report (`buildkit_progressui::report`) on every corpus recording and on
//! hand-made builds.
//!
//! - Every recording (one test each, `corpus_docker_28_5::run_fails`, …): the durations, the
//!   merged intervals and the critical path are checked against an independent computation
//!   written here (intervals merged by sorting, the tracker's own `Summary` for durations and
//!   counts, the longest chain through `inputs` by memoised recursion), the Chrome trace is
//!   parsed and checked per vertex, and the JSON's keys and their order are checked.
//! - Golden files of the text and Markdown reports of a few recordings, in
//!   `tests/report-golden/<daemon>/<name>.{txt,md}`; re-bless after an intended change with
//!
//!   ```text
//!   UPDATE_GOLDEN=1 cargo test -p buildkit-progressui --test report
//!   ```
//!
//!   and read the diff (the rule is `workspace_tests::golden`'s: nothing is written under
//!   `CI=true`).
//! - Hand-made builds, as `StatusResponse` records through the decoder and the tracker:
//!   parallel stages, a shared base, a restarted vertex, a failed and a canceled branch, an
//!   input that never appears, cycles, a huge chain, bounded log tails.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use buildkit_events::{Elapsed, Event, Outcome, Time, VertexCompleted, VertexStarted};
use buildkit_progressui::report::{self, Format, Report, ReportBuilder};
use buildkit_proto::{StatusResponse, Timestamp, Vertex, VertexLog};
use docker_build::decode::BuildEvent;
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use workspace_tests::body::{decode_body, push_trace_line};
use workspace_tests::corpus::{self, Recording};
use workspace_tests::events::summary;
use workspace_tests::golden::assert_golden;

/// The report of a decoded build, as `bktrace report` makes it.
fn report_of(events: &[BuildEvent]) -> Report {
    let mut builder = ReportBuilder::new();
    for event in events {
        builder.apply(event);
    }
    builder.finish()
}

fn written(report: &Report, format: Format) -> String {
    let mut out = Vec::new();
    report::write(report, format, &mut out).expect("writing to a Vec");
    String::from_utf8(out).expect("the report is UTF-8")
}

/// Per vertex, the `(start, end)` of each `Completed`, in nanoseconds.
fn completed_runs(events: &[BuildEvent]) -> HashMap<String, Vec<(i128, i128)>> {
    let mut runs: HashMap<String, Vec<(i128, i128)>> = HashMap::new();
    for event in events {
        if let BuildEvent::Vertex(Event::Completed(c)) = event {
            runs.entry(c.digest.to_string())
                .or_default()
                .push((c.started.0, c.completed.0));
        }
    }
    runs
}

/// Per vertex, its run intervals from the trace records themselves, the way BuildKit's
/// printer keeps them (keyed by start; a completed snapshot sets its start's end, an open one
/// only adds a start not seen), plus the tracker's one rule of its own: a completion closes
/// the starts before it left open (Docker 20.10's double start). A start still open at the
/// end runs to `end` (the tracker's interruption). `None` for a classic-builder recording
/// (no trace records).
fn record_runs(
    rec: &Recording,
    end: &HashMap<String, i128>,
) -> Option<HashMap<String, Vec<(i128, i128)>>> {
    let records = rec.statuses();
    if records.is_empty() {
        return None;
    }
    let nanos = |t: &Option<Timestamp>| t.as_ref().map(|t| t.unix_nanos());
    let mut raw: HashMap<String, Vec<(i128, Option<i128>)>> = HashMap::new();
    for record in &records {
        for v in &record.vertexes {
            let Some(start) = nanos(&v.started) else {
                continue;
            };
            let stop = nanos(&v.completed);
            let runs = raw.entry(v.digest.clone()).or_default();
            match runs.iter_mut().find(|(s, _)| *s == start) {
                Some(run) if stop.is_some() => run.1 = stop,
                Some(_) => {}
                None => runs.push((start, stop)),
            }
            if let Some(stop) = stop {
                for run in runs.iter_mut().filter(|r| r.0 < start && r.1.is_none()) {
                    run.1 = Some(stop.max(run.0));
                }
            }
        }
    }
    Some(
        raw.into_iter()
            .filter_map(|(digest, runs)| {
                let last = *end.get(&digest)?;
                let closed = runs
                    .into_iter()
                    .map(|(a, b)| (a, b.unwrap_or(last)))
                    .collect();
                Some((digest, merge_sorted(closed)))
            })
            .collect(),
    )
}

/// Intervals merged by sorting: one joins the previous when it starts at or before its end.
fn merge_sorted(mut runs: Vec<(i128, i128)>) -> Vec<(i128, i128)> {
    runs.sort();
    let mut out: Vec<(i128, i128)> = Vec::new();
    for (a, b) in runs {
        let b = b.max(a);
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The weight of the heaviest chain ending at `v` through the inputs that started
/// (memoised recursion: the corpus graphs are acyclic).
fn heaviest(
    v: &str,
    weights: &HashMap<String, u128>,
    inputs: &HashMap<String, Vec<String>>,
    memo: &mut HashMap<String, u128>,
) -> u128 {
    if let Some(&w) = memo.get(v) {
        return w;
    }
    let best = inputs[v]
        .iter()
        .filter(|u| weights.contains_key(u.as_str()))
        .map(|u| heaviest(u, weights, inputs, memo))
        .max()
        .unwrap_or(0);
    let w = weights[v] + best;
    memo.insert(v.to_string(), w);
    w
}

/// Seconds as the report writes them, for comparing with nanoseconds.
fn close(actual: &Value, nanos: i128, what: &str) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {actual}"));
    let expected = nanos as f64 / 1e9;
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: {actual} != {expected}"
    );
}

/// The keys of a JSON object in the order of the text.
fn keys_in_order(json: &str) -> Vec<String> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                keys.push(key);
            }
            Ok(keys)
        }
    }
    serde_json::Deserializer::from_str(json)
        .deserialize_map(Keys)
        .unwrap_or_else(|e| panic!("{e}: {json}"))
}

const TOP_KEYS: [&str; 13] = [
    "version",
    "wall_time_s",
    "steps",
    "cache_ratio",
    "warnings",
    "log_bytes",
    "slowest",
    "stages",
    "critical_path",
    "critical_path_s",
    "failed",
    "timeline",
    "build_error",
];

/// Checks one recording's report against the independent computation.
fn check_recording(rec: &Recording) {
    let id = rec.id();
    let events = decode_body(&rec.bytes(), 64 * 1024);
    let tracker = &summary(&events).summary;
    let report = report_of(&events);

    // Totals, from the tracker's summary.
    assert_eq!(report.wall_time, tracker.wall_time, "{id}");
    let c = &report.steps;
    let t = &tracker.counts;
    assert_eq!(
        (
            c.total,
            c.done,
            c.cached,
            c.failed,
            c.canceled,
            c.interrupted,
            c.pending
        ),
        (
            t.total(),
            t.done,
            t.cached,
            t.failed,
            t.canceled,
            t.interrupted,
            tracker.pending
        ),
        "{id}"
    );
    assert_eq!(
        report.failed.as_ref().map(|f| &*f.digest),
        tracker.failed.as_ref().map(|f| &*f.digest),
        "{id}"
    );
    let warnings = events
        .iter()
        .filter(|e| matches!(e, BuildEvent::Vertex(Event::Warning(_))))
        .count();
    assert_eq!(report.warnings, warnings as u64, "{id}");

    // Every started vertex, in first-start order, with the tracker's duration, and its
    // intervals as sorting and merging its runs gives them.
    let ends: HashMap<String, i128> = tracker
        .steps
        .iter()
        .map(|s| (s.digest.to_string(), s.last_completed.0))
        .collect();
    let runs: HashMap<String, Vec<(i128, i128)>> = match record_runs(rec, &ends) {
        Some(runs) => runs,
        None => completed_runs(&events)
            .into_iter()
            .map(|(digest, runs)| (digest, merge_sorted(runs)))
            .collect(),
    };
    let order: Vec<&str> = tracker.steps.iter().map(|s| &*s.digest).collect();
    let timeline: Vec<&str> = report.timeline.iter().map(|s| &*s.digest).collect();
    assert_eq!(timeline, order, "{id}");
    let origin = tracker.first_started.map_or(0, |t| t.0);
    for (step, entry) in tracker.steps.iter().zip(&report.timeline) {
        assert_eq!(entry.duration, step.duration, "{id} {}", step.name);
        let merged = runs[&*step.digest].clone();
        let total: i128 = merged.iter().map(|(a, b)| b - a).sum();
        assert_eq!(
            total as u128, step.duration.0,
            "{id} {}: the intervals add up to the duration",
            step.name
        );
        let intervals: Vec<(i128, i128)> = entry
            .intervals
            .iter()
            .map(|(a, b)| (a.0 as i128 + origin, b.0 as i128 + origin))
            .collect();
        assert_eq!(intervals, merged, "{id} {}", step.name);
    }

    // The critical path: as heavy as the heaviest chain, and a chain.
    let weights: HashMap<String, u128> = tracker
        .steps
        .iter()
        .map(|s| (s.digest.to_string(), s.duration.0))
        .collect();
    let inputs: HashMap<String, Vec<String>> = tracker
        .steps
        .iter()
        .map(|s| (s.digest.to_string(), s.inputs.clone()))
        .collect();
    let mut memo = HashMap::new();
    let expected = order
        .iter()
        .map(|v| heaviest(v, &weights, &inputs, &mut memo))
        .max()
        .unwrap_or(0);
    assert_eq!(report.critical_path_time.0, expected, "{id}");
    let path: Vec<&str> = report.critical_path.iter().map(|p| &*p.digest).collect();
    let sum: u128 = path.iter().map(|d| weights[*d]).sum();
    assert_eq!(sum, expected, "{id}: {path:?}");
    for pair in path.windows(2) {
        assert!(
            inputs[pair[1]].iter().any(|i| i == pair[0]),
            "{id}: {} is not an input of {}",
            pair[0],
            pair[1]
        );
    }
    for entry in &report.timeline {
        assert_eq!(entry.critical, path.contains(&&*entry.digest), "{id}");
    }
    for p in &report.critical_path {
        let share = p.duration.as_secs_f64() / report.wall_time.as_secs_f64();
        assert!((p.share - share).abs() < 1e-12, "{id}");
    }

    // The JSON: the schema's keys, in order.
    let json = written(&report, Format::Json);
    assert_eq!(json.lines().count(), 1, "{id}: one line");
    let top = keys_in_order(&json);
    assert_eq!(top, TOP_KEYS, "{id}");
    let value: Value = serde_json::from_str(&json).unwrap();
    let steps_text = &json[json.find("\"steps\":").unwrap() + 8..];
    assert_eq!(
        keys_in_order(&steps_text[..=steps_text.find('}').unwrap()]),
        [
            "total",
            "done",
            "cached",
            "failed",
            "canceled",
            "interrupted",
            "pending"
        ]
    );
    close(&value["wall_time_s"], tracker.wall_time.0 as i128, &id);
    close(&value["critical_path_s"], expected as i128, &id);
    let timeline = value["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), tracker.steps.len(), "{id}");
    for (step, entry) in tracker.steps.iter().zip(timeline) {
        let mut keys: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "critical",
                "digest",
                "duration_s",
                "end_s",
                "error",
                "inputs",
                "internal",
                "intervals",
                "last_lines",
                "name",
                "outcome",
                "stage",
                "start_s"
            ],
            "{id}"
        );
        assert_eq!(entry["outcome"], step.outcome.label(), "{id}");
        close(&entry["duration_s"], step.duration.0 as i128, &id);
        close(
            &entry["start_s"],
            step.first_started.0 - origin,
            &format!("{id} {}", step.name),
        );
        assert_eq!(entry["internal"], step.is_internal(), "{id} {}", step.name);
        assert!(entry["last_lines"].as_array().unwrap().len() <= report::TAIL_LINES);
    }
    for p in value["critical_path"].as_array().unwrap() {
        let keys = keys_in_order(&p.to_string());
        assert_eq!(keys.len(), 4, "{p}");
        for key in ["digest", "name", "duration_s", "share"] {
            assert!(!p[key].is_null(), "{p}");
        }
    }

    // The Chrome trace: one complete event per merged interval of each vertex.
    let trace: Value = serde_json::from_str(&written(&report, Format::ChromeTrace))
        .unwrap_or_else(|e| panic!("{id}: the trace is JSON: {e}"));
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    let mut per_vertex: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut rows: HashMap<u64, String> = HashMap::new();
    for e in events {
        match e["ph"].as_str() {
            Some("X") => per_vertex
                .entry(e["args"]["digest"].as_str().unwrap().to_string())
                .or_default()
                .push((e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap())),
            Some("M") if e["name"] == "thread_name" => {
                rows.insert(
                    e["tid"].as_u64().unwrap(),
                    e["args"]["name"].as_str().unwrap().to_string(),
                );
            }
            Some("M") => {}
            other => panic!("{id}: unexpected phase {other:?}"),
        }
        if e["ph"] == "X" {
            let tid = e["tid"].as_u64().unwrap();
            assert!(rows.contains_key(&tid), "{id}: row {tid} is named first");
            let cached = e["args"]["cached"] == true;
            assert_eq!(cached, e["cat"] == "cached", "{id}");
        }
    }
    assert_eq!(per_vertex.len(), tracker.steps.len(), "{id}");
    for step in &tracker.steps {
        let merged = &runs[&*step.digest];
        let events = &per_vertex[&*step.digest];
        assert_eq!(events.len(), merged.len(), "{id} {}", step.name);
        for ((ts, dur), (a, b)) in events.iter().zip(merged) {
            let (ets, edur) = ((a - origin) as f64 / 1000.0, (b - a) as f64 / 1000.0);
            assert!(
                (ts - ets).abs() < 1e-3 && (dur - edur).abs() < 1e-3,
                "{id} {}: ({ts}, {dur}) != ({ets}, {edur})",
                step.name
            );
        }
    }

    // Text and Markdown are written for every recording (their content: the golden files).
    assert!(
        written(&report, Format::Text).starts_with("Build: "),
        "{id}"
    );
    assert!(
        written(&report, Format::Markdown).starts_with("## Build report\n"),
        "{id}"
    );
}

workspace_tests::test_each_recording!(check_recording);

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/report-golden")
}

#[test]
fn text_and_markdown_golden_files() {
    for (daemon, name) in [
        ("docker-28.5", "multistage-parallel"),
        ("docker-28.5", "run-fails"),
        ("docker-26.1", "warnings"),
        ("docker-20.10", "client-cancel"),
        ("docker-28.5", "syntax-error"),
    ] {
        let rec = corpus::get(daemon, name);
        let report = report_of(&decode_body(&rec.bytes(), 64 * 1024));
        let dir = golden_dir().join(daemon);
        assert_golden(
            dir.join(format!("{name}.txt")),
            &written(&report, Format::Text),
        );
        assert_golden(
            dir.join(format!("{name}.md")),
            &written(&report, Format::Markdown),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Hand-made builds.

fn ts(ms: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

fn s(ms: i64) -> Elapsed {
    Elapsed(ms as u128 * 1_000_000)
}

/// A vertex snapshot: `started`/`completed` in milliseconds.
fn vx(
    digest: &str,
    name: &str,
    inputs: &[&str],
    started: Option<i64>,
    done: Option<i64>,
) -> Vertex {
    Vertex {
        digest: digest.into(),
        name: name.into(),
        inputs: inputs.iter().map(|i| i.to_string()).collect(),
        started: started.and_then(ts),
        completed: done.and_then(ts),
        ..Default::default()
    }
}

/// The events of a body made of `records`, through the decoder and the tracker.
fn build(records: &[StatusResponse]) -> Vec<BuildEvent> {
    let mut body = Vec::new();
    for record in records {
        push_trace_line(&mut body, record);
    }
    decode_body(&body, usize::MAX)
}

fn record(vertexes: Vec<Vertex>) -> StatusResponse {
    StatusResponse {
        vertexes,
        ..Default::default()
    }
}

fn path_names(report: &Report) -> Vec<&str> {
    report
        .critical_path
        .iter()
        .map(|p| p.name.as_str())
        .collect()
}

fn entry<'a>(report: &'a Report, digest: &str) -> &'a report::TimelineStep {
    report
        .timeline
        .iter()
        .find(|s| &*s.digest == digest)
        .unwrap_or_else(|| panic!("no {digest} in {:?}", report.timeline))
}

/// Two stages from one shared base run in parallel; the longer one is on the path, and the
/// shared base is on it once.
#[test]
fn parallel_stages_from_a_shared_base() {
    let base = vx("b", "[base 1/1] FROM busybox", &[], Some(0), Some(1000));
    let x = vx("x", "[x 1/1] RUN slow", &["b"], Some(1000), Some(4000));
    let y = vx("y", "[y 1/1] RUN quick", &["b"], Some(1000), Some(2000));
    let fin = vx(
        "f",
        "[final 1/1] COPY --from=x",
        &["x", "y"],
        Some(4000),
        Some(5000),
    );
    let events = build(&[
        record(vec![vx("b", &base.name, &[], Some(0), None)]),
        record(vec![base.clone()]),
        record(vec![
            vx("x", &x.name, &["b"], Some(1000), None),
            vx("y", &y.name, &["b"], Some(1000), None),
        ]),
        record(vec![y, x, fin]),
    ]);
    let report = report_of(&events);
    assert_eq!(report.wall_time, s(5000));
    assert_eq!(
        path_names(&report),
        [
            "[base 1/1] FROM busybox",
            "[x 1/1] RUN slow",
            "[final 1/1] COPY --from=x"
        ]
    );
    assert_eq!(report.critical_path_time, s(5000));
    assert!((report.critical_path[1].share - 0.6).abs() < 1e-12);
    assert!(!entry(&report, "y").critical);
    let stages: Vec<(&str, usize, Elapsed, Elapsed, Elapsed)> = report
        .stages
        .iter()
        .map(|s| (s.stage.as_str(), s.steps, s.duration, s.start, s.end))
        .collect();
    assert_eq!(
        stages,
        [
            ("base", 1, s(1000), s(0), s(1000)),
            ("x", 1, s(3000), s(1000), s(4000)),
            ("y", 1, s(1000), s(1000), s(2000)),
            ("final", 1, s(1000), s(4000), s(5000)),
        ]
    );
    let slowest: Vec<&str> = report.slowest.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(slowest[0], "[x 1/1] RUN slow");
    // Ties keep the order of first start.
    assert_eq!(
        &slowest[1..],
        [
            "[base 1/1] FROM busybox",
            "[y 1/1] RUN quick",
            "[final 1/1] COPY --from=x"
        ]
    );
    assert_eq!(report.steps.done, 4);
    assert_eq!(report.cache_ratio, 0.0);
}

/// A vertex that BuildKit runs again: two intervals, two trace events, both counted.
#[test]
fn a_restarted_vertex_has_two_intervals() {
    let events = build(&[
        record(vec![vx(
            "r",
            "[internal] load remote build context",
            &[],
            Some(0),
            Some(1000),
        )]),
        record(vec![vx(
            "r",
            "[internal] load remote build context",
            &[],
            Some(3000),
            None,
        )]),
        record(vec![vx(
            "r",
            "[internal] load remote build context",
            &[],
            Some(3000),
            Some(3500),
        )]),
        record(vec![vx("n", "[1/1] RUN x", &["r"], Some(3500), Some(4000))]),
    ]);
    let report = report_of(&events);
    let r = entry(&report, "r");
    assert_eq!(r.intervals, [(s(0), s(1000)), (s(3000), s(3500))]);
    assert_eq!(r.duration, s(1500));
    assert!(r.internal && r.stage.is_none());
    assert_eq!(report.critical_path_time, s(2000));
    assert_eq!(entry(&report, "n").stage.as_deref(), Some(""));
    assert_eq!(report.stages[0].stage, "");
    let trace: Value = serde_json::from_str(&written(&report, Format::ChromeTrace)).unwrap();
    let runs: Vec<(f64, f64)> = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X" && e["args"]["digest"] == "r")
        .map(|e| (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap()))
        .collect();
    assert_eq!(runs, [(0.0, 1_000_000.0), (3_000_000.0, 500_000.0)]);
}

/// A failed branch and the branch BuildKit canceled because of it; the steps after them stay
/// pending.
#[test]
fn a_failed_and_a_canceled_branch() {
    let mut fail = vx("f", "[a 2/2] RUN exit 1", &["b"], Some(1000), Some(3000));
    fail.error = "process \"/bin/sh -c exit 1\" did not complete successfully: exit code: 1".into();
    let mut cancel = vx("c", "[b 2/2] RUN sleep 9", &["b"], Some(1000), Some(3000));
    cancel.error = "context canceled".into();
    let mut logs = Vec::new();
    for i in 0..30 {
        logs.push(VertexLog {
            vertex: "f".into(),
            timestamp: ts(1000 + i),
            stream: 1,
            msg: format!("line {i} | `tick`\n").into(),
        });
    }
    let events = build(&[
        record(vec![
            vx("b", "[a 1/2] FROM busybox", &[], Some(0), Some(1000)),
            vx(
                "after",
                "[final 1/1] COPY --from=a",
                &["f", "c"],
                None,
                None,
            ),
            vx("f", &fail.name, &["b"], Some(1000), None),
            vx("c", &cancel.name, &["b"], Some(1000), None),
        ]),
        StatusResponse {
            logs,
            ..Default::default()
        },
        record(vec![fail, cancel]),
    ]);
    let report = report_of(&events);
    let c = &report.steps;
    assert_eq!(
        (c.total, c.done, c.failed, c.canceled, c.pending),
        (3, 1, 1, 1, 1)
    );
    let failed = report.failed.as_ref().expect("a step failed");
    assert_eq!(failed.name, "[a 2/2] RUN exit 1");
    assert!(failed.error.ends_with("exit code: 1"));
    assert_eq!(failed.last_lines.len(), report::TAIL_LINES);
    assert_eq!(failed.last_lines[0], "line 10 | `tick`");
    assert_eq!(failed.last_lines[19], "line 29 | `tick`");
    assert_eq!(entry(&report, "c").outcome, Outcome::Canceled);
    assert_eq!(entry(&report, "c").error, None);
    assert!(entry(&report, "f").error.is_some());
    assert_eq!(
        report.log_bytes,
        (0..30)
            .map(|i| format!("line {i} | `tick`\n").len() as u64)
            .sum::<u64>()
    );
    // Both branches weigh 2 s: the tie goes to the one that started first (`f` came first).
    assert_eq!(
        path_names(&report),
        ["[a 1/2] FROM busybox", "[a 2/2] RUN exit 1"]
    );

    // Markdown: the table cell escapes `|` and backticks; the last lines are fenced.
    let md = written(&report, Format::Markdown);
    assert!(
        md.contains("| 2 | \\[a 2/2\\] RUN exit 1 | a | failed | 2.00s | 1.00s | ● |"),
        "{md}"
    );
    assert!(md.contains("\n```text\nline 10 | `tick`\n"), "{md}");
    assert!(md.contains("line 29 | `tick`\n```\n"), "{md}");
    let text = written(&report, Format::Text);
    assert!(text.contains("\nFailed: [a 2/2] RUN exit 1\n"), "{text}");
    assert!(text.contains("  > line 29 | `tick`\n"), "{text}");
    let json: Value = serde_json::from_str(&written(&report, Format::Json)).unwrap();
    assert_eq!(json["steps"]["pending"], 1);
    assert_eq!(json["failed"]["last_lines"].as_array().unwrap().len(), 20);
    assert_eq!(json["timeline"][2]["outcome"], "canceled");
}

/// An input no record describes counts as absent.
#[test]
fn an_input_that_never_appears_weighs_nothing() {
    let events = build(&[record(vec![
        vx(
            "a",
            "[1/2] FROM busybox",
            &["sha256:ghost"],
            Some(0),
            Some(200),
        ),
        vx(
            "b",
            "[2/2] RUN x",
            &["a", "sha256:ghost", "a"],
            Some(200),
            Some(700),
        ),
    ])]);
    let report = report_of(&events);
    assert_eq!(path_names(&report), ["[1/2] FROM busybox", "[2/2] RUN x"]);
    assert_eq!(report.critical_path_time, s(700));
    assert_eq!(entry(&report, "b").inputs, ["a", "sha256:ghost", "a"]);
}

fn started(digest: &str, inputs: &[&str], at: i64) -> Event {
    Event::Started(VertexStarted {
        digest: digest.into(),
        name: format!("step {digest}"),
        inputs: inputs.iter().map(|i| i.to_string()).collect(),
        started: Time(i128::from(at) * 1_000_000),
        interval: 0,
    })
}

fn completed(digest: &str, start: i64, end: i64) -> Event {
    Event::Completed(VertexCompleted {
        digest: digest.into(),
        name: format!("step {digest}"),
        outcome: Outcome::Done,
        started: Time(i128::from(start) * 1_000_000),
        completed: Time(i128::from(end) * 1_000_000),
        duration: s(end - start),
        interval: 0,
    })
}

/// Hostile graphs: cycles and self-loops end; the path is still a chain of real inputs.
#[test]
fn cycles_give_a_finite_path() {
    let mut builder = ReportBuilder::new();
    for e in [
        started("a", &["c"], 0),
        completed("a", 0, 100),
        started("b", &["a", "b"], 100),
        completed("b", 100, 300),
        started("c", &["b"], 300),
        completed("c", 300, 600),
    ] {
        builder.event(&e);
    }
    let report = builder.finish();
    let path: Vec<&str> = report.critical_path.iter().map(|p| &*p.digest).collect();
    // The search from `a` ignores the edge that closes the cycle (b's input a, and b's
    // input b itself): b → c → a.
    assert_eq!(path, ["b", "c", "a"]);
    assert_eq!(report.critical_path_time, s(600));
    // The same through the tracker, from records.
    let events = build(&[record(vec![
        vx("a", "A", &["b"], Some(0), Some(10)),
        vx("b", "B", &["a"], Some(10), Some(20)),
    ])]);
    let report = report_of(&events);
    assert_eq!(report.critical_path.len(), 2);
    assert_eq!(report.critical_path_time, s(20));
}

/// A chain of 200 000 steps: no recursion, linear time; every step is on the path.
#[test]
fn a_huge_chain_is_searched_without_recursion() {
    const N: i64 = 200_000;
    let mut builder = ReportBuilder::new();
    let digests: Vec<String> = (0..N).map(|i| format!("sha256:{i}")).collect();
    for i in 0..N {
        let inputs: Vec<&str> = if i == 0 {
            Vec::new()
        } else {
            vec![digests[(i - 1) as usize].as_str()]
        };
        builder.event(&started(&digests[i as usize], &inputs, i));
        builder.event(&completed(&digests[i as usize], i, i + 1));
    }
    let report = builder.finish();
    assert_eq!(report.critical_path.len(), N as usize);
    assert_eq!(&*report.critical_path[0].digest, "sha256:0");
    assert_eq!(report.critical_path_time, s(N));
    assert_eq!(report.slowest.len(), report::SLOWEST);
}

/// Memory: however much a step prints, it keeps its last lines, each bounded.
#[test]
fn log_tails_are_bounded() {
    let mut records = vec![record(vec![vx("a", "[1/1] RUN yes", &[], Some(0), None)])];
    for i in 0..2_000 {
        records.push(StatusResponse {
            logs: vec![VertexLog {
                vertex: "a".into(),
                timestamp: ts(i),
                stream: 1,
                msg: format!("{}\n", "y".repeat(i as usize % 7 * 1000)).into(),
            }],
            ..Default::default()
        });
    }
    records.push(record(vec![vx(
        "a",
        "[1/1] RUN yes",
        &[],
        Some(0),
        Some(2_000),
    )]));
    let report = report_of(&build(&records));
    let a = entry(&report, "a");
    assert_eq!(a.last_lines.len(), report::TAIL_LINES);
    assert!(
        a.last_lines
            .iter()
            .all(|l| l.len() <= report::TAIL_LINE_BYTES)
    );
    assert!(
        a.last_lines
            .iter()
            .any(|l| l.len() == report::TAIL_LINE_BYTES)
    );
    let expected: u64 = (0..2_000).map(|i| (i % 7 * 1000 + 1) as u64).sum();
    assert_eq!(report.log_bytes, expected);
}

/// A build that broke off (no tracker `finish`): the running step is interrupted at the
/// latest time seen.
#[test]
fn a_step_still_running_counts_as_interrupted() {
    let mut builder = ReportBuilder::new();
    builder.event(&started("a", &[], 0));
    builder.event(&completed("a", 0, 100));
    builder.event(&started("b", &["a"], 100));
    let report = builder.finish();
    assert_eq!(report.steps.interrupted, 1);
    assert_eq!(entry(&report, "b").outcome, Outcome::Interrupted);
    assert_eq!(entry(&report, "b").intervals, [(s(100), s(100))]);
    assert_eq!(report.wall_time, s(100));
    // An empty build.
    let empty = ReportBuilder::new().finish();
    assert_eq!(empty.wall_time, Elapsed(0));
    assert!(empty.critical_path.is_empty() && empty.timeline.is_empty());
    for format in [
        Format::Text,
        Format::Markdown,
        Format::Json,
        Format::ChromeTrace,
    ] {
        assert!(!written(&empty, format).is_empty());
    }
}
