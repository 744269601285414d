//! Tracker behaviour: semantics tests and property tests.

use std::collections::BTreeMap;

use buildkit_proto::pb::{Position, Range, SourceInfo};
use buildkit_proto::{
    Message as _, StatusResponse, Timestamp, Vertex, VertexLog, VertexStatus, VertexWarning,
};
use bytes::Bytes;
use proptest::prelude::*;
use workspace_tests::invariants::{self, EventView, View, check_lossless_logs};

use crate::*;

const A: &str = "sha256:aaaa";
const B: &str = "sha256:bbbb";

fn ts(ns: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    })
}

fn vtx(digest: &str, started: Option<i64>, completed: Option<i64>) -> Vertex {
    Vertex {
        digest: digest.into(),
        name: format!("step {digest}"),
        started: started.and_then(ts),
        completed: completed.and_then(ts),
        ..Default::default()
    }
}

fn log(digest: &str, stream: i64, at: i64, msg: &[u8]) -> VertexLog {
    VertexLog {
        vertex: digest.into(),
        timestamp: ts(at),
        stream,
        msg: Bytes::copy_from_slice(msg),
    }
}

fn rec(vertexes: Vec<Vertex>) -> StatusResponse {
    StatusResponse {
        vertexes,
        ..Default::default()
    }
}

fn logs(logs: Vec<VertexLog>) -> StatusResponse {
    StatusResponse {
        logs,
        ..Default::default()
    }
}

fn drain(t: &mut Tracker) -> Vec<Event> {
    std::iter::from_fn(|| t.poll_event()).collect()
}

/// A compact view of vertex events: `S<interval>@<start>` / `C<interval>@<end>:<outcome>`.
fn lifecycle(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Started(s) => Some(format!("{} S{}@{}", s.digest, s.interval, s.started.0)),
            Event::Completed(c) => Some(format!(
                "{} C{}@{}:{}",
                c.digest, c.interval, c.completed.0, c.outcome
            )),
            _ => None,
        })
        .collect()
}

/// The workspace's shared checks read events through `EventView`. They are written for
/// `buildkit_events::Event` as other crates see it; inside this crate's unit tests `Event` is a
/// type of its own, so it gets the same view here.
impl EventView for Event {
    fn view(&self) -> View<'_> {
        match self {
            Event::Started(s) => View::Started {
                digest: &s.digest,
                interval: s.interval,
                started: s.started.0,
            },
            Event::Completed(c) => View::Completed {
                digest: &c.digest,
                interval: c.interval,
                started: c.started.0,
                completed: c.completed.0,
            },
            Event::Log(l) => View::Log {
                digest: &l.digest,
                stream: l.stream.number(),
                bytes: &l.bytes,
                newline: l.end == LineEnd::Newline,
            },
            _ => View::Other,
        }
    }
}

/// Checks the per-digest pairing invariant; returns the digests left running.
fn check_pairing(events: &[Event]) -> Result<Vec<String>, String> {
    invariants::check_pairing(events).map(|p| p.running)
}

/// Per (digest, stream): the pieces as (bytes, end, clipped, timestamp).
type Pieces = BTreeMap<(String, Stream), Vec<(Vec<u8>, LineEnd, bool, i128)>>;

fn pieces(events: &[Event]) -> Pieces {
    let mut out = Pieces::new();
    for e in events {
        if let Event::Log(l) = e {
            out.entry((l.digest.to_string(), l.stream))
                .or_default()
                .push((l.bytes.to_vec(), l.end, l.clipped_notice, l.timestamp.0));
        }
    }
    out
}

#[test]
fn pending_snapshot_gives_no_event_and_never_resets_a_started_vertex() {
    let mut t = Tracker::new();
    let mut pending = vtx(A, None, None);
    pending.inputs = vec![B.into()];
    t.handle_response(rec(vec![pending.clone()]));
    assert!(drain(&mut t).is_empty());
    let info = t.vertex(A).unwrap();
    assert_eq!(info.state, VertexState::Pending);
    assert_eq!(info.inputs, [B]);

    t.handle_response(rec(vec![vtx(A, Some(10), None)]));
    t.handle_response(rec(vec![Vertex {
        name: "renamed".into(),
        ..pending
    }]));
    let events = drain(&mut t);
    assert_eq!(lifecycle(&events), ["sha256:aaaa S0@10"]);
    let info = t.vertex(A).unwrap();
    assert_eq!(info.state, VertexState::Running);
    assert_eq!(info.name, "step sha256:aaaa");
    assert_eq!(t.running().count(), 1);
}

#[test]
fn vertex_first_seen_completed_starts_and_completes() {
    let mut t = Tracker::new();
    let mut cached = vtx(A, Some(5), Some(7));
    cached.cached = true;
    t.handle_response(rec(vec![cached]));
    let events = drain(&mut t);
    assert_eq!(
        lifecycle(&events),
        ["sha256:aaaa S0@5", "sha256:aaaa C0@7:CACHED"]
    );
    let Event::Started(s) = &events[0] else {
        panic!()
    };
    assert_eq!(s.name, "step sha256:aaaa");
    assert_eq!(
        t.vertex(A).unwrap().state,
        VertexState::Completed(Outcome::Cached)
    );
}

#[test]
fn restart_after_completion_is_a_new_interval() {
    let mut t = Tracker::new();
    t.handle_response(rec(vec![vtx(A, Some(0), None)]));
    t.handle_response(rec(vec![vtx(A, Some(0), Some(100))]));
    // Both snapshots in one record, as BuildKit sends `[1/N] FROM` sometimes.
    t.handle_response(rec(vec![
        vtx(A, Some(110), Some(130)),
        vtx(A, Some(140), None),
    ]));
    t.handle_response(rec(vec![vtx(A, Some(140), Some(150))]));
    let events = drain(&mut t);
    assert_eq!(
        lifecycle(&events),
        [
            "sha256:aaaa S0@0",
            "sha256:aaaa C0@100:DONE",
            "sha256:aaaa S1@110",
            "sha256:aaaa C1@130:DONE",
            "sha256:aaaa S2@140",
            "sha256:aaaa C2@150:DONE",
        ]
    );
    let durations: Vec<u128> = events
        .iter()
        .filter_map(|e| match e {
            Event::Completed(c) => Some(c.duration.0),
            _ => None,
        })
        .collect();
    assert_eq!(durations, [100, 120, 130]);
    assert_eq!(t.vertex(A).unwrap().intervals, 3);
    assert_eq!(t.vertex(A).unwrap().duration(), Elapsed(130));
    // The step-level view: one entry, its final outcome, flagged as repeated.
    let summary = t.finish();
    assert_eq!(summary.steps.len(), 1);
    let step = &summary.steps[0];
    assert!(step.repeated());
    assert_eq!((step.intervals, step.duration), (3, Elapsed(130)));
    assert_eq!(
        (step.first_started, step.last_completed),
        (Time(0), Time(150))
    );
}

#[test]
fn steps_carry_inputs_final_outcome_and_kind() {
    let mut t = Tracker::new();
    let mut base = vtx(A, Some(0), Some(10));
    base.name = "[internal] load metadata for docker.io/library/busybox:latest".into();
    let mut run = vtx(B, Some(20), Some(30));
    run.name = "[build 2/2] RUN make".into();
    run.inputs = vec![A.into()];
    run.error = "exit code: 1".into();
    t.handle_response(rec(vec![base, run]));
    let summary = t.finish();
    let steps: Vec<(&str, bool, bool, &str)> = summary
        .steps
        .iter()
        .map(|s| (&*s.digest, s.is_internal(), s.repeated(), s.outcome.label()))
        .collect();
    assert_eq!(
        steps,
        [(A, true, false, "done"), (B, false, false, "failed")]
    );
    assert_eq!(summary.steps[1].inputs, [A]);
    assert_eq!(summary.steps[1].parsed_name().stage, Some("build"));
}

#[test]
fn overlapping_intervals_merge_and_an_overlapping_open_one_reopens() {
    let mut t = Tracker::new();
    t.handle_response(rec(vec![vtx(A, Some(0), Some(10))]));
    // Overlaps: joins the first interval, no new run.
    t.handle_response(rec(vec![vtx(A, Some(5), Some(20))]));
    assert_eq!(t.vertex(A).unwrap().duration(), Elapsed(20));
    // Starts exactly at the merged end while open: the merged interval re-opens.
    t.handle_response(rec(vec![vtx(A, Some(20), None)]));
    t.handle_response(rec(vec![vtx(A, Some(20), Some(30))]));
    assert_eq!(
        lifecycle(&drain(&mut t)),
        [
            "sha256:aaaa S0@0",
            "sha256:aaaa C0@10:DONE",
            "sha256:aaaa S1@20",
            "sha256:aaaa C1@30:DONE",
        ]
    );
    assert_eq!(t.vertex(A).unwrap().duration(), Elapsed(30));
}

#[test]
fn stale_snapshot_does_not_reopen_a_completed_vertex() {
    let mut t = Tracker::new();
    t.handle_response(rec(vec![vtx(A, Some(0), None)]));
    let mut failed = vtx(A, Some(0), Some(50));
    failed.error = "exit code: 1".into();
    t.handle_response(rec(vec![failed]));
    // An old snapshot of the same interval, still running, arrives late.
    t.handle_response(rec(vec![vtx(A, Some(0), None)]));
    let events = drain(&mut t);
    assert_eq!(
        lifecycle(&events),
        ["sha256:aaaa S0@0", "sha256:aaaa C0@50:ERROR: exit code: 1"]
    );
    let info = t.vertex(A).unwrap();
    assert_eq!(info.error.as_deref(), Some("exit code: 1"));
    assert_eq!(
        info.state,
        VertexState::Completed(Outcome::Failed("exit code: 1".into()))
    );
    assert_eq!(t.finish().counts.interrupted, 0);
}

#[test]
fn open_interval_swallows_later_open_starts_until_it_closes() {
    let mut t = Tracker::new();
    t.handle_response(rec(vec![vtx(A, Some(0), None)]));
    t.handle_response(rec(vec![vtx(A, Some(40), None)]));
    assert_eq!(lifecycle(&drain(&mut t)), ["sha256:aaaa S0@0"]);
    // Completing the first start uncovers the later start as a run of its own (a completion
    // closes only what began before it).
    t.handle_response(rec(vec![vtx(A, Some(0), Some(30))]));
    assert_eq!(
        lifecycle(&drain(&mut t)),
        ["sha256:aaaa C0@30:DONE", "sha256:aaaa S1@40"]
    );
    // Its completion closes it.
    t.handle_response(rec(vec![vtx(A, Some(40), Some(45))]));
    assert_eq!(lifecycle(&drain(&mut t)), ["sha256:aaaa C1@45:DONE"]);
    assert_eq!(t.finish().counts.interrupted, 0);
}

/// The start of `[internal] load remote build context` in a live capture of the
/// multistage-parallel build on Docker 20.10.24, 2026-12-02T02:36:22Z, in nanoseconds.
const T0: i64 = 1_796_178_982_000_000_000;

/// Docker 20.10's double start, record for record as the daemon sent it: a pending snapshot,
/// `{started: t1}`, then `{started: t2 (> t1), completed: t3}`; t1's own completion never
/// comes. The daemon did complete the vertex.
#[test]
fn docker_20_10_double_start_completes_the_vertex() {
    let (t1, t2, t3) = (T0 + 750_892_830, T0 + 839_298_714, T0 + 839_315_629);
    let snapshot = |started, completed| Vertex {
        name: "[internal] load remote build context".into(),
        ..vtx(A, started, completed)
    };
    let mut t = Tracker::new();
    t.handle_response(rec(vec![snapshot(None, None)]));
    t.handle_response(rec(vec![snapshot(Some(t1), None)]));
    t.handle_response(rec(vec![snapshot(Some(t2), Some(t3))]));
    let events = drain(&mut t);
    assert_eq!(
        lifecycle(&events),
        [
            format!("sha256:aaaa S0@{t1}"),
            format!("sha256:aaaa C0@{t3}:DONE"),
        ]
    );
    let Some(Event::Completed(c)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(
        (c.started, c.duration),
        (Time(t1.into()), Elapsed((t3 - t1) as u128))
    );
    // A re-sent first snapshot is stale: it does not re-open the vertex.
    t.handle_response(rec(vec![snapshot(Some(t1), None)]));
    assert!(drain(&mut t).is_empty());
    let info = t.vertex(A).unwrap();
    assert_eq!(info.state, VertexState::Completed(Outcome::Done));
    let summary = t.finish();
    assert!(drain(&mut t).is_empty(), "nothing left to interrupt");
    assert_eq!((summary.counts.done, summary.counts.interrupted), (1, 0));
    assert_eq!(summary.steps[0].duration, Elapsed((t3 - t1) as u128));
    assert_eq!(summary.steps[0].intervals, 1);
}

/// The same shape within a failing build: the completing snapshot carries the error, so the
/// vertex fails (and is the build's failed step), rather than being left interrupted.
#[test]
fn docker_20_10_double_start_with_an_error_fails_the_vertex() {
    let (t1, t2, t3) = (T0 + 100, T0 + 5_000, T0 + 9_000);
    let snapshot = |started, completed, error: &str| Vertex {
        name: "[1/2] FROM docker.io/library/bbase:latest".into(),
        error: error.into(),
        ..vtx(A, started, completed)
    };
    let mut t = Tracker::new();
    t.handle_response(rec(vec![snapshot(Some(t1), None, "")]));
    t.handle_response(rec(vec![
        snapshot(
            Some(t2),
            Some(t3),
            "failed to copy: context deadline exceeded",
        ),
        vtx(B, Some(t2), Some(t3)),
    ]));
    let events = drain(&mut t);
    assert_eq!(
        lifecycle(&events),
        [
            format!("sha256:aaaa S0@{t1}"),
            // B started at t2, before A's completion at t3.
            format!("sha256:bbbb S0@{t2}"),
            format!("sha256:aaaa C0@{t3}:ERROR: failed to copy: context deadline exceeded"),
            format!("sha256:bbbb C0@{t3}:DONE"),
        ]
    );
    let summary = t.finish();
    assert!(drain(&mut t).is_empty());
    assert_eq!((summary.counts.failed, summary.counts.interrupted), (1, 0));
    let failed = summary.failed.expect("a failed step");
    assert_eq!(&*failed.digest, A);
    assert_eq!(failed.error, "failed to copy: context deadline exceeded");
}

/// A completion closes only the open intervals that began before it: a restart that began
/// after a late, out-of-order closed snapshot keeps running.
#[test]
fn a_completion_closes_only_earlier_open_intervals() {
    let mut t = Tracker::new();
    t.handle_response(rec(vec![vtx(A, Some(0), Some(10))]));
    t.handle_response(rec(vec![vtx(A, Some(20), None)]));
    t.handle_response(rec(vec![vtx(A, Some(12), Some(15))]));
    assert_eq!(t.vertex(A).unwrap().state, VertexState::Running);
    t.handle_response(rec(vec![vtx(A, Some(25), Some(30))]));
    assert_eq!(
        lifecycle(&drain(&mut t)),
        [
            "sha256:aaaa S0@0",
            "sha256:aaaa C0@10:DONE",
            "sha256:aaaa S1@20",
            "sha256:aaaa C1@30:DONE",
        ]
    );
    assert_eq!(t.vertex(A).unwrap().duration(), Elapsed(10 + 3 + 10));
}

#[test]
fn outcomes_follow_the_printer() {
    let cases = [
        ("", false, "DONE"),
        ("", true, "CACHED"),
        (
            "process did not complete successfully: exit code: 3",
            false,
            "ERROR: process did not complete successfully: exit code: 3",
        ),
        ("context canceled", false, "CANCELED"),
        (
            "failed to compute cache key: context canceled",
            true,
            "CANCELED",
        ),
        ("boom", true, "ERROR: boom"),
    ];
    for (error, cached, want) in cases {
        let mut t = Tracker::new();
        let mut v = vtx(A, Some(1), Some(2));
        v.error = error.into();
        v.cached = cached;
        t.handle_response(rec(vec![v]));
        let events = drain(&mut t);
        let Some(Event::Completed(c)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(c.outcome.to_string(), want);
    }
}

#[test]
fn completion_waits_for_the_logs_of_its_record_and_flushes_partial_lines() {
    let mut t = Tracker::new();
    t.handle_response(rec(vec![vtx(A, Some(0), None), vtx(B, Some(0), None)]));
    t.handle_response(logs(vec![log(A, 1, 5, b"par")]));
    t.handle_response(StatusResponse {
        vertexes: vec![vtx(A, Some(0), Some(20)), vtx(B, Some(0), Some(20))],
        logs: vec![log(A, 1, 10, b"tial\nlast words"), log(A, 2, 11, b"err\n")],
        ..Default::default()
    });
    let events = drain(&mut t);
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::Started(s) => format!("start {}", s.digest),
            Event::Completed(c) => format!("complete {}", c.digest),
            Event::Log(l) => format!("log {} {} {:?}", l.digest, l.text(), l.end),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "start sha256:aaaa",
            "start sha256:bbbb",
            "log sha256:aaaa partial Newline",
            "log sha256:aaaa err Newline",
            "log sha256:aaaa last words Unterminated",
            "complete sha256:aaaa",
            // B completes at 20 too, after the logs of 10 and 11 (ties keep the record's
            // order).
            "complete sha256:bbbb",
        ]
    );
    // The joined line keeps the timestamp of the chunk it began in.
    let Event::Log(first) = &events[2] else {
        panic!()
    };
    assert_eq!(first.timestamp, Time(5));
    assert_eq!(first.stream, Stream::Stdout);
}

/// A finished build's `Status` can send many steps in one record. Applied by the times
/// inside, the record gives the events of the live records it merges: `[2/3]`'s lines before
/// `[3/3]` starts.
#[test]
fn a_merged_record_gives_the_events_of_the_records_it_merges() {
    const C: &str = "sha256:cccc";
    let steps = [(A, 100, 200), (B, 300, 400), (C, 500, 600)];
    let mut live = Vec::new();
    for (i, &(d, start, end)) in steps.iter().enumerate() {
        live.push(rec(vec![vtx(d, Some(start), None)]));
        live.push(logs(vec![log(
            d,
            1,
            start + 10,
            format!("step {i}\n").as_bytes(),
        )]));
        live.push(logs(vec![log(d, 2, start + 20, b"half a line")]));
        live.push(StatusResponse {
            statuses: vec![VertexStatus {
                id: format!("status {i}"),
                vertex: d.into(),
                timestamp: ts(start + 30),
                started: ts(start + 30),
                ..Default::default()
            }],
            ..Default::default()
        });
        live.push(rec(vec![vtx(d, Some(start), Some(end))]));
    }
    // The merged record lists the vertices last step first, and the items grouped by kind.
    let mut merged = StatusResponse::default();
    for r in live.iter().rev() {
        merged.vertexes.extend(r.vertexes.iter().cloned());
    }
    for r in &live {
        merged.statuses.extend(r.statuses.iter().cloned());
        merged.logs.extend(r.logs.iter().cloned());
    }
    let run = |records: Vec<StatusResponse>| {
        let mut t = Tracker::new();
        for r in records {
            t.handle_response(r);
        }
        let mut events = drain(&mut t);
        let summary = t.finish();
        events.extend(drain(&mut t));
        (events, summary)
    };
    let (want, want_summary) = run(live);
    let (got, got_summary) = run(vec![merged]);
    let kinds: Vec<String> = got
        .iter()
        .map(|e| match e {
            Event::Started(s) => format!("start {}", &s.digest[7..8]),
            Event::Completed(c) => format!("complete {}", &c.digest[7..8]),
            Event::Log(l) => format!("log {}", l.text()),
            Event::Progress(p) => format!("progress {}", p.id),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "start a",
            "log step 0",
            "progress status 0",
            "log half a line",
            "complete a",
            "start b",
            "log step 1",
            "progress status 1",
            "log half a line",
            "complete b",
            "start c",
            "log step 2",
            "progress status 2",
            "log half a line",
            "complete c",
        ]
    );
    assert_eq!(got, want);
    assert_eq!(got_summary, want_summary);
}

#[test]
fn logs_statuses_and_warnings_of_unknown_vertices_are_kept() {
    let mut t = Tracker::new();
    t.handle_response(StatusResponse {
        logs: vec![log(B, 2, 3, b"hello\n")],
        statuses: vec![VertexStatus {
            id: "x".into(),
            vertex: B.into(),
            timestamp: ts(3),
            ..Default::default()
        }],
        warnings: vec![VertexWarning {
            vertex: B.into(),
            short: Bytes::from_static(b"careful"),
            ..Default::default()
        }],
        ..Default::default()
    });
    let events = drain(&mut t);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.digest() == B));
    assert!(t.vertex(B).is_none(), "no vertex record described it");
}

#[test]
fn progress_is_reported_when_anything_but_the_timestamp_changes() {
    let status = |current, total, at, completed: Option<i64>| VertexStatus {
        id: "sha256:layer".into(),
        vertex: A.into(),
        name: "downloading".into(),
        current,
        total,
        timestamp: ts(at),
        started: ts(1),
        completed: completed.and_then(ts),
    };
    let mut t = Tracker::new();
    for s in [
        status(0, 0, 1, None),
        status(0, 0, 2, None),
        status(10, 100, 3, None),
        status(10, 100, 4, None),
        status(100, 100, 5, None),
        status(100, 100, 6, Some(6)),
        status(100, 100, 7, Some(6)),
    ] {
        t.handle_response(StatusResponse {
            statuses: vec![s],
            ..Default::default()
        });
    }
    let got: Vec<(i64, Option<i64>, i128, Option<Time>)> = drain(&mut t)
        .into_iter()
        .map(|e| match e {
            Event::Progress(p) => {
                assert_eq!(
                    (p.id.as_str(), p.action.as_str()),
                    ("sha256:layer", "downloading")
                );
                assert_eq!(p.started, Some(Time(1)));
                (p.current, p.total, p.timestamp.0, p.completed)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            (0, None, 1, None),
            (10, Some(100), 3, None),
            (100, Some(100), 5, None),
            (100, Some(100), 6, Some(Time(6))),
        ]
    );
}

fn warning(vertex: &str, short: &str, line: i32) -> VertexWarning {
    VertexWarning {
        vertex: vertex.into(),
        level: 1,
        short: Bytes::copy_from_slice(short.as_bytes()),
        detail: vec![Bytes::from_static(b"Stage names should be lowercase")],
        url: "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/".into(),
        info: Some(SourceInfo {
            filename: "Dockerfile".into(),
            data: Bytes::from(vec![b'#'; 100_000]),
            ..Default::default()
        }),
        ranges: vec![Range {
            start: Some(Position { line, character: 0 }),
            end: Some(Position {
                line: line + 1,
                character: 3,
            }),
        }],
    }
}

#[test]
fn warnings_repeated_by_batch_splitting_come_once() {
    let mut t = Tracker::new();
    let w1 = warning(
        A,
        "StageNameCasing: Stage name 'Second' should be lowercase (line 5)",
        5,
    );
    let w2 = warning(
        A,
        "NoEmptyContinuation: Empty continuation line (line 4)",
        4,
    );
    // BuildKit appends the batch's warnings to every chunk of a split batch.
    for chunk in 0..3 {
        t.handle_response(StatusResponse {
            logs: vec![log(A, 1, chunk, b"x")],
            warnings: vec![w1.clone(), w2.clone()],
            ..Default::default()
        });
    }
    // Same content on another vertex is another warning.
    t.handle_response(StatusResponse {
        warnings: vec![warning(
            B,
            "StageNameCasing: Stage name 'Second' should be lowercase (line 5)",
            5,
        )],
        ..Default::default()
    });
    let warnings: Vec<Warning> = drain(&mut t)
        .into_iter()
        .filter_map(|e| match e {
            Event::Warning(w) => Some(w),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 3);
    assert_eq!(warnings[0].short, w1.short);
    assert_eq!(warnings[0].source_file.as_deref(), Some("Dockerfile"));
    assert_eq!(warnings[0].lines, [(5, 6)]);
    assert_eq!(warnings[0].level, 1);
    assert_eq!(warnings[0].detail, w1.detail);
    assert_eq!(warnings[1].lines, [(4, 5)]);
    assert_eq!(&*warnings[2].digest, B);
    // The file's text comes along (the same bytes, not a copy), for the `>>>` snippet.
    let data = &w1.info.as_ref().unwrap().data;
    assert_eq!(warnings[0].source_data, data);
    assert_eq!(warnings[0].source_data.as_ptr(), data.as_ptr());
    // This file is one line of `#`: line 5 is outside it, so there is no snippet.
    assert_eq!(warnings[0].snippet(), None);
}

#[test]
fn long_lines_are_split_and_clip_notices_recognised() {
    let mut t = Tracker::with_config(Config {
        max_line_len: 4,
        ..Config::default()
    });
    t.handle_response(logs(vec![log(
        A,
        1,
        0,
        b"abcdefghij\n[output clipped, log limit 2MiB reached]\nxy\n",
    )]));
    let got: Vec<(String, LineEnd, bool)> = drain(&mut t)
        .into_iter()
        .map(|e| match e {
            Event::Log(l) => (l.text().into_owned(), l.end, l.clipped_notice),
            other => panic!("{other:?}"),
        })
        .collect();
    // The notice is longer than the bound here, so it is split and not a whole line.
    assert_eq!(got[0], ("abcd".into(), LineEnd::Split, false));
    assert_eq!(got[1], ("efgh".into(), LineEnd::Split, false));
    assert_eq!(got[2], ("ij".into(), LineEnd::Newline, false));
    assert!(got[3..got.len() - 1].iter().all(|(_, _, clip)| !clip));
    assert_eq!(got.last().unwrap(), &("xy".into(), LineEnd::Newline, false));

    let mut t = Tracker::new();
    t.handle_response(logs(vec![log(
        A,
        1,
        0,
        b"line 2941 of a long\n[output clipped, log limit 200KiB/s reached]\n",
    )]));
    let clips: Vec<bool> = drain(&mut t)
        .into_iter()
        .map(|e| match e {
            Event::Log(l) => l.clipped_notice,
            _ => false,
        })
        .collect();
    assert_eq!(clips, [false, true]);
}

#[test]
fn invalid_utf8_and_carriage_returns_are_kept() {
    let mut t = Tracker::new();
    t.handle_response(logs(vec![log(
        A,
        1,
        0,
        b"\xff\xfe\r50%\r100%\n\x1b[31mred\x1b[0m\n",
    )]));
    let lines: Vec<Bytes> = drain(&mut t)
        .into_iter()
        .filter_map(|e| match e {
            Event::Log(l) => Some(l.bytes),
            _ => None,
        })
        .collect();
    assert_eq!(lines, [&b"\xff\xfe\r50%\r100%"[..], b"\x1b[31mred\x1b[0m"]);
}

#[test]
fn finish_interrupts_running_vertices_and_summarises() {
    let mut t = Tracker::new();
    t.handle_response(rec(vec![vtx(A, Some(100), None), vtx(B, Some(50), None)]));
    let mut lines = Vec::new();
    for i in 0..15 {
        lines.push(log(B, 1 + i % 2, 200 + i, format!("line {i}\n").as_bytes()));
    }
    lines.push(log(B, 1, 300, b"partial"));
    t.handle_response(logs(lines));
    let mut failed = vtx(B, Some(50), Some(400));
    failed.error = "exit code: 2".into();
    t.handle_response(rec(vec![failed]));
    t.handle_response(logs(vec![log(A, 1, 900, b"tick")]));
    let before = drain(&mut t);
    assert_eq!(check_pairing(&before).unwrap(), [A]);

    let summary = t.finish();
    let after = drain(&mut t);
    assert_eq!(
        after
            .iter()
            .map(|e| match e {
                Event::Log(l) => format!("log {} {:?}", l.text(), l.end),
                Event::Completed(c) => format!("{} {} {}", c.digest, c.outcome, c.completed.0),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>(),
        ["log tick Unterminated", "sha256:aaaa INTERRUPTED 900"]
    );
    let mut all = before;
    all.extend(after);
    assert!(check_pairing(&all).unwrap().is_empty());

    assert_eq!(summary.counts.failed, 1);
    assert_eq!(summary.counts.interrupted, 1);
    assert_eq!(summary.counts.total(), 2);
    assert_eq!(summary.first_started, Some(Time(50)));
    assert_eq!(summary.last_completed, Some(Time(900)));
    assert_eq!(summary.wall_time, Elapsed(850));
    // First-start order: B started at 50, A at 100 (A came first in the record, but a
    // record is applied in the order of its times).
    let order: Vec<(&str, u128)> = summary
        .steps
        .iter()
        .map(|v| (v.digest.as_ref(), v.duration.0))
        .collect();
    assert_eq!(order, [(B, 350), (A, 800)]);
    let failed = summary.failed.as_ref().unwrap();
    assert_eq!(&*failed.digest, B);
    assert_eq!(failed.error, "exit code: 2");
    let tail: Vec<String> = failed
        .last_lines
        .iter()
        .map(|l| l.text().into_owned())
        .collect();
    assert_eq!(tail.len(), 10);
    assert_eq!(tail[0], "line 6");
    assert_eq!(tail[9], "partial");

    // Finishing again changes nothing.
    assert_eq!(t.finish(), summary);
    assert!(t.poll_event().is_none());
}

#[test]
fn undecodable_records_are_reported_and_skipped() {
    let mut t = Tracker::new();
    let good = rec(vec![vtx(A, Some(1), None)]).encode_to_vec();
    t.handle_protobuf(Bytes::from(good)).unwrap();

    // Field 1, length 14, 2 bytes present: a truncated message.
    let err = t
        .handle_protobuf(Bytes::from_static(b"\x0a\x0e\x61\x61"))
        .unwrap_err();
    assert_eq!(err.record(), 1);
    assert!(
        matches!(
            err,
            RecordError::Protobuf {
                record: 1,
                len: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "record 1: invalid StatusResponse protobuf (4 bytes)"
    );
    assert!(std::error::Error::source(&err).is_some());
    let err = t
        .handle_protobuf(Bytes::from_static(b"\xff\xff\xff"))
        .unwrap_err();
    assert_eq!(err.record(), 2);

    // Nothing changed: still one running vertex, and later records work.
    assert_eq!(lifecycle(&drain(&mut t)), ["sha256:aaaa S0@1"]);
    assert_eq!(t.records(), 3);
    t.handle_protobuf(Bytes::from(
        rec(vec![vtx(A, Some(1), Some(2))]).encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(lifecycle(&drain(&mut t)), ["sha256:aaaa C0@2:DONE"]);
}

#[test]
fn decoded_log_payloads_are_slices_of_the_record() {
    let wire = Bytes::from(logs(vec![log(A, 1, 0, b"one\ntwo\n")]).encode_to_vec());
    let mut t = Tracker::new();
    t.handle_protobuf(wire.clone()).unwrap();
    let range = wire.as_ptr_range();
    for e in drain(&mut t) {
        let Event::Log(l) = e else { panic!() };
        assert!(
            range.contains(&l.bytes.as_ptr()),
            "{:?} was copied",
            l.bytes
        );
    }
}

// ---------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------

/// Bytes rich in newlines, carriage returns and invalid UTF-8.
fn log_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => Just(b'a'),
            2 => Just(b'\n'),
            1 => Just(b'\r'),
            1 => Just(0xff_u8),
            1 => any::<u8>(),
        ],
        0..60,
    )
}

/// The original log chunks of one build: (digest index, stream, bytes), in order.
fn chunk_list() -> impl Strategy<Value = Vec<(usize, i64, Vec<u8>)>> {
    prop::collection::vec((0..2usize, 1..3i64, log_bytes()), 0..12)
}

const DIGESTS: [&str; 2] = [A, B];

/// Feeds: a start record, then the records, then a completion record, then finish.
fn run_build(records: Vec<StatusResponse>, max_line_len: usize) -> Vec<Event> {
    let mut t = Tracker::with_config(Config {
        max_line_len,
        ..Config::default()
    });
    t.handle_response(rec(vec![vtx(A, Some(0), None), vtx(B, Some(0), None)]));
    for r in records {
        t.handle_response(r);
    }
    t.handle_response(rec(vec![
        vtx(A, Some(0), Some(1_000)),
        vtx(B, Some(0), Some(1_000)),
    ]));
    t.finish();
    drain(&mut t)
}

/// Cuts `chunks` further at the given fractions and groups the pieces into records of
/// `group` sizes; each piece keeps the timestamp of its original chunk.
fn rechunk(chunks: &[(usize, i64, Vec<u8>)], cuts: &[u8], groups: &[u8]) -> Vec<StatusResponse> {
    let mut pieces = Vec::new();
    let mut cut = cuts.iter().cycle();
    for (i, (d, stream, bytes)) in chunks.iter().enumerate() {
        let mut rest = &bytes[..];
        loop {
            let n = usize::from(*cut.next().unwrap_or(&255)) % (rest.len() + 1);
            if n == 0 || n >= rest.len() {
                pieces.push(log(DIGESTS[*d], *stream, 10 + i as i64, rest));
                break;
            }
            pieces.push(log(DIGESTS[*d], *stream, 10 + i as i64, &rest[..n]));
            rest = &rest[n..];
        }
    }
    let mut records = Vec::new();
    let mut group = groups.iter().cycle();
    let mut iter = pieces.into_iter().peekable();
    while iter.peek().is_some() {
        let n = 1 + usize::from(*group.next().unwrap_or(&0)) % 4;
        records.push(logs(iter.by_ref().take(n).collect()));
    }
    records
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// However the same log bytes are chunked and grouped into records, each (digest,
    /// stream) yields the same pieces (bytes, line end, clip flag, timestamp of the chunk the
    /// piece began in), and they rejoin to exactly the input.
    #[test]
    fn rechunking_logs_changes_nothing(
        chunks in chunk_list(),
        cuts in prop::collection::vec(any::<u8>(), 1..16),
        groups in prop::collection::vec(any::<u8>(), 1..8),
        max_line_len in prop_oneof![1..8usize, Just(1usize << 20)],
    ) {
        let one_per_record: Vec<StatusResponse> = chunks
            .iter()
            .enumerate()
            .map(|(i, (d, s, b))| logs(vec![log(DIGESTS[*d], *s, 10 + i as i64, b)]))
            .collect();
        let base = run_build(one_per_record.clone(), max_line_len);
        let other = run_build(rechunk(&chunks, &cuts, &groups), max_line_len);
        prop_assert_eq!(pieces(&base), pieces(&other));
        prop_assert_eq!(lifecycle(&base), lifecycle(&other));

        check_lossless_logs(&one_per_record, &base).map_err(TestCaseError::fail)?;
        for v in pieces(&base).values() {
            for (bytes, end, _, _) in v {
                prop_assert!(bytes.len() <= max_line_len);
                prop_assert!(*end != LineEnd::Split || bytes.len() == max_line_len);
            }
        }
    }

    /// Splitting a record the way BuildKit splits a big batch (the first part carries the
    /// vertices, statuses and some logs, later parts only logs, and every part repeats the
    /// batch's warnings) yields the same events per vertex and per stream, and each warning
    /// once.
    #[test]
    fn splitting_records_changes_nothing(
        chunks in chunk_list(),
        splits in prop::collection::vec(0..6u8, 1..8),
        max_line_len in prop_oneof![1..8usize, Just(1usize << 20)],
    ) {
        let batch_warnings = vec![warning(A, "StageNameCasing: x (line 5)", 5), warning(B, "y", 1)];
        let status = VertexStatus {
            id: "exporting layers".into(),
            vertex: B.into(),
            timestamp: ts(5),
            started: ts(5),
            ..Default::default()
        };
        let all_logs: Vec<VertexLog> = chunks
            .iter()
            .enumerate()
            .map(|(i, (d, s, b))| log(DIGESTS[*d], *s, 10 + i as i64, b))
            .collect();
        // A batch in which B restarts and A is described again.
        let batch_vertices = vec![vtx(A, Some(0), None), vtx(B, Some(0), Some(2)), vtx(B, Some(3), None)];
        let whole = StatusResponse {
            vertexes: batch_vertices.clone(),
            statuses: vec![status.clone()],
            logs: all_logs.clone(),
            warnings: batch_warnings.clone(),
        };
        let mut parts = Vec::new();
        let mut rest = &all_logs[..];
        let mut split = splits.iter().cycle();
        loop {
            // The first part may hold no logs; every later part holds at least one.
            let min = usize::from(!parts.is_empty());
            let n = (min + usize::from(*split.next().unwrap_or(&0))).min(rest.len());
            let (head, tail) = rest.split_at(n);
            parts.push(StatusResponse { logs: head.to_vec(), warnings: batch_warnings.clone(), ..Default::default() });
            rest = tail;
            if rest.is_empty() {
                break;
            }
        }
        parts[0].vertexes = batch_vertices;
        parts[0].statuses = vec![status];

        let base = run_build(vec![whole], max_line_len);
        let other = run_build(parts, max_line_len);
        for digest in DIGESTS {
            let of = |events: &[Event]| -> Vec<Event> {
                events.iter().filter(|e| e.digest() == digest && !matches!(e, Event::Log(_))).cloned().collect()
            };
            prop_assert_eq!(of(&base), of(&other));
        }
        prop_assert_eq!(pieces(&base), pieces(&other));
        let warnings = other.iter().filter(|e| matches!(e, Event::Warning(_))).count();
        prop_assert_eq!(warnings, 2);
        prop_assert!(check_pairing(&other).map_err(TestCaseError::fail)?.is_empty());
    }

    /// A build's records in time order, one item each (as a live build sends them), give
    /// exactly the events of the same items merged into fewer records (as a finished build's
    /// `Status` sends them), whether a merged record keeps the items in time order or groups
    /// them by vertex. Timelines: up to 4 vertices, each running one or two intervals with
    /// logs inside, interleaved in any way, every item at its own time.
    #[test]
    fn merging_records_in_time_order_changes_no_event(
        vertices in prop::collection::vec(
            prop::collection::vec(prop::collection::vec((1..3i64, log_bytes()), 0..3), 1..3),
            1..5,
        ),
        schedule in prop::collection::vec(0..4usize, 1..40),
        groups in prop::collection::vec(1..6usize, 1..10),
        by_vertex in any::<bool>(),
    ) {
        const DIGESTS: [&str; 4] = [A, B, "sha256:cccc", "sha256:dddd"];
        // Per vertex: its items in order. `None` is a start or a completion; logs are
        // (stream, bytes).
        type Items = std::collections::VecDeque<Option<(i64, Vec<u8>)>>;
        let mut queues: Vec<Items> = vertices
            .iter()
            .map(|intervals| {
                let mut q = std::collections::VecDeque::new();
                for logs in intervals {
                    q.push_back(None);
                    q.extend(logs.iter().cloned().map(Some));
                    q.push_back(None);
                }
                q
            })
            .collect();
        let mut live = Vec::new();
        let mut open: Vec<Option<i64>> = vec![None; queues.len()];
        let mut sel = schedule.iter().cycle();
        let mut time = 0i64;
        loop {
            let ready: Vec<usize> = (0..queues.len()).filter(|&v| !queues[v].is_empty()).collect();
            if ready.is_empty() {
                break;
            }
            let v = ready[sel.next().copied().unwrap_or(0) % ready.len()];
            time += 10;
            let d = DIGESTS[v];
            live.push(match queues[v].pop_front().flatten() {
                Some((stream, bytes)) => logs(vec![log(d, stream, time, &bytes)]),
                None => match open[v].take() {
                    None => {
                        open[v] = Some(time);
                        rec(vec![vtx(d, Some(time), None)])
                    }
                    Some(start) => rec(vec![vtx(d, Some(start), Some(time))]),
                },
            });
        }
        let mut merged = Vec::new();
        let mut rest = &live[..];
        let mut group = groups.iter().cycle();
        while !rest.is_empty() {
            let (head, tail) = rest.split_at((*group.next().unwrap_or(&1)).min(rest.len()));
            let mut r = StatusResponse::default();
            for part in head {
                r.vertexes.extend(part.vertexes.iter().cloned());
                r.logs.extend(part.logs.iter().cloned());
            }
            if by_vertex {
                r.vertexes.sort_by(|a, b| a.digest.cmp(&b.digest));
                r.logs.sort_by(|a, b| a.vertex.cmp(&b.vertex));
            }
            merged.push(r);
            rest = tail;
        }
        let run = |records: &[StatusResponse]| {
            let mut t = Tracker::new();
            for r in records {
                t.handle_response(r.clone());
            }
            let summary = t.finish();
            (drain(&mut t), summary)
        };
        let (want, want_summary) = run(&live);
        let (got, got_summary) = run(&merged);
        prop_assert!(check_pairing(&got).map_err(TestCaseError::fail)?.is_empty());
        prop_assert_eq!(got, want);
        prop_assert_eq!(got_summary, want_summary);
    }

    /// Any sequence of vertex snapshots (in any order, stale or not) keeps the pairing
    /// invariant, and after `finish` nothing is left running.
    #[test]
    fn any_snapshot_sequence_keeps_pairing(
        snapshots in prop::collection::vec(
            prop::collection::vec((0..2usize, prop::option::of(0..50i64), prop::option::of(0..60i64), any::<bool>()), 1..4),
            0..30,
        ),
    ) {
        let mut t = Tracker::new();
        let mut latest_start = [i64::MIN; 2];
        for record in &snapshots {
            let vertexes = record
                .iter()
                .map(|(d, started, completed, cached)| {
                    let mut v = vtx(DIGESTS[*d], *started, started.and(*completed));
                    v.cached = *cached;
                    v
                })
                .collect();
            t.handle_response(rec(vertexes));
            // What the events announced is what the merged intervals say.
            for info in t.vertices() {
                let open = info.inner.intervals.merged().last().is_some_and(|s| s.stop.is_none());
                prop_assert_eq!(info.state == VertexState::Running, open, "{}", info.digest);
            }
            // A completed snapshot that starts at or after every start seen for its vertex
            // completes the vertex (Docker 20.10's double start).
            for (d, started, _, _) in record {
                if let Some(s) = started {
                    latest_start[*d] = latest_start[*d].max(*s);
                }
            }
            for d in 0..2 {
                let last = record.iter().rev().find(|(v, started, ..)| *v == d && started.is_some());
                if let Some((_, Some(s), Some(_), _)) = last {
                    if *s >= latest_start[d] {
                        let info = t.vertex(DIGESTS[d]).expect("described");
                        prop_assert_ne!(&info.state, &VertexState::Running, "{}", info.digest);
                    }
                }
            }
        }
        let mut events = drain(&mut t);
        prop_assert!(check_pairing(&events).is_ok(), "{:?}", check_pairing(&events));
        let summary = t.finish();
        events.extend(drain(&mut t));
        let left = check_pairing(&events).map_err(TestCaseError::fail)?;
        prop_assert!(left.is_empty(), "still running: {:?}", left);
        prop_assert_eq!(t.running().count(), 0);
        prop_assert_eq!(summary.counts.total(), summary.steps.len());
    }

    /// Arbitrary bytes never panic the decoders, and a failure changes nothing.
    #[test]
    fn arbitrary_input_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut t = Tracker::new();
        let _ = t.handle_protobuf(Bytes::from(data.clone()));
        // Twice, so that a record that did decode is followed by more of the same.
        let _ = t.handle_protobuf(Bytes::from(data));
        t.finish();
        let events = drain(&mut t);
        prop_assert!(check_pairing(&events).map_err(TestCaseError::fail)?.is_empty());
        prop_assert_eq!(t.records(), 2);
    }
}

/// The tail a vertex keeps is bounded in lines and bytes, and let go when the vertex
/// succeeds; a failed vertex keeps it for the summary.
#[test]
fn kept_tail_is_bounded_and_dropped_on_success() {
    use buildkit_proto::{StatusResponse, Timestamp, Vertex, VertexLog};
    let ts = |s: i64| {
        Some(Timestamp {
            seconds: s,
            nanos: 0,
        })
    };
    let vertex = |digest: &str, completed, error: &str| Vertex {
        digest: digest.into(),
        name: digest.into(),
        started: ts(1),
        completed,
        error: error.into(),
        ..Default::default()
    };
    let long = vec![b'x'; 10_000];
    let mut msg = Vec::new();
    for _ in 0..12 {
        msg.extend_from_slice(&long);
        msg.push(b'\n');
    }
    let logs = |digest: &str| VertexLog {
        vertex: digest.into(),
        timestamp: ts(2),
        stream: 1,
        msg: msg.clone().into(),
    };
    let mut t = Tracker::new();
    t.handle_response(StatusResponse {
        vertexes: vec![vertex("ok", None, ""), vertex("bad", None, "")],
        logs: vec![logs("ok"), logs("bad")],
        ..Default::default()
    });
    let tail: Vec<usize> = t
        .vertex("ok")
        .unwrap()
        .recent_logs()
        .map(|l| l.bytes.len())
        .collect();
    assert_eq!(tail, [4096; 10], "10 lines, each cut to 4 KiB");
    t.handle_response(StatusResponse {
        vertexes: vec![
            vertex("ok", ts(3), ""),
            vertex("bad", ts(3), "exit code: 1"),
        ],
        ..Default::default()
    });
    assert_eq!(t.vertex("ok").unwrap().recent_logs().count(), 0);
    assert_eq!(t.vertex("bad").unwrap().recent_logs().count(), 10);
    let failed = t.finish().failed.expect("bad failed");
    assert_eq!(&*failed.digest, "bad");
    assert_eq!(failed.last_lines.len(), 10);
    // Only the kept copies are cut: the emitted lines are whole.
    let whole = std::iter::from_fn(|| t.poll_event())
        .filter(|e| matches!(e, Event::Log(l) if l.bytes.len() == 10_000))
        .count();
    assert_eq!(whole, 24, "12 whole lines from each vertex");
}

// ---------------------------------------------------------------------------------------
// Memory: bounded by the distinct vertices and the configured bounds, not by the records
// ---------------------------------------------------------------------------------------

/// Every BuildKit recording of the corpus fed again and again, as the memory stress input
/// (`benches/examples/big_stream.rs`) does: digests and times repeat, so after the first pass
/// nothing the tracker keeps may grow.
#[test]
fn repeating_the_corpus_does_not_grow_the_tracker() {
    let records: Vec<Bytes> = workspace_tests::corpus::buildkit()
        .iter()
        .flat_map(|r| r.trace_records())
        .collect();
    let mut t = Tracker::new();
    let pass = |t: &mut Tracker| {
        for r in &records {
            t.handle_protobuf(r.clone()).unwrap();
        }
        while t.poll_event().is_some() {}
        t.footprint()
    };
    pass(&mut t);
    let second = pass(&mut t);
    for _ in 0..3 {
        let now = pass(&mut t);
        // The tails of running vertices come and go, within their bound.
        assert!(now.tail_lines <= now.vertices * 10, "{now:?}");
        let without_tails =
            |f: crate::tracker::Footprint| crate::tracker::Footprint { tail_lines: 0, ..f };
        assert_eq!(without_tails(now), without_tails(second));
    }
    assert!(second.vertices > 100, "{second:?}");
}

/// A vertex that restarts without end keeps a bounded number of intervals, and its events and
/// durations stay exact.
#[test]
fn endless_restarts_keep_bounded_intervals() {
    let mut t = Tracker::new();
    let mut events = Vec::new();
    for i in 0..5_000i64 {
        t.handle_response(rec(vec![vtx(A, Some(i * 100), None)]));
        t.handle_response(rec(vec![vtx(A, Some(i * 100), Some(i * 100 + 30))]));
        // Stale re-sends of a run long folded away.
        t.handle_response(rec(vec![vtx(A, Some(0), None), vtx(A, Some(0), Some(30))]));
        events.extend(std::iter::from_fn(|| t.poll_event()));
        assert!(t.footprint().intervals <= 2 * 64, "{:?}", t.footprint());
    }
    assert!(check_pairing(&events).unwrap().is_empty());
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Started(_)))
            .count(),
        5_000
    );
    let info = t.vertex(A).unwrap();
    assert_eq!(info.intervals, 5_000);
    assert_eq!(info.duration(), Elapsed(5_000 * 30));
    let summary = t.finish();
    assert_eq!(summary.steps[0].duration, Elapsed(5_000 * 30));
}

/// Distinct warnings, statuses, streams: what the tracker keeps of them is bounded.
#[test]
fn distinct_warnings_statuses_and_streams_are_bounded() {
    let mut t = Tracker::new();
    t.handle_response(rec(vec![vtx(A, Some(1), None)]));
    for i in 0..5_000i64 {
        t.handle_response(StatusResponse {
            statuses: vec![VertexStatus {
                id: format!("sha256:layer{i}"),
                vertex: A.into(),
                current: 10,
                total: 10,
                timestamp: ts(2 + i),
                started: ts(2),
                completed: ts(2 + i),
                ..Default::default()
            }],
            warnings: vec![warning(A, &format!("warning {i}"), 1)],
            logs: vec![log(A, 10 + i, 2 + i, b"x")],
            ..Default::default()
        });
        while t.poll_event().is_some() {}
        let f = t.footprint();
        assert!(f.warnings <= 1024 && f.statuses <= 256, "{f:?}");
    }
    // Recent repeats are still reported once.
    t.handle_response(StatusResponse {
        warnings: vec![warning(A, "warning 4999", 1)],
        ..Default::default()
    });
    assert!(t.poll_event().is_none());
    t.handle_response(rec(vec![vtx(A, Some(1), Some(10_000))]));
    while t.poll_event().is_some() {}
    let f = t.footprint();
    assert_eq!(f.streams, 0, "{f:?}");
}
