use super::*;

#[test]
fn a_kept_line_is_cut_at_a_character_boundary() {
    let mut line = "x".repeat(TAIL_LINE_BYTES - 1);
    push_bounded(&mut line, "é and more");
    assert_eq!(
        line.len(),
        TAIL_LINE_BYTES - 1,
        "é takes 2 bytes: it does not fit"
    );
    let mut line = String::new();
    push_bounded(&mut line, &"ab".repeat(TAIL_LINE_BYTES));
    assert_eq!(line.len(), TAIL_LINE_BYTES);
}

fn step(digest: &str, inputs: &[&str], ms: u128) -> Step {
    Step {
        digest: digest.into(),
        name: digest.to_string(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        first_started: Time(0),
        last_completed: None,
        runs: RunIntervals::new(),
        final_runs: None,
        outcome: Some(Outcome::Done),
        duration: Elapsed(ms * 1_000_000),
        tail: VecDeque::new(),
        continues: false,
    }
}

#[test]
fn the_path_takes_the_heavier_branch_and_leaves_out_free_steps_at_its_start() {
    // free → a → {b (5), c (7)} → d
    let steps = [
        step("free", &[], 0),
        step("a", &["free"], 1),
        step("b", &["a"], 5),
        step("c", &["a"], 7),
        step("d", &["b", "c", "missing"], 2),
    ];
    let path: Vec<&str> = critical_path(&steps)
        .into_iter()
        .map(|i| &*steps[i].digest)
        .collect();
    assert_eq!(path, ["a", "c", "d"]);
    assert!(critical_path(&[step("z", &[], 0)]).is_empty());
}

#[test]
fn a_stage_is_busy_while_one_of_its_steps_runs() {
    let mut report = ReportBuilder::new();
    for (digest, start, stop) in [("a", 0, 10), ("b", 5, 20), ("c", 30, 40)] {
        report.event(&Event::Started(buildkit_events::VertexStarted {
            digest: digest.into(),
            name: format!("[s 1/3] RUN {digest}"),
            inputs: Vec::new(),
            started: Time(start),
            interval: 0,
        }));
        report.event(&Event::Completed(buildkit_events::VertexCompleted {
            digest: digest.into(),
            name: format!("[s 1/3] RUN {digest}"),
            outcome: Outcome::Done,
            started: Time(start),
            completed: Time(stop),
            duration: Elapsed((stop - start) as u128),
            interval: 0,
        }));
    }
    let report = report.finish();
    assert_eq!(report.stages.len(), 1);
    let s = &report.stages[0];
    assert_eq!(
        (s.steps, s.duration, s.start, s.end),
        (3, Elapsed(30), Elapsed(0), Elapsed(40))
    );
}
