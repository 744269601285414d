//! `bktrace replay` of the recordings other than a `POST /build` body: a BuildKit history
//! logs blob and buildx rawjson output, told apart by their first bytes, and the one-line
//! errors for damaged or unknown input. Run as a user runs the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use workspace_tests::corpus;

fn bktrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("run bktrace")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "bktrace-replay-formats-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A history logs blob of the records: each a 4-byte little-endian length and the protobuf.
fn blob(records: &[bytes::Bytes]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&u32::try_from(r.len()).unwrap().to_le_bytes());
        out.extend_from_slice(r);
    }
    out
}

/// The vertex events of a `--progress json` replay (what the records alone say: the body's
/// image id, daemon text and error line are not in a blob).
fn vertex_events(output: &Output) -> Vec<String> {
    text(&output.stdout)
        .lines()
        .filter(|l| l.starts_with("{\"type\":\"vertex_"))
        .map(str::to_owned)
        .collect()
}

fn replay(file: &Path, progress: &str) -> Output {
    bktrace(&["replay", file.to_str().unwrap(), "--progress", progress])
}

/// stderr holds exactly one line, starting with `prefix`.
fn assert_one_line_error(output: &Output, prefix: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr:?}");
    assert!(stderr.starts_with(prefix), "stderr: {stderr:?}");
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr:?}");
}

#[test]
fn a_blob_of_every_recording_replays_to_the_events_of_its_body() {
    let dir = temp_dir("blob");
    for rec in corpus::buildkit() {
        let path = dir.join(format!("{}-{}.blob", rec.daemon, rec.name));
        std::fs::write(&path, blob(&rec.trace_records())).unwrap();
        let from_blob = replay(&path, "json");
        let from_body = replay(&rec.path, "json");
        let events = vertex_events(&from_blob);
        assert!(!events.is_empty(), "{}", rec.id());
        assert_eq!(events, vertex_events(&from_body), "{}", rec.id());
        // The exit status follows the steps: a failed or interrupted step fails the replay.
        // A syntax error fails no step: only the body's error line tells of it.
        let expect = from_body.status.success() || rec.name == "syntax-error";
        assert_eq!(
            from_blob.status.success(),
            expect,
            "{}: {}",
            rec.id(),
            text(&from_blob.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rawjson_output_replays_to_the_same_events_and_the_same_rawjson() {
    let dir = temp_dir("rawjson");
    for rec in corpus::buildkit() {
        let raw = replay(&rec.path, "rawjson");
        let path = dir.join(format!("{}-{}.rawjson", rec.daemon, rec.name));
        std::fs::write(&path, &raw.stdout).unwrap();
        let again = replay(&path, "rawjson");
        assert_eq!(text(&again.stdout), text(&raw.stdout), "{}", rec.id());
        assert_eq!(
            vertex_events(&replay(&path, "json")),
            vertex_events(&replay(&rec.path, "json")),
            "{}",
            rec.id()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_blob_replays_in_plain_from_standard_input() {
    let rec = corpus::get("docker-28.5", "basic-nocache");
    let dir = temp_dir("stdin");
    let path = dir.join("basic.blob");
    std::fs::write(&path, blob(&rec.trace_records())).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["replay", "-", "--progress", "plain"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("marker-"),
        "{}",
        text(&output.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_blob_renders_what_came_and_fails_with_one_line() {
    let rec = corpus::get("docker-28.5", "basic-nocache");
    let dir = temp_dir("cut");
    let whole = blob(&rec.trace_records());
    let path = dir.join("cut.blob");
    std::fs::write(&path, &whole[..whole.len() - 5]).unwrap();
    let output = replay(&path, "plain");
    assert_one_line_error(
        &output,
        "error: the recording cannot be read to its end: the blob is cut short: record ",
    );
    assert!(
        text(&output.stdout).contains("marker-"),
        "{}",
        text(&output.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_input_fails_with_one_line_and_no_output() {
    let dir = temp_dir("unknown");
    // Bytes from a fixed xorshift sequence, and a text file.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for (name, bytes) in [
        ("random.bin", random),
        ("notes.txt", b"just some text\n".to_vec()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        for progress in ["plain", "json", "rawjson"] {
            let output = replay(&path, progress);
            assert_one_line_error(
                &output,
                "error: not a recording bktrace knows: expected a POST /build body, a BuildKit \
                 history logs blob or buildx rawjson output\n",
            );
            assert!(output.stdout.is_empty(), "{name} {progress}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
