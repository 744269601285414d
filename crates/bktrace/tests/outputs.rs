//! `bktrace build --output …` as a user runs it, against Docker 20.10 (the default socket) and
//! Docker 28 (`BKTRACE_DOCKER28_HOST`): `-o DIR` writes the files, `type=tar,dest=-` writes
//! exactly the archive to stdout and the progress to stderr, and a bad `--output` is one clear
//! line. Without a daemon each test skips visibly; under `CI=true` it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use docker_build::connection::Daemon;
use workspace_tests::daemon::{base_image, daemon, daemon28, unique_marker};
use workspace_tests::outputs::{dockerfile, expected, read_dir, read_tar};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_marker(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `bktrace build DIR ARGS…` on `daemon`, stdout and stderr captured (not terminals).
fn bktrace_build(daemon: &Daemon, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["build", dir.to_str().unwrap()])
        .args(args)
        .env("DOCKER_HOST", daemon.host().to_string())
        .env_remove("DOCKER_CONTEXT")
        .env_remove("GITHUB_ACTIONS")
        .stdin(Stdio::null())
        .output()
        .expect("run bktrace")
}

/// The JSON lines of `text` (stderr also holds bktrace's own lines, e.g. `build ref: …`).
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

async fn tar_to_stdout_is_exactly_the_archive(daemon: Daemon) {
    let base = base_image(&daemon).await;
    let marker = unique_marker("stdout-output");
    let dir = temp_dir("bktrace-tar-stdout");
    std::fs::write(dir.join("Dockerfile"), dockerfile(&base, &marker)).unwrap();

    // Plain progress: on stderr, stdout the archive alone.
    let output = bktrace_build(
        &daemon,
        &dir,
        &["--progress", "plain", "--output", "type=tar,dest=-"],
    );
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(read_tar(&output.stdout), expected(&marker), "{stderr}");
    assert!(stderr.contains("COPY --from=files /out/ /"), "{stderr}");
    assert!(stderr.contains("DONE"), "{stderr}");

    // JSON progress with `-o -`: the events on stderr, ending in a successful build_finished.
    let output = bktrace_build(&daemon, &dir, &["--progress", "json", "-o", "-"]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(read_tar(&output.stdout), expected(&marker));
    let events = json_lines(&stderr);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "build_finished", "{stderr}");
    assert_eq!(last["success"], true, "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker20_tar_to_stdout_is_exactly_the_archive() {
    let Some(daemon) = daemon().await else { return };
    tar_to_stdout_is_exactly_the_archive(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_tar_to_stdout_is_exactly_the_archive() {
    let Some(daemon) = daemon28().await else {
        return;
    };
    tar_to_stdout_is_exactly_the_archive(daemon).await;
}

async fn a_short_output_is_a_local_folder(daemon: Daemon) {
    let base = base_image(&daemon).await;
    let marker = unique_marker("short-output");
    let dir = temp_dir("bktrace-local");
    std::fs::write(dir.join("Dockerfile"), dockerfile(&base, &marker)).unwrap();
    let dest = dir.join("out");
    let output = bktrace_build(
        &daemon,
        &dir,
        &["--progress", "json", "-o", dest.to_str().unwrap()],
    );
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    let events = json_lines(&stdout);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "build_finished", "{stdout}");
    assert_eq!(last["success"], true, "{stdout}");
    assert_eq!(read_dir(&dest), expected(&marker));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker20_a_short_output_is_a_local_folder() {
    let Some(daemon) = daemon().await else { return };
    a_short_output_is_a_local_folder(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_a_short_output_is_a_local_folder() {
    let Some(daemon) = daemon28().await else {
        return;
    };
    a_short_output_is_a_local_folder(daemon).await;
}

#[test]
fn a_bad_output_is_one_clear_line() {
    let dir = temp_dir("bktrace-bad-output");
    let cases = [
        (
            "type=image,push=true",
            "unsupported key \"push\" in output field \"push=true\": expected type= and dest=",
        ),
        (
            "type=registry",
            "unsupported output type \"registry\": expected local or tar",
        ),
        ("type=tar", "the tar output needs dest="),
    ];
    for (spec, message) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_bktrace"))
            .args(["build", dir.to_str().unwrap(), "--output", spec])
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{spec}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(message), "{spec}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_classic_builder_refuses_an_output_in_one_line() {
    let Some(daemon) = daemon().await else { return };
    let dir = temp_dir("bktrace-classic-output");
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    let output = bktrace_build(&daemon, &dir, &["--classic", "-o", "out"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "error: build outputs need a BuildKit session, but the classic builder serves none\n"
    );
    assert!(!dir.join("out").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
