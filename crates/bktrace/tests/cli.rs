//! The `bktrace` binary, run as a user runs it (stdout is not a terminal here, and
//! `GITHUB_ACTIONS` is removed, so `auto` is `plain`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bktrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("run bktrace")
}

/// bktrace as a GitHub Actions job runs it: `GITHUB_ACTIONS=true`, stdout a pipe.
fn bktrace_in_github_actions(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(args)
        .env("GITHUB_ACTIONS", "true")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .expect("run bktrace")
}

fn corpus(daemon: &str, name: &str) -> PathBuf {
    workspace_tests::corpus::get(daemon, name).path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// stderr holds exactly one line, starting with `prefix`.
fn assert_one_line_error(output: &Output, prefix: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr:?}");
    assert!(stderr.starts_with(prefix), "stderr: {stderr:?}");
    assert!(stderr.ends_with('\n'));
}

#[test]
fn help_documents_every_command_and_flag() {
    let top = bktrace(&["--help"]);
    assert!(top.status.success());
    let top = text(&top.stdout);
    for command in ["build", "replay", "demo", "images"] {
        assert!(top.contains(command), "{top}");
    }
    let build = bktrace(&["build", "--help"]);
    assert!(build.status.success());
    let build = text(&build.stdout);
    for flag in [
        "[DIR]",
        "-f, --file <FILE>",
        "-t, --tag <NAME[:TAG]>",
        "--build-arg <KEY=VALUE>",
        "--target <STAGE>",
        "--no-cache",
        "--pull",
        "--classic",
        "--label <KEY=VALUE>",
        "--platform <OS/ARCH>",
        "--progress <MODE>",
        "--record <FILE>",
    ] {
        assert!(build.contains(flag), "build --help lacks {flag}:\n{build}");
    }
    for mode in ["auto", "plain", "tty", "json", "rawjson", "github"] {
        assert!(build.contains(mode), "build --help lacks {mode}:\n{build}");
    }
    let replay = text(&bktrace(&["replay", "--help"]).stdout);
    assert!(
        replay.contains("<FILE>") && replay.contains("--progress <MODE>"),
        "{replay}"
    );
    assert!(replay.contains("`-` for standard input"), "{replay}");
    let demo = text(&bktrace(&["demo", "--help"]).stdout);
    assert!(demo.contains("--progress <MODE>"), "{demo}");
    for command in ["watch", "history"] {
        assert!(top.contains(command), "{top}");
    }
    let watch = text(&bktrace(&["watch", "--help"]).stdout);
    for flag in [
        "--since <DURATION>",
        "--filter <FILTER>",
        "--count <N>",
        "--progress <MODE>",
    ] {
        assert!(watch.contains(flag), "watch --help lacks {flag}:\n{watch}");
    }
    let ls = text(&bktrace(&["history", "ls", "--help"]).stdout);
    assert!(
        ls.contains("--json") && ls.contains("--filter <FILTER>"),
        "{ls}"
    );
    let logs = text(&bktrace(&["history", "logs", "--help"]).stdout);
    assert!(
        logs.contains("<REF>") && logs.contains("--follow"),
        "{logs}"
    );
}

/// `BUILDKIT_HOST` points `watch` and `history` at a standalone buildkitd; an address that
/// cannot be used, or where nothing listens, is one line and status 1.
#[test]
fn buildkit_host_errors_are_one_line() {
    let run = |host: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bktrace"))
            .args(args)
            .env("BUILDKIT_HOST", host)
            .output()
            .expect("run bktrace")
    };
    let output = run("docker-container://buildkitd", &["history", "ls"]);
    assert_eq!(output.status.code(), Some(1));
    assert_one_line_error(
        &output,
        "error: cannot use BUILDKIT_HOST: unsupported BuildKit address",
    );
    // Port 1 on loopback: nothing listens there.
    let output = run("tcp://127.0.0.1:1", &["watch"]);
    assert_eq!(output.status.code(), Some(1));
    assert_one_line_error(&output, "error: cannot connect to tcp://127.0.0.1:1: ");
}

#[test]
fn a_bad_duration_for_since_is_an_argument_error() {
    let output = bktrace(&["watch", "--since", "soon"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("invalid duration"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_bad_flag_gives_one_line_and_status_2() {
    let output = bktrace(&["replay", "--bogus", "x"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert_one_line_error(&output, "error: unexpected argument '--bogus' found");
    let output = bktrace(&["replay", "x", "--progress", "fancy"]);
    assert_eq!(output.status.code(), Some(2));
    assert_one_line_error(
        &output,
        "error: invalid value 'fancy' for '--progress <MODE>'",
    );
    let output = bktrace(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    assert_one_line_error(&output, "error: unrecognized subcommand 'frobnicate'");
}

#[test]
fn an_unreadable_file_gives_one_line_and_status_1() {
    let output = bktrace(&["replay", "/nonexistent/recording.ndjson"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert_one_line_error(
        &output,
        "error: cannot read /nonexistent/recording.ndjson: ",
    );
    // A directory opens but cannot be read.
    let output = bktrace(&["replay", env!("CARGO_MANIFEST_DIR")]);
    assert_eq!(output.status.code(), Some(1));
    assert_one_line_error(&output, "error: reading the recording failed: ");
}

#[test]
fn replaying_a_failed_build_exits_1_with_the_reason() {
    let file = corpus("docker-28.5", "run-fails");
    let output = bktrace(&["replay", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert_one_line_error(
        &output,
        "error: build failed: process \"/bin/sh -c echo before-fail && echo to-stderr >&2 && exit 3\" did not complete successfully: exit code: 3",
    );
    let stdout = text(&output.stdout);
    assert!(stdout.contains(" ERROR: process "), "{stdout}");
    assert!(stdout.contains(" > [2/3] RUN echo before-fail"), "{stdout}");
}

#[test]
fn replaying_a_successful_build_exits_0() {
    let file = corpus("docker-28.5", "basic-nocache");
    let output = bktrace(&["replay", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with("#1 [internal] load remote build context\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\nSuccessfully built sha256:"), "{stdout}");
}

/// The classic builder's text has no times: a replay says why it shows none (issue 15,
/// item 11).
#[test]
fn replaying_a_classic_build_says_it_has_no_times() {
    let file = corpus("docker-20.10", "classic-v1");
    let output = bktrace(&["replay", file.to_str().unwrap(), "--progress", "json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("\"started\":\"1970-01-01T00:00:00Z\""));
    assert_eq!(
        text(&output.stderr),
        "note: the classic builder's output carries no times, so this replay shows none \
         (every step at 1970-01-01, 0.0s)\n"
    );
    // A BuildKit body has its times: no note.
    let file = corpus("docker-20.10", "basic-nocache");
    let output = bktrace(&["replay", file.to_str().unwrap()]);
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
}

#[test]
fn replaying_a_build_the_client_left_exits_1() {
    let file = corpus("docker-26.1", "client-cancel");
    let output = bktrace(&["replay", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert_one_line_error(&output, "error: the build did not finish: ");
    assert!(text(&output.stderr).contains("RUN for i in 1 2 3"));
}

/// Runs `bktrace replay -` with `input` on stdin, `--progress plain`.
fn replay_stdin(input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["replay", "-", "--progress", "plain"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bktrace");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().expect("bktrace ends")
}

/// Inputs that hold no build exit 1 and say so; the warnings about their lines print no raw
/// control characters, and there are at most 20 of them plus a count (issue 15, item 9).
#[test]
fn replaying_what_is_not_a_build_exits_1_and_escapes_what_it_quotes() {
    for input in [&b""[..], b"{\"stream\":\"hello\"}\r\n", b"\n\n"] {
        let output = replay_stdin(input);
        assert_eq!(output.status.code(), Some(1), "{input:?}");
        assert_one_line_error(&output, "error: no build records found in standard input");
    }
    let file = temp_dir("not-a-build").join("terminal\x1b[2J.txt");
    let mut body = b"{\"a\":1}\r\n".to_vec();
    for i in 0..30 {
        body.extend_from_slice(format!("\x1b[31mnot json {i}\x1b[0m\x07\r\n").as_bytes());
    }
    std::fs::write(&file, &body).unwrap();
    let output = bktrace(&["replay", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains('\x1b') && !stderr.contains('\x07'),
        "{stderr:?}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 22, "{stderr}");
    assert!(
        lines[0].starts_with("warning: line 2: not a JSON message"),
        "{stderr}"
    );
    assert!(
        lines[0].ends_with(": \\x1b[31mnot json 0\\x1b[0m\\x07"),
        "{stderr}"
    );
    assert_eq!(
        lines[20],
        "warning: 10 more lines of the body could not be used"
    );
    assert!(
        lines[21].starts_with("error: no build records found in "),
        "{stderr}"
    );
    assert!(lines[21].ends_with("terminal\\x1b[2J.txt"), "{stderr}");
}

/// A reader that goes away (`| head -1`) is no success: status 141, as `cat` gets from
/// SIGPIPE, and nothing on stderr (issue 15, item 3).
#[test]
fn a_reader_that_goes_away_is_no_success() {
    use std::io::{BufRead as _, BufReader};
    let file = corpus("docker-28.5", "biglog");
    // Its JSON is over a megabyte: far more than a pipe holds, so the writes after the reader
    // has gone must fail.
    let mut child = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["replay", file.to_str().unwrap(), "--progress", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bktrace");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("{\"type\":"), "{first}");
    // The reader (and with it the pipe's read end) is dropped here.
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(141));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
}

#[test]
fn replay_reads_standard_input() {
    let file = corpus("docker-20.10", "multistage-parallel");
    let body = std::fs::read(&file).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["replay", "-", "--progress", "plain"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&body).unwrap());
    let piped = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    let from_file = bktrace(&["replay", file.to_str().unwrap()]);
    assert_eq!(text(&piped.stdout), text(&from_file.stdout));
    assert!(text(&piped.stdout).contains(" b-5\n"));
}

#[test]
fn json_and_rawjson_modes_write_json_lines() {
    let file = corpus("docker-28.5", "warnings");
    let json = bktrace(&["replay", file.to_str().unwrap(), "--progress", "json"]);
    assert!(json.status.success());
    let lines: Vec<serde_json::Value> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.last().unwrap()["type"], "build_finished");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["type"] == "vertex_warning")
            .count(),
        3
    );

    let raw = bktrace(&["replay", file.to_str().unwrap(), "--progress", "rawjson"]);
    assert!(raw.status.success());
    let records: Vec<serde_json::Value> = text(&raw.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let trace_lines = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"moby.buildkit.trace\""))
        .count();
    assert_eq!(records.len(), trace_lines);
    // The lint warnings, with buildx's field names and base64 `short`.
    let warning = records
        .iter()
        .find_map(|r| r["warnings"].as_array().map(|w| w[0].clone()))
        .expect("a record with warnings");
    assert_eq!(warning["level"], 1);
    assert!(warning["short"].as_str().is_some());
    assert_eq!(warning["sourceInfo"]["filename"], "Dockerfile");
    assert!(warning["range"][0]["start"]["line"].as_i64().unwrap() > 0);
}

#[test]
fn demo_replays_a_bundled_build() {
    let output = bktrace(&["demo"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with("#1 "), "{stdout}");
    assert!(
        stdout.contains(" a-1\n") && stdout.contains(" b-1\n"),
        "{stdout}"
    );
    let json = bktrace(&["demo", "--progress", "json"]);
    assert!(json.status.success());
    assert!(
        text(&json.stdout)
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
}

#[test]
fn build_without_a_daemon_gives_one_line() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bktrace-cli-build");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args([
            "build",
            dir.to_str().unwrap(),
            "-t",
            "x:y",
            "--progress",
            "plain",
        ])
        .env("DOCKER_HOST", "unix:///nonexistent/bktrace/docker.sock")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    assert_one_line_error(
        &output,
        "error: cannot connect to the Docker daemon at unix:///nonexistent/bktrace/docker.sock: ",
    );
}

/// `bktrace build` of a tiny context with the daemon's environment replaced by `env`.
fn build_with_env(name: &str, env: &[(&str, &str)]) -> Output {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bktrace-cli-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_bktrace"));
    command.args(["build", dir.to_str().unwrap(), "--progress", "plain"]);
    for variable in [
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_CONFIG",
        "DOCKER_TLS",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
    ] {
        command.env_remove(variable);
    }
    command.envs(env.iter().copied()).output().unwrap()
}

#[test]
fn build_with_an_unknown_context_gives_one_line() {
    let config = temp_dir("no-context");
    let output = build_with_env(
        "context",
        &[
            ("DOCKER_CONFIG", config.to_str().unwrap()),
            ("DOCKER_CONTEXT", "nope"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_one_line_error(
        &output,
        "error: cannot tell which Docker daemon to use: context \"nope\" does not exist\n",
    );
}

#[test]
fn build_with_tls_and_no_ca_names_the_file() {
    let certs = temp_dir("no-certs");
    let output = build_with_env(
        "tls",
        &[
            ("DOCKER_HOST", "tcp://127.0.0.1:1"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", certs.to_str().unwrap()),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_one_line_error(
        &output,
        &format!(
            "error: cannot tell which Docker daemon to use: verifying the Docker daemon's \
             certificate needs {}, which does not exist\n",
            certs.join("ca.pem").display()
        ),
    );
}

#[test]
fn build_of_a_missing_directory_gives_one_line() {
    let output = bktrace(&["build", "/nonexistent/context"]);
    assert_eq!(output.status.code(), Some(1));
    assert_one_line_error(
        &output,
        "error: the build context directory /nonexistent/context does not exist",
    );
    let output = bktrace(&["build", ".", "--label", "novalue"]);
    assert_eq!(output.status.code(), Some(1));
    assert_one_line_error(
        &output,
        "error: invalid --label \"novalue\": expected KEY=VALUE",
    );
}

/// A missing `-f` file, `-f` naming a directory and a missing context directory each get
/// their own line, planned before any daemon is asked (issue 15, item 5).
#[test]
fn dockerfile_errors_say_what_is_wrong() {
    let dir = temp_dir("dockerfile-errors");
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    let missing = dir.join("missing.Dockerfile");
    let output = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["build", "-f"])
        .arg(&missing)
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_one_line_error(
        &output,
        &format!(
            "error: cannot locate the Dockerfile {}: No such file or directory",
            missing.display()
        ),
    );
    // The same outside the context: not "outside the context", but missing.
    let outside = std::env::temp_dir().join("bktrace-no-such.Dockerfile");
    let output = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["build", "-f"])
        .arg(&outside)
        .arg(&dir)
        .output()
        .unwrap();
    assert_one_line_error(
        &output,
        &format!(
            "error: cannot locate the Dockerfile {}: ",
            outside.display()
        ),
    );
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["build", "-f"])
        .arg(&sub)
        .arg(&dir)
        .output()
        .unwrap();
    assert_one_line_error(
        &output,
        &format!(
            "error: the Dockerfile path {} is a directory, not a file",
            sub.canonicalize().unwrap().display()
        ),
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bktrace-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// By default only what the default build (the last stage) reaches, as BuildKit loads it;
/// `--target` another stage's; `--all-stages` everything (issue 15, item 11).
#[test]
fn images_lists_what_the_target_needs() {
    let dir = temp_dir("images-target");
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM alpine AS Test\nRUN true\nFROM golang AS build\nFROM scratch\nCOPY --from=build /a /a\n",
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let refs = |args: &[&str]| {
        let out = bktrace(&[&["images", d][..], args].concat());
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(refs(&[]), ["golang"]);
    assert_eq!(refs(&["--target", "test"]), ["alpine"]);
    assert_eq!(refs(&["--all-stages"]), ["alpine", "golang"]);
    let out = bktrace(&["images", d, "--target", "lint"]);
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_error(&out, "error: target stage \"lint\" could not be found");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn images_lists_every_external_image_with_line_kind_and_stages() {
    let dir = temp_dir("images");
    std::fs::write(
        dir.join("Dockerfile"),
        "# syntax=docker/dockerfile:1\nARG GO=1.22\nFROM golang:${GO} AS build\n\
         RUN --mount=type=cache,from=tools,target=/x true\nFROM scratch\n\
         COPY --from=build /a /a\nCOPY --from=nginx:1 /etc/nginx /n\n",
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let out = bktrace(&["images", d, "--build-arg", "GO=1.23"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "docker/dockerfile:1\tline 1\tsyntax\t-\n\
         golang:1.23\tline 3\tFROM\tbuild,1\n\
         tools\tline 4\tRUN --mount from\tbuild,1\n\
         nginx:1\tline 7\tCOPY --from\t1\n"
    );
    let out = bktrace(&["images", d, "--normalize", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["syntax"]["reference"], "docker.io/docker/dockerfile:1");
    let refs: Vec<&str> = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap())
        .collect();
    assert_eq!(
        refs,
        [
            "docker.io/library/golang:1.22",
            "docker.io/library/tools:latest",
            "docker.io/library/nginx:1"
        ]
    );
    assert_eq!(doc["images"][2]["uses"][0]["line"], 7);

    std::fs::write(dir.join("Bad.Dockerfile"), "FROM busybox\nFROM\n").unwrap();
    let bad = dir.join("Bad.Dockerfile");
    let out = bktrace(&["images", d, "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_error(&out, "error: ");
    assert!(
        text(&out.stderr).contains("line 2: FROM needs an image"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Under GitHub Actions (`GITHUB_ACTIONS=true`) with stdout not a terminal, `auto` is the
/// GitHub mode: groups, the build's output between stop-commands and a fresh random token,
/// and the failure annotated; `--progress plain` still means plain.
#[test]
fn auto_is_the_github_mode_under_github_actions() {
    let file = corpus("docker-28.5", "run-fails");
    let file = file.to_str().unwrap();
    let output = bktrace_in_github_actions(&["replay", file]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with("::group::#1 [internal] load remote build context\n::stop-commands::"),
        "{stdout}"
    );
    let token = |stdout: &str| {
        let line = stdout.lines().nth(1).unwrap();
        line.strip_prefix("::stop-commands::").unwrap().to_string()
    };
    let first = token(&stdout);
    assert_eq!(first.len(), 32, "{first}");
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()), "{first}");
    assert!(
        stdout.contains(&format!("\n::{first}::\n::endgroup::\n")),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(
            "::error title=[2/3] RUN echo before-fail && echo to-stderr >&2 && exit 3::process \"/bin/sh -c echo before-fail && echo to-stderr >&2 && exit 3\" did not complete successfully: exit code: 3\n"
        ),
        "{stdout}"
    );
    // Each run draws its own token.
    let again = bktrace_in_github_actions(&["replay", file]);
    assert_ne!(token(&text(&again.stdout)), first);
    // The verdict is on stderr as in every mode.
    assert_one_line_error(&output, "error: build failed: process ");

    let plain = bktrace_in_github_actions(&["replay", file, "--progress", "plain"]);
    assert!(
        !text(&plain.stdout).contains("::"),
        "{}",
        text(&plain.stdout)
    );
    let outside = bktrace(&["replay", file]);
    assert!(!text(&outside.stdout).contains("::group::"));
}

/// After the plain output, the warnings summary as `docker --debug buildx build` prints it,
/// each warning with its Dockerfile lines, on stderr; the JSON modes leave it out.
#[test]
fn a_replay_with_warnings_ends_with_the_buildx_warnings_summary() {
    let file = corpus("docker-28.5", "warnings");
    let file = file.to_str().unwrap();
    let output = bktrace(&["replay", file, "--progress", "plain"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(
            "\n 3 warnings found:\n - NoEmptyContinuation: Empty continuation line (line 4)\n"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "Dockerfile:5\n--------------------\n   3 |     \n   4 |         && echo b\n   5 | >>> from bbase:latest as Second\n"
        ),
        "{stderr}"
    );
    let json = bktrace(&["replay", file, "--progress", "json"]);
    assert!(json.stderr.is_empty(), "{}", text(&json.stderr));
}
