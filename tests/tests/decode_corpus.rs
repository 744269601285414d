//! `docker_build::decode::BuildDecoder` over the recorded daemon bodies: what each build did
//! comes out as build-level events, whatever the chunking.

use buildkit_events::{Event, Outcome, Time};
use docker_build::decode::BuildEvent;
use workspace_tests::body::{TRACE_PREFIX, decode_body as decode_chunked};
use workspace_tests::corpus::{self, Recording, named as find};
use workspace_tests::events::{log_lines, outcomes as completed, summary};

fn log_text(events: &[BuildEvent]) -> String {
    log_lines(events).iter().map(|l| format!("{l}\n")).collect()
}

fn decode(rec: &Recording) -> Vec<BuildEvent> {
    decode_chunked(&rec.bytes(), usize::MAX)
}

#[test]
fn any_chunking_gives_the_same_events() {
    for rec in corpus::all() {
        let body = rec.bytes();
        let whole = decode_chunked(&body, usize::MAX);
        for chunk in [1, 7, 100, 4096, 65536] {
            let got = decode_chunked(&body, chunk);
            assert!(
                got == whole,
                "{}: chunks of {chunk} bytes give other events",
                rec.id()
            );
        }
    }
}

#[test]
fn every_recording_ends_with_finished_and_has_no_bad_lines() {
    for rec in corpus::all() {
        let events = decode(&rec);
        summary(&events);
        let finished = events
            .iter()
            .filter(|e| matches!(e, BuildEvent::Finished(_)))
            .count();
        assert_eq!(finished, 1, "{}", rec.id());
        assert!(
            !events.iter().any(|e| matches!(e, BuildEvent::BadLine(_))),
            "{}: a recorded daemon body has no bad lines",
            rec.id()
        );
    }
}

#[test]
fn image_ids_are_reported() {
    for rec in corpus::all() {
        let want: Vec<String> = rec
            .lines()
            .iter()
            .filter_map(|v| v["aux"]["ID"].as_str().map(str::to_string))
            .collect();
        let events = decode(&rec);
        let got: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                BuildEvent::ImageBuilt { id } => Some(id.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(got, want, "{}", rec.id());
        assert_eq!(
            summary(&events).image_id,
            want.last().cloned(),
            "{}",
            rec.id()
        );
    }
}

#[test]
fn a_failing_run_is_attributed_to_its_step_with_its_output() {
    for rec in find("run-fails") {
        let events = decode(&rec);
        let failure = summary(&events).failure.clone().expect("the build failed");
        assert!(
            failure.message.contains("exit code: 3"),
            "{}: {}",
            rec.id(),
            failure.message
        );
        let step = failure.step.expect("a vertex carried the error");
        assert!(
            step.name.contains("RUN echo before-fail"),
            "{}: {}",
            rec.id(),
            step.name
        );
        assert!(step.error.contains("exit code: 3"), "{}", rec.id());
        assert!(
            step.last_lines.iter().any(|l| l.text() == "before-fail"),
            "{}: {:?}",
            rec.id(),
            step.last_lines
        );
        assert!(
            step.last_lines.iter().any(|l| l.text() == "to-stderr"),
            "{}: {:?}",
            rec.id(),
            step.last_lines
        );
        assert!(
            step.last_lines.iter().all(|l| l.timestamp > Time(0)),
            "{}: the lines carry the times they were logged at",
            rec.id()
        );
        let failed_events = events
            .iter()
            .filter(|e| matches!(e, BuildEvent::Failed(_)))
            .count();
        assert_eq!(failed_events, 1, "{}", rec.id());
        assert!(summary(&events).image_id.is_none(), "{}", rec.id());
    }
}

#[test]
fn a_syntax_error_fails_the_build_without_a_step() {
    for rec in find("syntax-error") {
        let failure = summary(&decode(&rec))
            .failure
            .clone()
            .expect("the build failed");
        assert!(
            failure.message.contains("RUNN"),
            "{}: {}",
            rec.id(),
            failure.message
        );
        assert!(failure.step.is_none(), "{}: {:?}", rec.id(), failure.step);
    }
}

#[test]
fn a_missing_base_image_fails_its_metadata_step() {
    for rec in find("missing-base") {
        let failure = summary(&decode(&rec))
            .failure
            .clone()
            .expect("the build failed");
        let step = failure.step.expect("the metadata vertex carried the error");
        assert!(
            step.name.contains("does-not-exist"),
            "{}: {}",
            rec.id(),
            step.name
        );
    }
}

#[test]
fn cached_builds_come_back_cached() {
    for rec in find("basic-cached") {
        let events = decode(&rec);
        for step in ["RUN echo marker", "RUN echo second-step"] {
            let outcomes = completed(&events, step);
            assert!(!outcomes.is_empty(), "{}: {step} not completed", rec.id());
            assert!(
                outcomes.iter().all(|o| *o == Outcome::Cached),
                "{}: {step}: {outcomes:?}",
                rec.id()
            );
        }
        assert!(
            !log_text(&events).contains("line-two"),
            "{}: a cached RUN prints nothing",
            rec.id()
        );
    }
    for rec in find("basic-nocache") {
        let events = decode(&rec);
        assert_eq!(
            completed(&events, "RUN echo second-step"),
            [Outcome::Done],
            "{}",
            rec.id()
        );
        let logs = log_text(&events);
        assert!(
            logs.contains("\nline-two\n") || logs.starts_with("line-two\n"),
            "{}",
            rec.id()
        );
        assert!(logs.contains("second-step\n"), "{}", rec.id());
    }
}

#[test]
fn the_classic_builder_speaks_the_same_vocabulary() {
    for rec in find("classic-v1") {
        let events = decode(&rec);
        let run = completed(&events, "[2/3] RUN echo classic-marker");
        assert_eq!(run, [Outcome::Done], "{}", rec.id());
        assert!(
            log_text(&events).contains("classic-marker-"),
            "{}",
            rec.id()
        );
        assert!(log_text(&events).contains("second\n"), "{}", rec.id());
        let s = summary(&events);
        assert!(
            s.image_id
                .as_deref()
                .is_some_and(|id| id.starts_with("sha256:")),
            "{}",
            rec.id()
        );
        assert!(events.contains(&BuildEvent::Message(
            "Successfully tagged cap-classic:latest".into()
        )));
    }
    for rec in find("classic-v1-cached") {
        let events = decode(&rec);
        assert_eq!(
            completed(&events, "RUN echo classic-marker"),
            [Outcome::Cached],
            "{}",
            rec.id()
        );
        assert_eq!(
            completed(&events, "RUN echo second"),
            [Outcome::Cached],
            "{}",
            rec.id()
        );
    }
    for rec in find("classic-v1-fails") {
        let events = decode(&rec);
        let failure = summary(&events).failure.clone().expect("failed");
        assert_eq!(failure.code, Some(4), "{}", rec.id());
        let step = failure.step.expect("attributed");
        assert_eq!(step.name, "[2/2] RUN echo x && exit 4", "{}", rec.id());
        let last_lines: Vec<_> = step.last_lines.iter().map(|l| l.text()).collect();
        assert_eq!(last_lines, ["x"], "{}", rec.id());
    }
}

#[test]
fn a_stream_that_just_stops_leaves_interrupted_vertices_and_no_failure() {
    for rec in find("client-cancel") {
        let events = decode(&rec);
        let s = summary(&events);
        assert!(s.failure.is_none(), "{}", rec.id());
        assert!(s.image_id.is_none(), "{}", rec.id());
        let interrupted = completed(&events, "RUN for i in")
            .into_iter()
            .filter(|o| *o == Outcome::Interrupted)
            .count();
        assert_eq!(interrupted, 1, "{}: the RUN was still running", rec.id());
        assert!(log_text(&events).contains("tick-1\n"), "{}", rec.id());
    }
}

#[test]
fn a_body_cut_mid_line_reports_the_fragment_and_keeps_what_came_before() {
    let rec = &find("basic-nocache")[0];
    let body = rec.bytes();
    // Cut inside the base64 of the last trace record.
    let last_trace = body
        .windows(TRACE_PREFIX.len())
        .rposition(|w| w == TRACE_PREFIX)
        .unwrap();
    let cut = &body[..last_trace + TRACE_PREFIX.len() + 50];
    let events = decode_chunked(cut, 1000);
    let bad: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, BuildEvent::BadLine(_)))
        .collect();
    assert_eq!(bad.len(), 1, "the fragment is reported once: {bad:?}");
    let full = decode(rec);
    let started = |ev: &[BuildEvent]| {
        ev.iter()
            .filter(|e| matches!(e, BuildEvent::Vertex(Event::Started(_))))
            .count()
    };
    assert!(started(&events) > 0);
    assert!(started(&events) <= started(&full));
    summary(&events);
}
