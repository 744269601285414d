//! `bktrace build` when what surrounds it goes away: the reader of its output (issue 15).
//! Live, against the CI daemon (`workspace_tests::daemon`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use workspace_tests::daemon::{base_image, daemon, unique_marker};

fn context(name: &str, dockerfile: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bktrace-interrupt-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    dir
}

/// Reads `out` up to and including the first line that contains `text`, and returns that
/// line; panics if it ends first.
fn read_until_line_with(out: &mut impl BufRead, text: &str) -> String {
    let mut line = String::new();
    while !line.contains(text) {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "bktrace ended before printing {text:?}"
        );
    }
    line
}

/// Sends `signal` (`-INT`, `-TERM`) to `child` with kill(1).
fn send(child: &std::process::Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// The JSON lines of `--progress json` output after a signal, which must end with a
/// `build_finished` that is no success.
fn json_ending_unsuccessfully(rest: &str) -> Vec<serde_json::Value> {
    let lines: Vec<serde_json::Value> = rest
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let last = lines.last().expect("lines after the signal");
    assert_eq!(last["type"], "build_finished", "{rest}");
    assert_eq!(last["success"], false, "{rest}");
    lines
}

/// `bktrace build … | head -1`: the build was not seen to succeed, so the status is not 0 but
/// 141, as for a process killed by SIGPIPE, and nothing is printed on stderr.
#[tokio::test]
async fn a_build_whose_reader_goes_away_is_no_success() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let marker = unique_marker("pipe");
    // About 400 KB of log lines (BuildKit passes 200 KiB/s of them), far more than a pipe
    // holds, then a step that would run long: the reader has gone before the build ends.
    let dir = context(
        "pipe",
        &format!(
            "FROM {base}\nRUN echo {marker} && i=0; while [ $i -lt 10000 ]; do \
             echo line-$i-0123456789abcdef0123456789; i=$((i+1)); done; sleep 60\n"
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["build", "--progress", "plain", "--no-cache"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bktrace");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The context upload's block (`#0`) or the daemon's first.
    assert!(
        first.starts_with("#0 ") || first.starts_with("#1 "),
        "{first}"
    );
    // The read end of the pipe is closed here; bktrace's next writes fail.
    let output = child.wait_with_output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        output.status.code(),
        Some(141),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `--record` is written through: a build interrupted by a signal leaves every chunk received
/// before it in the recording, which replays (issue 15, item 1).
#[tokio::test]
async fn an_interrupted_build_leaves_its_recording() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let marker = unique_marker("record");
    let dir = context(
        "record",
        &format!("FROM {base}\nRUN echo {marker}-start && sleep 120\n"),
    );
    let record = dir.join("build.ndjson");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["build", "--progress", "plain", "--no-cache", "--record"])
        .arg(&record)
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bktrace");
    // The step's first line is on stdout once it came in a chunk of the body, and so (written
    // through) in the recording.
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let line = read_until_line_with(&mut out, &format!("{marker}-start"));
    // The step's block number, from `#N 0.123 <marker>-start`.
    let number = line.split(' ').next().unwrap().to_string();
    let recorded = std::fs::read(&record).unwrap();
    send(&child, "-INT");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    // Ctrl-C ends the build with its output complete: the running step canceled as BuildKit's
    // printer shows a canceled vertex (issue 15, item 2), the reason on stderr as buildx ends
    // it (`… context canceled`), the status of a process SIGINT ended.
    assert!(
        rest.lines().any(|l| l == format!("{number} CANCELED")),
        "{rest}"
    );
    assert!(!rest.contains(&format!("{number} ...")), "{rest}");
    assert_eq!(output.status.code(), Some(130));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: interrupted by SIGINT: context canceled\n"
    );
    // Everything up to the step's line was in the file before the signal, and stays there.
    let after = std::fs::read(&record).unwrap();
    assert!(after.starts_with(&recorded) && !recorded.is_empty());
    let replay = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["replay", "--progress", "plain"])
        .arg(&record)
        .output()
        .unwrap();
    let replayed = String::from_utf8_lossy(&replay.stdout);
    assert!(replayed.contains(&format!("{marker}-start")), "{replayed}");
    // It ends mid-build: no success.
    assert_eq!(replay.status.code(), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SIGTERM in JSON mode: the output still ends with `build_finished`, not a success, as the
/// README promises (issue 15, item 2).
#[tokio::test]
async fn a_terminated_build_still_ends_its_json_with_build_finished() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let marker = unique_marker("term");
    let dir = context(
        "term",
        &format!("FROM {base}\nRUN echo {marker}-start && sleep 120\n"),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["build", "--progress", "json", "--no-cache"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bktrace");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    read_until_line_with(&mut out, &format!("{marker}-start\""));
    send(&child, "-TERM");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143));
    let lines = json_ending_unsuccessfully(&rest);
    // The running step is canceled, as BuildKit reports a step the client's cancellation
    // stopped.
    let canceled = lines.iter().find(|v| {
        v["type"] == "vertex_completed"
            && v["outcome"] == "canceled"
            && v["name"].as_str().unwrap_or_default().contains(&marker)
    });
    assert!(canceled.is_some(), "{rest}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: interrupted by SIGTERM: context canceled\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SIGINT while the context still uploads (the classic daemon answers only once the whole tar
/// is in, so the build has not started): the output still ends with `build_finished`, not a
/// success, and the status is 130. A sparse 512 MiB file makes the upload last; if it ended
/// before the signal, the build is interrupted as any other, with the same output.
#[tokio::test]
async fn an_interrupt_during_the_upload_still_ends_the_output() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let marker = unique_marker("upload");
    let dir = context(
        "upload",
        &format!("FROM {base}\nCOPY big.bin /\nRUN echo {marker} && sleep 120\n"),
    );
    std::fs::File::create(dir.join("big.bin"))
        .unwrap()
        .set_len(512 << 20)
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["build", "--classic", "--progress", "json", "--no-cache"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bktrace");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let first = read_until_line_with(&mut out, "\"context_upload\"");
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    send(&child, "-INT");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{rest}");
    json_ending_unsuccessfully(&rest);
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: interrupted by SIGINT: context canceled\n"
    );
    // The upload was under way when the first line was read.
    assert_eq!(first["done"], false, "{first} then {rest}");
    std::fs::remove_dir_all(&dir).unwrap();
}
