//! `buildkit_events::Tracker` over every recorded daemon stream: invariants that must hold
//! for any build (pairing, lossless logs, identical results whichever way records are fed),
//! and the facts each recorded build is known to show (see `tests/data/corpus/README.md`
//! and `capture.sh`).

use buildkit_events::{Event, LineEnd, LogLine, Outcome, Stream, Summary, Tracker, VertexState};
use buildkit_proto::{Message, StatusResponse};
use bytes::Bytes;
use workspace_tests::body::decode_aux;
use workspace_tests::corpus::{self, Recording, get as recording};
use workspace_tests::invariants::{check_lossless_logs, check_pairing};

/// Everything the tracker said about one recording.
struct Run {
    id: String,
    /// Events polled before `finish`.
    live: Vec<Event>,
    /// Events queued by `finish`.
    at_finish: Vec<Event>,
    summary: Summary,
    tracker: Tracker,
}

impl Run {
    fn all(&self) -> impl Iterator<Item = &Event> {
        self.live.iter().chain(&self.at_finish)
    }

    /// The digest of the (single) vertex whose name starts with `prefix`.
    fn digest(&self, prefix: &str) -> String {
        let mut found: Vec<&str> = self
            .tracker
            .vertices()
            .filter(|v| v.name.starts_with(prefix))
            .map(|v| v.digest.as_ref())
            .collect();
        found.dedup();
        assert_eq!(
            found.len(),
            1,
            "{}: vertices named {prefix:?}: {found:?}",
            self.id
        );
        found[0].to_string()
    }

    fn lines(&self, digest: &str, stream: Stream) -> Vec<&LogLine> {
        self.all()
            .filter_map(|e| match e {
                Event::Log(l) if *l.digest == *digest && l.stream == stream => Some(l),
                _ => None,
            })
            .collect()
    }

    fn texts(&self, digest: &str, stream: Stream) -> Vec<String> {
        self.lines(digest, stream)
            .iter()
            .map(|l| l.text().into_owned())
            .collect()
    }

    /// Outcomes of the vertex's `Completed` events, in order.
    fn outcomes(&self, digest: &str) -> Vec<Outcome> {
        self.all()
            .filter_map(|e| match e {
                Event::Completed(c) if *c.digest == *digest => Some(c.outcome.clone()),
                _ => None,
            })
            .collect()
    }

    fn starts(&self, digest: &str) -> usize {
        self.all()
            .filter(|e| matches!(e, Event::Started(s) if *s.digest == *digest))
            .count()
    }
}

fn run(rec: &Recording) -> Run {
    let mut tracker = Tracker::new();
    for (i, wire) in rec.trace_records().into_iter().enumerate() {
        tracker
            .handle_protobuf(wire)
            .unwrap_or_else(|e| panic!("{} record {i}: {e}", rec.id()));
    }
    let live = std::iter::from_fn(|| tracker.poll_event()).collect();
    let summary = tracker.finish();
    let at_finish = std::iter::from_fn(|| tracker.poll_event()).collect();
    Run {
        id: rec.id(),
        live,
        at_finish,
        summary,
        tracker,
    }
}

const DAEMONS: [&str; 3] = ["docker-20.10", "docker-26.1", "docker-28.5"];

fn each(name: &str) -> impl Iterator<Item = Run> + '_ {
    DAEMONS.iter().map(move |d| run(&recording(d, name)))
}

// ---------------------------------------------------------------------------------------
// Invariants over every recording
// ---------------------------------------------------------------------------------------

#[test]
fn every_completed_follows_its_started_and_nothing_is_left_running() {
    for rec in corpus::all() {
        let r = run(&rec);
        let pairing = check_pairing(r.all()).unwrap_or_else(|e| panic!("{}: {e}", r.id));
        assert!(
            pairing.running.is_empty(),
            "{}: left running {pairing:?}",
            r.id
        );
        assert_eq!(r.tracker.running().count(), 0, "{}", r.id);
        // The summary agrees with the events.
        assert_eq!(r.summary.counts.total(), r.summary.steps.len(), "{}", r.id);
        assert_eq!(r.summary.steps.len(), pairing.started, "{}", r.id);
    }
}

#[test]
fn every_log_byte_comes_out() {
    let mut total = 0usize;
    for rec in corpus::all() {
        let r = run(&rec);
        total += check_lossless_logs(&rec.statuses(), r.all())
            .unwrap_or_else(|e| panic!("{}: {e}", r.id));
    }
    assert!(total > 500_000, "only {total} log bytes checked");
}

#[test]
fn protobuf_and_decoded_feeding_agree() {
    for rec in corpus::all() {
        let by_proto = run(&rec);
        let mut t = Tracker::new();
        for aux in rec.trace_aux() {
            let wire = decode_aux(&aux).unwrap();
            t.handle_response(StatusResponse::decode(wire).unwrap());
        }
        let mut events: Vec<Event> = std::iter::from_fn(|| t.poll_event()).collect();
        let summary = t.finish();
        events.extend(std::iter::from_fn(|| t.poll_event()));
        assert!(
            events == by_proto.all().cloned().collect::<Vec<_>>(),
            "{}",
            by_proto.id
        );
        assert_eq!(summary, by_proto.summary, "{}", by_proto.id);
    }
}

#[test]
fn a_broken_record_is_reported_with_its_index_and_skipped() {
    let rec = recording("docker-28.5", "run-fails");
    let aux = rec.trace_aux();
    let mut t = Tracker::new();
    for (i, a) in aux.iter().enumerate() {
        if i == 5 {
            // Cut the decoded protobuf short.
            let wire = decode_aux(a).unwrap();
            let err = t
                .handle_protobuf(Bytes::copy_from_slice(&wire[..wire.len() - 1]))
                .unwrap_err();
            assert_eq!(err.record(), 5);
            assert!(
                err.to_string()
                    .starts_with("record 5: invalid StatusResponse protobuf"),
                "{err}"
            );
        }
        t.handle_protobuf(decode_aux(a).unwrap()).unwrap();
    }
    let mut events: Vec<Event> = std::iter::from_fn(|| t.poll_event()).collect();
    let summary = t.finish();
    events.extend(std::iter::from_fn(|| t.poll_event()));
    let clean = run(&rec);
    assert!(events == clean.all().cloned().collect::<Vec<_>>());
    assert_eq!(summary, clean.summary);
    assert_eq!(t.records(), aux.len() as u64 + 1);
}

// ---------------------------------------------------------------------------------------
// What each recorded build did
// ---------------------------------------------------------------------------------------

#[test]
fn basic_nocache_runs_both_steps_with_their_output() {
    for r in each("basic-nocache") {
        let first = r.digest("[2/3] RUN echo marker-");
        let lines = r.texts(&first, Stream::Stdout);
        assert_eq!(lines.len(), 2, "{}", r.id);
        assert!(lines[0].starts_with("marker-"), "{}: {lines:?}", r.id);
        assert_eq!(lines[1], "line-two", "{}", r.id);
        let second = r.digest("[3/3] RUN echo second-step");
        assert_eq!(
            r.texts(&second, Stream::Stdout),
            ["second-step"],
            "{}",
            r.id
        );
        for d in [&first, &second] {
            assert_eq!(r.outcomes(d), [Outcome::Done], "{}", r.id);
        }
        // BuildKit runs these two twice: each run is an interval of its own.
        for name in ["[internal] load remote build context", "[1/3] FROM "] {
            assert_eq!(r.starts(&r.digest(name)), 2, "{}: {name}", r.id);
        }
        assert_eq!(r.summary.counts.failed + r.summary.counts.interrupted, 0);
        assert!(r.summary.failed.is_none());
        assert_eq!(r.summary.pending, 0);
        let export = r.digest("exporting to image");
        assert!(
            r.all().any(|e| matches!(e, Event::Progress(p)
            if *p.digest == *export && p.id.starts_with("naming to docker.io/library/cap-basic")
            && p.completed.is_some())),
            "{}",
            r.id
        );
    }
}

#[test]
fn basic_cached_serves_the_steps_from_cache_without_output() {
    for r in each("basic-cached") {
        for name in ["[2/3] RUN echo marker-", "[3/3] RUN echo second-step"] {
            let d = r.digest(name);
            assert_eq!(r.outcomes(&d), [Outcome::Cached], "{}: {name}", r.id);
        }
        assert!(!r.all().any(|e| matches!(e, Event::Log(_))), "{}", r.id);
        assert!(r.summary.counts.cached >= 2, "{}", r.id);
    }
}

#[test]
fn run_fails_reports_the_failed_step_with_its_output() {
    for r in each("run-fails") {
        let d = r.digest("[2/3] RUN echo before-fail");
        assert_eq!(r.texts(&d, Stream::Stdout), ["before-fail"], "{}", r.id);
        assert_eq!(r.texts(&d, Stream::Stderr), ["to-stderr"], "{}", r.id);
        let outcomes = r.outcomes(&d);
        let [Outcome::Failed(error)] = outcomes.as_slice() else {
            panic!("{}: {outcomes:?}", r.id)
        };
        assert!(error.ends_with("exit code: 3"), "{}: {error}", r.id);
        let failed = r.summary.failed.as_ref().expect("a failed vertex");
        assert_eq!(*failed.digest, *d);
        assert_eq!(&failed.error, error);
        let tail: Vec<_> = failed
            .last_lines
            .iter()
            .map(|l| (l.stream, l.text().into_owned()))
            .collect();
        assert_eq!(
            tail,
            [
                (Stream::Stdout, "before-fail".into()),
                (Stream::Stderr, "to-stderr".into())
            ],
            "{}",
            r.id
        );
        assert_eq!(r.summary.counts.failed, 1, "{}", r.id);
        // The step after the failure never ran.
        let never = r.digest("[3/3] RUN echo never");
        assert_eq!(
            r.tracker.vertex(&never).unwrap().state,
            VertexState::Pending
        );
        assert_eq!(r.starts(&never), 0);
        assert_eq!(r.summary.pending, 1, "{}", r.id);
    }
}

#[test]
fn multistage_runs_two_stages_at_once() {
    for r in each("multistage-parallel") {
        let a = r.digest("[a 2/2] RUN");
        let b = r.digest("[b 2/2] RUN");
        let expect = |p: &str| (1..=5).map(|i| format!("{p}-{i}")).collect::<Vec<_>>();
        assert_eq!(r.texts(&a, Stream::Stdout), expect("a"), "{}", r.id);
        assert_eq!(r.texts(&b, Stream::Stderr), expect("b"), "{}", r.id);
        assert!(r.texts(&a, Stream::Stderr).is_empty() && r.texts(&b, Stream::Stdout).is_empty());
        // Both run at once: each starts before the other completes, and logs interleave.
        let (va, vb) = (r.tracker.vertex(&a).unwrap(), r.tracker.vertex(&b).unwrap());
        assert!(va.first_started < vb.last_completed && vb.first_started < va.last_completed);
        let order: Vec<bool> = r
            .all()
            .filter_map(|e| match e {
                Event::Log(l) if *l.digest == *a || *l.digest == *b => Some(*l.digest == *a),
                _ => None,
            })
            .collect();
        let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(switches >= 4, "{}: logs do not interleave: {order:?}", r.id);
        // The COPY --from steps take the stage results as inputs.
        let copy_a = r
            .tracker
            .vertex(&r.digest("[stage-2 2/4] COPY --from=a"))
            .unwrap();
        assert!(copy_a.inputs.contains(&a), "{}", r.id);
        let copy_b = r
            .tracker
            .vertex(&r.digest("[stage-2 3/4] COPY --from=b"))
            .unwrap();
        assert!(copy_b.inputs.contains(&b), "{}", r.id);
        assert_eq!(
            r.texts(&r.digest("[stage-2 4/4] RUN echo final"), Stream::Stdout),
            ["final"]
        );
    }
}

#[test]
fn biglog_is_clipped_once_and_keeps_odd_lines_intact() {
    for r in each("biglog") {
        let big = r.digest("[2/3] RUN i=0");
        let lines = r.lines(&big, Stream::Stdout);
        let clips: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].clipped_notice)
            .collect();
        assert_eq!(clips.len(), 1, "{}", r.id);
        let clip = clips[0];
        assert_eq!(
            clip,
            lines.len() - 1,
            "{}: the notice is the last line",
            r.id
        );
        assert_eq!(
            lines[clip].text(),
            "[output clipped, log limit 200KiB/s reached]"
        );
        // Every line before it, in order, until BuildKit cut one mid-line.
        for (i, l) in lines[..clip - 1].iter().enumerate() {
            let want =
                format!("line {i} of a long build log with some padding text to make it wider");
            assert_eq!(l.text(), want, "{}", r.id);
            assert_eq!(l.end, LineEnd::Newline);
        }
        assert!(clip > 2900, "{}: clipped after {clip} lines", r.id);
        let cut = lines[clip - 1].text();
        assert!(cut.starts_with(&format!("line {} of", clip - 1)) && !cut.ends_with("wider"));

        let odd = r.digest("[3/3] RUN printf 'no-trailing-newline'");
        let odd_lines: Vec<_> = r
            .lines(&odd, Stream::Stdout)
            .iter()
            .map(|l| (l.bytes.clone(), l.end))
            .collect();
        assert_eq!(
            odd_lines,
            [
                (
                    Bytes::from_static(b"no-trailing-newline\r50%\r100%"),
                    LineEnd::Newline
                ),
                (Bytes::from_static(b"tab\there"), LineEnd::Newline),
            ],
            "{}",
            r.id
        );
    }
}

#[test]
fn copy_context_and_build_args_see_their_inputs() {
    for r in each("copy-context") {
        let ls = r.digest("[3/5] RUN ls /src");
        assert_eq!(
            r.texts(&ls, Stream::Stdout),
            ["50"],
            "{}: .dockerignore honoured",
            r.id
        );
        // The frontend substitutes ENV A=1 and ARG B=2 into the step name too.
        let echo = r.digest("[5/5] RUN echo 1 2");
        assert_eq!(r.texts(&echo, Stream::Stdout), ["1 2"], "{}", r.id);
        assert_eq!(
            r.outcomes(&r.digest("[2/5] COPY src /src")),
            [Outcome::Done]
        );
    }
    for r in each("build-args") {
        // The build arg reaches the step name, the output, and the ARG-built FROM.
        let d = r.digest("[2/2] RUN echo \"msg=from-api\"");
        r.digest("[1/2] FROM docker.io/library/bbase:latest");
        assert_eq!(r.texts(&d, Stream::Stdout), ["msg=from-api"], "{}", r.id);
    }
}

#[test]
fn scratch_copy_has_no_base_image() {
    for r in each("scratch-copy") {
        assert!(
            !r.tracker.vertices().any(|v| v.name.contains("FROM")),
            "{}",
            r.id
        );
        let copy = r.digest("[1/1] COPY hello.txt /");
        assert_eq!(r.outcomes(&copy), [Outcome::Done], "{}", r.id);
        assert!(r.summary.failed.is_none());
    }
}

#[test]
fn warnings_come_once_with_their_source_location() {
    let expected: [(&str, &[(&str, i32)]); 3] = [
        ("docker-20.10", &[]),
        (
            "docker-26.1",
            &[("Empty continuation line found in: RUN echo a", 4)],
        ),
        (
            "docker-28.5",
            &[
                ("NoEmptyContinuation: Empty continuation line (line 4)", 4),
                (
                    "StageNameCasing: Stage name 'Second' should be lowercase (line 5)",
                    5,
                ),
                (
                    "ConsistentInstructionCasing: Command 'from' should match",
                    5,
                ),
            ],
        ),
    ];
    for (daemon, want) in expected {
        let r = run(&recording(daemon, "warnings"));
        let warnings: Vec<_> = r
            .all()
            .filter_map(|e| match e {
                Event::Warning(w) => Some(w),
                _ => None,
            })
            .collect();
        assert_eq!(warnings.len(), want.len(), "{}", r.id);
        for (w, (short, line)) in warnings.iter().zip(want) {
            assert!(
                w.short.starts_with(short.as_bytes()),
                "{}: {:?}",
                r.id,
                w.short
            );
            assert_eq!(w.source_file.as_deref(), Some("Dockerfile"), "{}", r.id);
            assert_eq!(w.lines, [(*line, *line)], "{}", r.id);
            assert_eq!(w.level, 1);
            assert!(w.url.starts_with("https://"), "{}", r.id);
            assert!(r.tracker.vertex(&w.digest).is_some(), "{}", r.id);
        }
    }
}

#[test]
fn client_cancel_leaves_the_long_step_interrupted() {
    for r in each("client-cancel") {
        let d = r.digest("[2/2] RUN for i in 1 2 3");
        assert_eq!(
            r.texts(&d, Stream::Stdout),
            ["tick-1", "tick-2", "tick-3"],
            "{}",
            r.id
        );
        // Nothing completed it while the stream lasted; finish did.
        assert!(
            !r.live
                .iter()
                .any(|e| matches!(e, Event::Completed(c) if *c.digest == *d))
        );
        let [Event::Completed(c)] = r.at_finish.as_slice() else {
            panic!("{}: {:?}", r.id, r.at_finish)
        };
        assert_eq!(
            (c.digest.as_ref(), &c.outcome),
            (d.as_str(), &Outcome::Interrupted)
        );
        let last_log = r.lines(&d, Stream::Stdout).last().unwrap().timestamp;
        assert_eq!(
            c.completed, last_log,
            "{}: interrupted at the latest time seen",
            r.id
        );
        assert_eq!(r.summary.counts.interrupted, 1, "{}", r.id);
        assert_eq!(r.summary.last_completed, Some(last_log));
        assert!(r.summary.failed.is_none());
    }
}

/// Docker 20.10's double start (see the corpus README): the context vertex comes as
/// `{started: t1}`, then `{started: t2, completed: t3}`, and t1 never completes. The daemon
/// built the image, so the vertex completes at t3 and nothing is interrupted.
#[test]
fn parallel_double_start_completes_the_twice_started_vertex() {
    let rec = recording("docker-20.10", "parallel-double-start");
    let starts: Vec<(bool, bool)> = rec
        .statuses()
        .iter()
        .flat_map(|s| &s.vertexes)
        .filter(|v| v.name == "[internal] load remote build context")
        .map(|v| (v.started.is_some(), v.completed.is_some()))
        .collect();
    assert_eq!(starts, [(false, false), (true, false), (true, true)]);
    let r = run(&rec);
    let d = r.digest("[internal] load remote build context");
    assert_eq!(r.starts(&d), 1);
    assert_eq!(r.outcomes(&d), [Outcome::Done]);
    assert!(r.at_finish.is_empty(), "{:?}", r.at_finish);
    assert_eq!(r.summary.counts.interrupted, 0);
    let step = r.summary.steps.iter().find(|s| *s.digest == *d).unwrap();
    // From the first start to the second start's completion: 88.4 ms.
    assert_eq!(step.duration.0, 88_422_799);
}

#[test]
fn failures_before_any_step() {
    for r in each("syntax-error") {
        // The parse error only reaches the errorDetail line; no vertex carries it.
        assert!(r.tracker.vertices().all(|v| v.error.is_none()), "{}", r.id);
        assert!(
            r.summary.failed.is_none() && r.summary.counts.failed == 0,
            "{}",
            r.id
        );
        assert!(r.summary.counts.done >= 2, "{}", r.id);
    }
    for r in each("missing-base") {
        let failed = r.summary.failed.as_ref().expect("failed metadata vertex");
        assert!(
            failed.name.starts_with("[internal] load metadata for"),
            "{}",
            r.id
        );
        assert!(
            failed.error.contains("connection refused"),
            "{}: {}",
            r.id,
            failed.error
        );
        assert!(failed.last_lines.is_empty());
        assert_eq!(r.summary.counts.failed, 1, "{}", r.id);
    }
}

#[test]
fn classic_builds_have_no_trace() {
    for name in ["classic-v1", "classic-v1-cached", "classic-v1-fails"] {
        for r in each(name) {
            assert!(r.all().next().is_none(), "{}", r.id);
            assert_eq!(r.summary.counts.total(), 0);
            assert_eq!(r.summary.wall_time, buildkit_events::Elapsed(0));
        }
    }
}

#[test]
fn registry_pull_reports_byte_progress() {
    let r = run(&recording("docker-28.5", "registry-pull"));
    let from = r.digest("[1/2] FROM 127.0.0.1:5000/bigbase:1");
    assert_eq!(r.starts(&from), 3, "resolve, then pull: three intervals");
    let layer = "sha256:efe68c7a6af7058e3f94c42f22e99d46cb226dd59df7dd690d97f75ae9d73aa3";
    let updates: Vec<_> = r
        .all()
        .filter_map(|e| match e {
            Event::Progress(p) if *p.digest == *from && p.id == layer => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].action, "downloading");
    assert_eq!(
        (updates[0].current, updates[0].total),
        (41_085_050, Some(41_085_050))
    );
    assert!(updates[0].completed.is_none() && updates[1].completed.is_some());
    assert_eq!(updates[1].action, "done");
    let extracting = format!("extracting {layer}");
    assert!(r.all().any(|e| matches!(e, Event::Progress(p)
        if p.id == extracting && p.total.is_none() && p.completed.is_some())));
    let ls = r.digest("[2/2] RUN ls -la /blob.bin");
    assert!(r.texts(&ls, Stream::Stdout)[0].contains("40000000"));
}
