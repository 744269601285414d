//! `bktrace report` run as a user runs it, on corpus recordings: every format, `-o`, standard
//! input, errors; and `bktrace build --report` of live builds on the Docker 28 daemon (a
//! successful and a failing one; skipped with `SKIPPED:` outside CI when it is missing).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use workspace_tests::daemon::{base_image, daemon28, docker28_cli, unique_marker};

const BKTRACE: &str = env!("CARGO_BIN_EXE_bktrace");

fn bktrace(args: &[&str]) -> Output {
    Command::new(BKTRACE)
        .args(args)
        .output()
        .expect("run bktrace")
}

fn corpus(daemon: &str, name: &str) -> PathBuf {
    workspace_tests::corpus::get(daemon, name).path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("the report is UTF-8")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bktrace-report-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const FORMATS: [&str; 4] = ["text", "markdown", "json", "chrome-trace"];

/// Checks the output of one format for a build whose critical path ends with `last_step`.
fn check_format(format: &str, out: &str, last_step: &str) {
    match format {
        "text" => {
            assert!(out.starts_with("Build: "), "{out}");
            let path = out
                .split_once("\nCritical path: ")
                .expect("a critical path")
                .1;
            assert!(path.lines().last().unwrap().ends_with(last_step), "{out}");
        }
        "markdown" => {
            assert!(out.starts_with("## Build report\n"), "{out}");
            assert!(out.contains("\n### Critical path: "), "{out}");
            assert!(out.contains("\n| # | Step | Stage | Outcome |"), "{out}");
        }
        "json" => {
            let v: Value = serde_json::from_str(out).expect("one JSON object");
            assert_eq!(v["version"], 1);
            let path = v["critical_path"].as_array().unwrap();
            assert_eq!(path.last().unwrap()["name"], last_step, "{out}");
            assert!(v["critical_path_s"].as_f64().unwrap() > 0.0);
            assert!(!v["timeline"].as_array().unwrap().is_empty());
        }
        "chrome-trace" => {
            let v: Value = serde_json::from_str(out).expect("trace JSON");
            let events = v["traceEvents"].as_array().unwrap();
            assert!(
                events
                    .iter()
                    .any(|e| e["ph"] == "X" && e["name"] == last_step)
            );
            assert!(events.iter().any(|e| e["name"] == "thread_name"));
        }
        _ => unreachable!(),
    }
}

#[test]
fn report_writes_every_format_to_stdout_and_to_a_file() {
    let file = corpus("docker-28.5", "multistage-parallel");
    let file = file.to_str().unwrap();
    let dir = temp_dir("formats");
    for format in FORMATS {
        let stdout = bktrace(&["report", file, "--format", format]);
        assert!(stdout.status.success(), "{}", text(&stdout.stderr));
        assert!(stdout.stderr.is_empty(), "{}", text(&stdout.stderr));
        let out = text(&stdout.stdout);
        check_format(format, &out, "[stage-2 4/4] RUN echo final");

        let path = dir.join(format!("report.{format}"));
        let to_file = bktrace(&[
            "report",
            file,
            "--format",
            format,
            "-o",
            path.to_str().unwrap(),
        ]);
        assert!(to_file.status.success(), "{}", text(&to_file.stderr));
        assert!(to_file.stdout.is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), out, "{format}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn report_reads_standard_input_by_default() {
    let file = corpus("docker-20.10", "multistage-parallel");
    let body = std::fs::read(&file).unwrap();
    for args in [
        &["report", "--format", "json"][..],
        &["report", "-", "--format", "json"],
    ] {
        let mut child = Command::new(BKTRACE)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let body = body.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&body).unwrap());
        let piped = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(piped.status.success(), "{}", text(&piped.stderr));
        let from_file = bktrace(&["report", file.to_str().unwrap(), "--format", "json"]);
        assert_eq!(text(&piped.stdout), text(&from_file.stdout));
    }
}

#[test]
fn the_report_of_a_failed_build_names_the_step_and_exits_0() {
    let file = corpus("docker-28.5", "run-fails");
    let output = bktrace(&["report", file.to_str().unwrap(), "--format", "json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let v: Value = serde_json::from_str(&text(&output.stdout)).unwrap();
    assert_eq!(
        v["failed"]["name"],
        "[2/3] RUN echo before-fail && echo to-stderr >&2 && exit 3"
    );
    assert_eq!(
        v["failed"]["last_lines"],
        serde_json::json!(["before-fail", "to-stderr"])
    );
    assert_eq!(v["steps"]["failed"], 1);
    let md = bktrace(&["report", file.to_str().unwrap(), "--format", "markdown"]);
    let md = text(&md.stdout);
    assert!(
        md.contains("\n```text\nbefore-fail\nto-stderr\n```\n"),
        "{md}"
    );
}

#[test]
fn help_documents_report_and_build_report() {
    let report = text(&bktrace(&["report", "--help"]).stdout);
    for flag in ["[FILE]", "--format <FORMAT>", "-o, --output <OUT>"] {
        assert!(
            report.contains(flag),
            "report --help lacks {flag}:\n{report}"
        );
    }
    for format in FORMATS {
        assert!(report.contains(&format!("- {format}:")), "{report}");
    }
    let build = text(&bktrace(&["build", "--help"]).stdout);
    assert!(build.contains("--report <FORMAT=PATH>"), "{build}");
    let top = text(&bktrace(&["--help"]).stdout);
    assert!(top.contains("\n  report "), "{top}");
}

#[test]
fn report_errors_are_one_line() {
    let output = bktrace(&["report", "--format", "pdf", "x"]);
    assert_eq!(output.status.code(), Some(2));
    let output = bktrace(&["report", "/nonexistent/recording.ndjson"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr).lines().collect::<Vec<_>>(),
        [
            "error: cannot read /nonexistent/recording.ndjson: No such file or directory (os error 2)"
        ]
    );
    let file = corpus("docker-28.5", "basic-cached");
    let output = bktrace(&[
        "report",
        file.to_str().unwrap(),
        "-o",
        "/nonexistent/dir/report.txt",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot write the report /nonexistent/dir/report.txt: "),
        "{stderr}"
    );
    let output = bktrace(&["build", "--report", "pdf=x", "."]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("expected FORMAT=PATH, FORMAT one of text, markdown, json, chrome-trace"),
        "{stderr}"
    );
}

/// bktrace talking to the Docker 28 daemon.
fn bktrace28() -> Command {
    let mut command = Command::new(BKTRACE);
    command
        .env(
            "DOCKER_HOST",
            std::env::var("BKTRACE_DOCKER28_HOST").expect("checked by daemon28()"),
        )
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    command
}

/// A build context directory holding `dockerfile`.
fn context(marker: &str, dockerfile: &str) -> PathBuf {
    let dir = temp_dir(marker);
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    dir
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `build --report` writes each report when the build ends: the RUN steps are on the
/// critical path, in order; a failed build's reports name the failing step and its output.
#[tokio::test(flavor = "multi_thread")]
async fn build_writes_its_reports_when_it_ends() {
    let Some(daemon) = daemon28().await else {
        return;
    };
    let base = base_image(&daemon).await;
    let marker = unique_marker("report");
    let dir = context(
        &marker,
        &format!(
            "FROM {base}\nRUN echo {marker}-one && sleep 0.3\nRUN echo {marker}-two && sleep 0.2\n"
        ),
    );
    let (json, md, trace) = (
        dir.join("r.json"),
        dir.join("r.md"),
        dir.join("r.trace.json"),
    );
    let output = bktrace28()
        .args(["build", "--progress", "plain", "--no-cache"])
        .arg(format!("--report=json={}", json.display()))
        .arg(format!("--report=markdown={}", md.display()))
        .arg(format!("--report=chrome-trace={}", trace.display()))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    // The untagged image this made goes again.
    let stdout = text(&output.stdout);
    let image = stdout
        .split_once("writing image ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no image in the output:\n{stdout}"));
    if let Some(mut cli) = docker28_cli() {
        let removed = cli.args(["image", "rm", image]).output().unwrap();
        assert!(removed.status.success(), "{}", text(&removed.stderr));
    }
    let report = read_json(&json);
    let path: Vec<&str> = report["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let one = format!("[2/3] RUN echo {marker}-one && sleep 0.3");
    let two = format!("[3/3] RUN echo {marker}-two && sleep 0.2");
    let at = |name: &str| path.iter().position(|p| *p == name);
    assert!(at(&one).is_some() && at(&one) < at(&two), "{path:?}");
    assert!(
        report["critical_path_s"].as_f64().unwrap() >= 0.5,
        "{report}"
    );
    assert_eq!(report["steps"]["failed"], 0);
    assert!(report["failed"].is_null());
    let timeline = report["timeline"].as_array().unwrap();
    let run = timeline.iter().find(|s| s["name"] == one.as_str()).unwrap();
    assert_eq!(run["outcome"], "done");
    assert!(run["duration_s"].as_f64().unwrap() >= 0.3);
    check_format("markdown", &std::fs::read_to_string(&md).unwrap(), &two);
    check_format(
        "chrome-trace",
        &std::fs::read_to_string(&trace).unwrap(),
        &two,
    );

    // A failing build: exit 1, and the reports are written all the same.
    let failing = unique_marker("report-fails");
    let dir2 = context(
        &failing,
        &format!("FROM {base}\nRUN echo {failing}-before && exit 3\nRUN echo never\n"),
    );
    let json2 = dir2.join("r.json");
    let output = bktrace28()
        .args(["build", "--progress", "plain"])
        .arg("--report")
        .arg(format!("json={}", json2.display()))
        .arg(&dir2)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let report = read_json(&json2);
    assert_eq!(
        report["failed"]["name"],
        format!("[2/3] RUN echo {failing}-before && exit 3")
    );
    assert!(
        report["failed"]["error"]
            .as_str()
            .unwrap()
            .ends_with("exit code: 3"),
        "{report}"
    );
    assert_eq!(
        report["failed"]["last_lines"],
        serde_json::json!([format!("{failing}-before")])
    );
    assert_eq!(report["steps"]["pending"], 1, "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}
