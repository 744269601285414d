//! Golden files: the `plain` and `json` output of every recorded daemon stream in
//! `tests/data/corpus/<daemon>/<name>.ndjson` (workspace root), kept in
//! `crates/buildkit-progressui/tests/golden/<daemon>/<name>.plain.txt` and `.json`. Each
//! recording is a test of its own (`docker_28_5::run_fails`, …), so a failure names it.
//!
//! After an intended change of the output, re-bless them with
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p buildkit-progressui --test golden
//! ```
//!
//! and read the diff: each file must still say what the build did (see the corpus README).
//! The rule is `workspace_tests::golden`'s, the same for every golden test of the workspace:
//! under `CI=true` nothing is written and a difference always fails.
//!
//! Besides the comparison, the tests below check facts of particular builds directly, and
//! that the output does not depend on how the body is chunked.

use std::path::{Path, PathBuf};

use buildkit_events::{Outcome, Time};
use buildkit_progressui::{Mode, Options, Render, Renderer};
use bytes::Bytes;
use docker_build::decode::{BuildDecoder, BuildEvent, BuildFailure, DecoderConfig};
use workspace_tests::corpus;
use workspace_tests::golden::{assert_golden, unexpected_files};

/// How much of a recording is pushed at a time, as `bktrace replay` reads it.
const CHUNK: usize = 64 * 1024;

const DAEMONS: [&str; 3] = ["docker-20.10", "docker-26.1", "docker-28.5"];

/// The golden modes and the extension of their files.
const GOLDEN_MODES: [(Mode, &str); 2] = [(Mode::Plain, "plain.txt"), (Mode::Json, "json")];

/// The recordings with a golden file of the GitHub mode (`<name>.github.txt`): its framing is
/// the same for every build, so a few kinds of build show it: one with concurrent steps,
/// failed ones, ones with warnings (whose summary after the build has each warning's `>>>`
/// Dockerfile lines).
const GITHUB_GOLDEN: [(&str, &str); 5] = [
    ("docker-28.5", "multistage-parallel"),
    ("docker-28.5", "run-fails"),
    ("docker-28.5", "warnings"),
    ("docker-26.1", "warnings"),
    ("docker-20.10", "run-fails"),
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn golden_file(rec: &corpus::Recording, ext: &str) -> PathBuf {
    golden_dir()
        .join(&rec.daemon)
        .join(format!("{}.{ext}", rec.name))
}

/// What rendering a recording gave.
struct Rendered {
    text: String,
    /// The build's failure, if it failed.
    failure: Option<BuildFailure>,
    /// Names of the steps still running when the body ended.
    interrupted: Vec<String>,
}

/// Renders a recorded body the way `bktrace replay` does: `chunk` bytes at a time through a
/// decoder, every event at `Time(0)` (a replay has no clock).
fn render(body: &[u8], mode: Mode, chunk: usize) -> Rendered {
    let mut decoder = BuildDecoder::with_config(DecoderConfig {
        records: mode.wants_records(),
        boundaries: mode.wants_boundaries(),
        ..DecoderConfig::default()
    });
    let mut renderer = Renderer::new(mode, Vec::new(), Options::default());
    let mut failure = None;
    let mut interrupted = Vec::new();
    let mut drain = |decoder: &mut BuildDecoder, renderer: &mut Renderer<Vec<u8>>| {
        while let Some(event) = decoder.poll_event() {
            match &event {
                BuildEvent::Failed(f) => failure = Some(f.clone()),
                BuildEvent::Finished(summary) => {
                    interrupted = summary
                        .summary
                        .steps
                        .iter()
                        .filter(|v| v.outcome == Outcome::Interrupted)
                        .map(|v| v.name.clone())
                        .collect();
                }
                _ => {}
            }
            renderer.event(&event, Time(0)).expect("writing to a Vec");
        }
    };
    for piece in body.chunks(chunk.max(1)) {
        decoder.push(Bytes::copy_from_slice(piece), Time(0));
        drain(&mut decoder, &mut renderer);
    }
    decoder.finish(Time(0));
    drain(&mut decoder, &mut renderer);
    if let Some(github) = renderer.github() {
        // What bktrace writes after the build: the warnings summary and the annotations
        // (no Dockerfile location: a replay has none).
        github.conclude(None, None).expect("writing to a Vec");
    }
    let text = String::from_utf8(renderer.into_inner()).expect("output is UTF-8 for the corpus");
    Rendered {
        text,
        failure,
        interrupted,
    }
}

fn replay(daemon: &str, name: &str, mode: Mode) -> Rendered {
    render(&corpus::get(daemon, name).bytes(), mode, CHUNK)
}

fn plain(daemon: &str, name: &str) -> String {
    replay(daemon, name, Mode::Plain).text
}

fn json_lines(daemon: &str, name: &str) -> Vec<serde_json::Value> {
    replay(daemon, name, Mode::Json)
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{daemon}/{name}: {e}: {l}")))
        .collect()
}

/// Compares (or re-blesses, see the module docs) the plain and json golden files of one
/// recording.
fn golden_output(rec: &corpus::Recording) {
    let body = rec.bytes();
    for (mode, ext) in GOLDEN_MODES {
        assert_golden(golden_file(rec, ext), &render(&body, mode, CHUNK).text);
    }
    if GITHUB_GOLDEN.contains(&(rec.daemon.as_str(), rec.name.as_str())) {
        let text = render(&body, Mode::Github, CHUNK).text;
        assert_golden(golden_file(rec, "github.txt"), &text);
    }
}

workspace_tests::test_each_recording!(golden_output);

/// No golden file may outlive its recording.
#[test]
fn every_golden_file_has_its_recording() {
    let expected: Vec<PathBuf> = corpus::all()
        .iter()
        .flat_map(|rec| GOLDEN_MODES.map(|(_, ext)| golden_file(rec, ext)))
        .chain(
            GITHUB_GOLDEN
                .iter()
                .map(|(daemon, name)| golden_file(&corpus::get(daemon, name), "github.txt")),
        )
        .collect();
    let stale = unexpected_files(golden_dir(), &expected);
    assert!(
        stale.is_empty(),
        "golden files without a recording: {stale:?}"
    );
}

#[test]
fn output_does_not_depend_on_the_chunking_of_the_body() {
    for recording in corpus::all() {
        let body = recording.bytes();
        for mode in [Mode::Plain, Mode::Json, Mode::RawJson, Mode::Github] {
            let whole = render(&body, mode, body.len().max(1)).text;
            let small = render(&body, mode, 4093).text;
            assert!(
                whole == small,
                "{} {mode:?}: output depends on chunking",
                recording.id()
            );
        }
    }
}

#[test]
fn every_json_line_has_a_known_type_and_the_last_one_finishes_the_build() {
    const TYPES: [&str; 10] = [
        "vertex_started",
        "vertex_completed",
        "vertex_log",
        "vertex_progress",
        "vertex_warning",
        "image_built",
        "message",
        "bad_line",
        "build_failed",
        "build_finished",
    ];
    for recording in corpus::all() {
        let (daemon, name) = (&recording.daemon, &recording.name);
        let lines = json_lines(daemon, name);
        for line in &lines {
            let kind = line["type"].as_str().unwrap();
            assert!(
                TYPES.contains(&kind),
                "{daemon}/{name}: unknown type {kind}"
            );
            if kind.starts_with("vertex_") {
                // BuildKit digests, or the classic builder's step ids.
                let digest = line["digest"].as_str().unwrap();
                assert!(
                    digest.starts_with("sha256:") || digest.starts_with("classic:"),
                    "{line}"
                );
            }
            assert_ne!(
                kind, "bad_line",
                "{daemon}/{name}: the corpus has no bad lines: {line}"
            );
        }
        let last = lines.last().unwrap();
        assert_eq!(last["type"], "build_finished", "{daemon}/{name}");
        assert_eq!(
            lines
                .iter()
                .filter(|l| l["type"] == "build_finished")
                .count(),
            1
        );
        // Every completion follows a start of the same vertex and interval.
        for (i, line) in lines.iter().enumerate() {
            if line["type"] == "vertex_completed" {
                assert!(
                    lines[..i].iter().any(|l| l["type"] == "vertex_started"
                        && l["digest"] == line["digest"]
                        && l["interval"] == line["interval"]),
                    "{daemon}/{name}: completion without start: {line}"
                );
            }
        }
    }
}

#[test]
fn run_fails_shows_the_step_error_and_the_closing_block() {
    for daemon in DAEMONS {
        let Rendered { text, failure, .. } = replay(daemon, "run-fails", Mode::Plain);
        let step = "[2/3] RUN echo before-fail && echo to-stderr >&2 && exit 3";
        let error = if daemon == "docker-20.10" {
            "executor failed running [/bin/sh -c echo before-fail && echo to-stderr >&2 && exit 3]: exit code: 3"
        } else {
            "process \"/bin/sh -c echo before-fail && echo to-stderr >&2 && exit 3\" did not complete successfully: exit code: 3"
        };
        let n = text
            .lines()
            .find_map(|l| {
                l.strip_suffix(&format!(" {step}"))
                    .filter(|p| p.starts_with('#'))
            })
            .unwrap_or_else(|| panic!("{daemon}: no block for the step:\n{text}"));
        assert!(
            text.contains(&format!("\n{n} ERROR: {error}\n")),
            "{daemon}:\n{text}"
        );
        // The closing block repeats the step's output with the elapsed prefix, without `#N`.
        let block = text
            .split_once("------\n")
            .map(|(_, b)| b)
            .unwrap_or_else(|| panic!("{text}"));
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(lines[0], format!(" > {step}:"));
        assert_eq!(lines.len(), 4, "{block}");
        assert!(
            lines[1].ends_with(" before-fail") && !lines[1].starts_with('#'),
            "{block}"
        );
        assert!(lines[2].ends_with(" to-stderr"), "{block}");
        assert_eq!(lines[3], "------");
        assert!(
            !text.contains("never"),
            "the step after the failure never ran"
        );
        let failure = failure.expect("the build failed");
        assert!(
            failure.message.contains("exit code: 3"),
            "{}",
            failure.message
        );
    }
}

#[test]
fn basic_cached_shows_both_run_steps_cached_and_no_output() {
    for daemon in DAEMONS {
        let text = plain(daemon, "basic-cached");
        for step in ["[2/3] RUN echo marker-", "[3/3] RUN echo second-step"] {
            let n = text
                .lines()
                .find(|l| l.contains(step))
                .and_then(|l| l.split(' ').next())
                .unwrap_or_else(|| panic!("{daemon}: no {step}:\n{text}"));
            assert!(
                text.contains(&format!("\n{n} CACHED\n")),
                "{daemon} {step}:\n{text}"
            );
            assert!(
                !text.contains(&format!("\n{n} DONE")),
                "{daemon} {step}:\n{text}"
            );
        }
        assert!(
            !text
                .lines()
                .any(|l| l.ends_with(" line-two") && !l.contains("RUN")),
            "cached steps print no output:\n{text}"
        );
    }
}

#[test]
fn basic_nocache_shows_the_output_of_both_steps_and_the_image() {
    for daemon in DAEMONS {
        let text = plain(daemon, "basic-nocache");
        assert!(
            text.lines()
                .any(|l| l.contains(" marker-") && l.starts_with('#') && !l.contains("RUN")),
            "{text}"
        );
        assert!(text.lines().any(|l| l.ends_with(" line-two")), "{text}");
        assert!(
            text.lines()
                .any(|l| l.ends_with(" second-step") && !l.contains("RUN")),
            "{text}"
        );
        assert!(text.contains("\nSuccessfully built sha256:"), "{text}");
        assert!(
            text.contains("naming to docker.io/library/cap-basic"),
            "{text}"
        );
        let lines = json_lines(daemon, "basic-nocache");
        let finished = lines.last().unwrap();
        assert_eq!(finished["success"], true);
        assert!(
            finished["image_id"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
    }
}

#[test]
fn biglog_shows_the_clip_notice_after_a_cut_line() {
    for daemon in DAEMONS {
        let text = plain(daemon, "biglog");
        let lines: Vec<&str> = text.lines().collect();
        let clip = lines
            .iter()
            .position(|l| l.ends_with(" [output clipped, log limit 200KiB/s reached]"))
            .unwrap_or_else(|| panic!("{daemon}: no clip notice"));
        // The line before the notice was cut in the middle.
        assert!(
            !lines[clip - 1].ends_with("wider"),
            "{daemon}: {}",
            lines[clip - 1]
        );
        assert!(
            lines[clip - 1].contains(" line 2"),
            "{daemon}: {}",
            lines[clip - 1]
        );
        assert!(
            !text.contains("line 19999 "),
            "{daemon}: the rest was clipped"
        );
        // The second RUN: a line without newline continued by `\r` updates, and a tab.
        assert!(
            text.contains(" no-trailing-newline\r50%\r100%\n"),
            "{daemon}"
        );
        assert!(text.contains(" tab\there\n"), "{daemon}");
        let json = json_lines(daemon, "biglog");
        let notices: Vec<_> = json
            .iter()
            .filter(|l| l["type"] == "vertex_log" && l["clipped"] == true)
            .collect();
        assert_eq!(notices.len(), 1, "{daemon}");
        assert_eq!(
            notices[0]["line"],
            "[output clipped, log limit 200KiB/s reached]"
        );
    }
}

#[test]
fn multistage_parallel_shows_both_stages_and_their_streams() {
    for daemon in DAEMONS {
        let text = plain(daemon, "multistage-parallel");
        for i in 1..=5 {
            assert!(
                text.lines()
                    .any(|l| l.starts_with('#') && l.ends_with(&format!(" a-{i}"))),
                "{daemon}:\n{text}"
            );
            assert!(
                text.lines()
                    .any(|l| l.starts_with('#') && l.ends_with(&format!(" b-{i}"))),
                "{daemon}:\n{text}"
            );
        }
        assert!(text.contains(" final\n"));
        let json = json_lines(daemon, "multistage-parallel");
        for line in json.iter().filter(|l| l["type"] == "vertex_log") {
            let text = line["line"].as_str().unwrap();
            let expected = if text.starts_with("a-") || text == "final" {
                "stdout"
            } else {
                "stderr"
            };
            assert_eq!(line["stream"], expected, "{daemon}: {line}");
            assert!(line["name"].as_str().unwrap().contains("RUN"), "{line}");
        }
    }
}

#[test]
fn warnings_show_the_lint_warnings_of_each_daemon() {
    for (daemon, count) in [("docker-20.10", 0), ("docker-26.1", 1), ("docker-28.5", 3)] {
        let text = plain(daemon, "warnings");
        let warns: Vec<&str> = text.lines().filter(|l| l.contains(" WARN: ")).collect();
        assert_eq!(warns.len(), count, "{daemon}:\n{text}");
        let json = json_lines(daemon, "warnings");
        let warnings: Vec<_> = json
            .iter()
            .filter(|l| l["type"] == "vertex_warning")
            .collect();
        assert_eq!(warnings.len(), count, "{daemon}");
    }
    let text = plain("docker-28.5", "warnings");
    assert!(
        text.contains(" WARN: StageNameCasing: Stage name 'Second' should be lowercase (line 5)\n")
    );
    let json = json_lines("docker-28.5", "warnings");
    let w = json.iter().find(|l| l["type"] == "vertex_warning").unwrap();
    assert_eq!(w["file"], "Dockerfile");
    assert_eq!(w["lines"], serde_json::json!([[4, 4]]));
    assert!(
        w["url"]
            .as_str()
            .unwrap()
            .starts_with("https://docs.docker.com/")
    );
}

#[test]
fn client_cancel_leaves_the_running_step_interrupted() {
    for daemon in DAEMONS {
        let Rendered {
            text,
            failure,
            interrupted,
        } = replay(daemon, "client-cancel", Mode::Plain);
        assert!(text.contains(" tick-1\n"), "{daemon}:\n{text}");
        assert!(!text.contains("tick-10"), "{daemon}");
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with('#') && last.ends_with(" ..."),
            "{daemon}: {last}"
        );
        assert!(failure.is_none());
        assert_eq!(interrupted.len(), 1, "{daemon}: {:?}", interrupted);
        assert!(interrupted[0].contains("RUN for i in"));
        let json = json_lines(daemon, "client-cancel");
        assert!(
            json.iter()
                .any(|l| l["type"] == "vertex_completed" && l["outcome"] == "interrupted")
        );
        assert_eq!(json.last().unwrap()["vertices"]["interrupted"], 1);
    }
}

#[test]
fn syntax_error_fails_without_a_failed_step() {
    for daemon in DAEMONS {
        let Rendered { text, failure, .. } = replay(daemon, "syntax-error", Mode::Plain);
        assert!(!text.contains("ERROR"), "{daemon}:\n{text}");
        assert!(!text.contains("------"), "{daemon}:\n{text}");
        let failure = failure.expect("failed");
        assert!(
            failure.message.contains("unknown instruction"),
            "{}",
            failure.message
        );
        let json = json_lines(daemon, "syntax-error");
        let failed = json.iter().find(|l| l["type"] == "build_failed").unwrap();
        assert!(
            failed["digest"].is_null() && failed["name"].is_null(),
            "{failed}"
        );
        assert_eq!(json.last().unwrap()["success"], false);
    }
}

#[test]
fn missing_base_fails_on_the_metadata_step() {
    for daemon in DAEMONS {
        let text = plain(daemon, "missing-base");
        let error = text
            .lines()
            .find(|l| l.contains(" ERROR: "))
            .unwrap_or_else(|| panic!("{daemon}:\n{text}"));
        let n = error.split(' ').next().unwrap();
        assert!(
            text.contains(&format!("{n} [internal] load metadata for")),
            "{daemon}:\n{text}"
        );
        assert!(
            text.contains(" > [internal] load metadata for"),
            "{daemon}:\n{text}"
        );
    }
}

#[test]
fn classic_builds_map_steps_to_blocks() {
    for daemon in DAEMONS {
        let text = plain(daemon, "classic-v1");
        assert!(
            text.starts_with("#1 [1/3] FROM bbase:latest\n"),
            "{daemon}:\n{text}"
        );
        assert!(
            text.contains("#2 [2/3] RUN echo classic-marker-"),
            "{daemon}:\n{text}"
        );
        assert!(text.contains("\n#3 0.000 second\n"), "{daemon}:\n{text}");
        assert!(text.contains("\nSuccessfully built "), "{daemon}");
        assert!(
            !text.contains("Successfully built sha256:"),
            "the daemon said it, ours is left out"
        );
        let Rendered { text, failure, .. } = replay(daemon, "classic-v1-fails", Mode::Plain);
        assert!(
            text.contains(
                " ERROR: The command '/bin/sh -c echo x && exit 4' returned a non-zero code: 4\n"
            ),
            "{daemon}:\n{text}"
        );
        assert_eq!(failure.unwrap().code, Some(4));
    }
}

#[test]
fn registry_pull_shows_byte_progress() {
    let text = plain("docker-28.5", "registry-pull");
    assert!(text.contains(" 41.09MB / 41.09MB 0.1s done\n"), "{text}");
    assert!(text.contains(" 893B / 893B done\n"), "{text}");
    assert!(text.contains(" extracting sha256:"), "{text}");
    let json = json_lines("docker-28.5", "registry-pull");
    assert!(
        json.iter().any(|l| l["type"] == "vertex_progress"
            && l["total"] == 41_085_050
            && l["done"] == true)
    );
}

#[test]
fn rawjson_prints_one_object_per_trace_record() {
    use base64::Engine as _;
    for recording in corpus::all() {
        let (daemon, name) = (&recording.daemon, &recording.name);
        let text = render(&recording.bytes(), Mode::RawJson, CHUNK).text;
        let records = recording.statuses();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), records.len(), "{daemon}/{name}");
        for (line, record) in lines.iter().zip(&records) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let vertexes = v["vertexes"].as_array().map_or(0, Vec::len);
            assert_eq!(vertexes, record.vertexes.len(), "{daemon}/{name}");
            for (j, vx) in record.vertexes.iter().enumerate() {
                assert_eq!(v["vertexes"][j]["digest"], vx.digest.as_str());
                assert_eq!(
                    v["vertexes"][j]["cached"].as_bool().unwrap_or(false),
                    vx.cached
                );
                assert_eq!(v["vertexes"][j]["started"].is_null(), vx.started.is_none());
            }
            for (j, log) in record.logs.iter().enumerate() {
                let data = v["logs"][j]["data"].as_str().unwrap();
                assert_eq!(
                    base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .unwrap(),
                    log.msg.as_ref()
                );
                assert_eq!(v["logs"][j]["stream"], log.stream);
            }
            assert_eq!(
                v["warnings"].as_array().map_or(0, Vec::len),
                record.warnings.len()
            );
        }
    }
}
