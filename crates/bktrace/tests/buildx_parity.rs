//! `bktrace build --progress plain` next to BuildKit's own plain printer, on the same daemon and
//! the same Dockerfile. The reference is the docker CLI of Debian's `docker.io` package
//! (`/usr/bin/docker`, 20.10, BuildKit's progress printer built in), run with
//! `DOCKER_BUILDKIT=1 docker build --progress=plain`. For every `RUN` step both name the same
//! steps, print the same log lines, and end each step with the same marker; a failed step gets
//! a closing block in both.
//!
//! Only what two builds of the same Dockerfile must agree on is compared (see [`run_steps`]):
//! BuildKit's printer cannot replay a recorded build, so the two printers watch two builds. The
//! CLI attaches a session and sends the context its own way, so the `[internal]` steps differ
//! by design; the `FROM` step is shared with whatever else builds on the daemon at the time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use workspace_tests::daemon::{base_image, ci, daemon, unique_marker};
use workspace_tests::plain::{Step, Transcript, parse};

const REFERENCE_CLI: &str = "/usr/bin/docker";

/// The Dockerfile's `RUN` steps, with their log lines sorted: what two builds of the same
/// Dockerfile always agree on, which is all the comparison may ask of two printers that watch
/// two builds.
///
/// - Log lines are sorted: a step's stdout and stderr are separate pipes, and BuildKit reads
///   them concurrently, so how their lines interleave differs from one run to the next (in
///   either printer).
/// - The `FROM` step is left out (its presence is checked by [`assert_from_step`]). Every
///   build on the daemon that uses the same base image has the same vertex for it, and BuildKit
///   merges equal vertices of concurrent builds: the other test in this file runs at the same
///   time, and so may other test binaries or users of the shared daemon. What each build's
///   stream then says of that vertex depends on the other builds: whether it closes with `DONE`
///   or `CACHED` (the build that first needs the image's snapshot unpacks it, a later one finds
///   it cached; `--no-cache` does not change that), and even its name (seen: `FROM
///   docker.io/library/…` without `[1/3]`, the name another build gave the shared vertex, with
///   the `[1/3] FROM …` header left without a marker). Two runs of one printer differ the same
///   way, so no printer is wrong there.
/// - The `RUN` steps are this test's own: the first echoes a marker unique to the run and the
///   second depends on it, so no other build shares their vertices, and under `--no-cache`
///   they always run: their names, log lines and markers (`DONE`, or the error) are
///   deterministic, and any difference between the printers is a real one.
fn run_steps(t: &Transcript) -> BTreeMap<&str, Step> {
    t.steps
        .iter()
        .filter(|(name, _)| name.starts_with('[') && instruction(name).starts_with("RUN "))
        .map(|(name, step)| {
            let mut logs = step.logs.clone();
            logs.sort();
            let marker = step.marker.clone();
            (name.as_str(), Step { logs, marker })
        })
        .collect()
}

/// A step name without its `[stage n/m] ` prefix: `[1/3] FROM x` → `FROM x`.
fn instruction(name: &str) -> &str {
    name.split_once("] ").map_or(name, |(_, rest)| rest)
}

/// Both transcripts show a step for `FROM {base}`, under whatever name (see [`run_steps`]).
fn assert_from_step(reference: &Transcript, ours: &Transcript, base: &str) {
    for (who, t) in [("the reference", reference), ("bktrace", ours)] {
        assert!(
            t.steps
                .keys()
                .any(|name| instruction(name).starts_with("FROM ") && name.contains(base)),
            "{who} shows no FROM step for {base}: {:?}",
            t.steps.keys().collect::<Vec<_>>()
        );
    }
}

fn reference_plain(dir: &Path) -> (bool, String) {
    let out = Command::new(REFERENCE_CLI)
        .args(["build", "--progress=plain", "--no-cache"])
        .arg(dir)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .expect("run the reference docker CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn bktrace_plain(dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["build", "--progress", "plain", "--no-cache"])
        .arg(dir)
        .output()
        .expect("run bktrace");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn context(name: &str, dockerfile: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bktrace-parity-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    dir
}

/// `None` (after a visible SKIPPED line) when the reference CLI is not installed.
fn reference_available() -> bool {
    if Path::new(REFERENCE_CLI).exists() {
        return true;
    }
    assert!(
        !ci(),
        "{REFERENCE_CLI} is missing; .ci/run installs docker.io"
    );
    eprintln!(
        "SKIPPED: {REFERENCE_CLI} (the docker.io CLI with BuildKit's printer) is not installed"
    );
    false
}

#[tokio::test]
async fn same_steps_logs_and_markers_as_buildkits_own_printer() {
    let Some(daemon) = daemon().await else { return };
    if !reference_available() {
        return;
    }
    let base = base_image(&daemon).await;
    let marker = unique_marker("parity");
    let dockerfile = format!(
        "FROM {base}\nRUN echo out-{marker} && echo err-{marker} >&2 && echo third\nRUN echo second-step\n"
    );
    let dir = context("ok", &dockerfile);
    let (ref_ok, reference) = reference_plain(&dir);
    let (ours_ok, ours) = bktrace_plain(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(ref_ok, "the reference build failed:\n{reference}");
    assert!(ours_ok, "bktrace failed:\n{ours}");
    let (reference, ours) = (parse(&reference), parse(&ours));
    let want = run_steps(&reference);
    assert_eq!(
        want.len(),
        2,
        "the reference shows the 2 RUN steps: {want:?}"
    );
    assert_eq!(
        run_steps(&ours),
        want,
        "bktrace differs from BuildKit's printer"
    );
    assert!(
        want.values()
            .all(|step| step.marker.as_deref() == Some("DONE")),
        "{want:?}"
    );
    assert_from_step(&reference, &ours, &base);
    let run = &want
        [format!("[2/3] RUN echo out-{marker} && echo err-{marker} >&2 && echo third").as_str()];
    assert_eq!(
        run.logs,
        [
            format!("err-{marker}"),
            format!("out-{marker}"),
            "third".to_string()
        ]
    );
}

#[tokio::test]
async fn a_failed_step_gets_the_same_error_and_closing_block() {
    let Some(daemon) = daemon().await else { return };
    if !reference_available() {
        return;
    }
    let base = base_image(&daemon).await;
    let marker = unique_marker("parity-fail");
    let dockerfile = format!(
        "FROM {base}\nRUN echo before-{marker} && echo to-stderr >&2 && exit 3\nRUN echo never\n"
    );
    let dir = context("fail", &dockerfile);
    let (ref_ok, reference) = reference_plain(&dir);
    let (ours_ok, ours) = bktrace_plain(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!ref_ok && !ours_ok, "both builds fail");
    let (reference, ours) = (parse(&reference), parse(&ours));
    let want = run_steps(&reference);
    assert_eq!(
        run_steps(&ours),
        want,
        "bktrace differs from BuildKit's printer"
    );
    assert_from_step(&reference, &ours, &base);
    let name = format!("[2/3] RUN echo before-{marker} && echo to-stderr >&2 && exit 3");
    let marker_line = want[name.as_str()].marker.clone().unwrap_or_default();
    assert!(
        marker_line.starts_with("ERROR: ") && marker_line.ends_with("exit code: 3"),
        "{marker_line}"
    );
    // The same steps get a closing block. (The 20.10 CLI's printer predates BuildKit v0.9,
    // which added the step's last lines to the block; ours prints them, as buildx does now.)
    assert_eq!(
        ours.closing.keys().collect::<Vec<_>>(),
        reference.closing.keys().collect::<Vec<_>>()
    );
    let mut tail = ours.closing[&name].clone();
    tail.sort();
    assert_eq!(tail, [format!("before-{marker}"), "to-stderr".to_string()]);
}

/// The comparison above, without a daemon: two good builds whose transcripts differ only in
/// what the shared `FROM` vertex showed (its marker, its name) compare equal; a difference in
/// a `RUN` step does not.
#[test]
fn two_builds_may_differ_only_in_the_shared_from_step() {
    let transcript = |from: &str, from_end: &str, run_end: &str| {
        parse(&format!(
            "#1 [internal] load metadata for docker.io/library/base:latest\n#1 DONE 0.0s\n\n\
             #2 {from}\n#2 sha256:0911e7a4\n#2 {from_end}\n\n\
             #3 [2/3] RUN echo hi\n#3 0.301 hi\n#3 0.302 there\n#3 {run_end}\n\n\
             #4 [3/3] RUN echo two\n#4 0.101 two\n#4 DONE 0.1s\n"
        ))
    };
    let from = "[1/3] FROM docker.io/library/base:latest";
    let ok = transcript(from, "DONE 0.1s", "DONE 0.3s");
    let steps = run_steps(&ok);
    assert_eq!(steps.len(), 2, "{steps:?}");
    let run = &steps["[2/3] RUN echo hi"];
    assert_eq!(run.logs, ["hi", "there"]);
    assert_eq!(run.marker.as_deref(), Some("DONE"));
    for other in [
        transcript(from, "CACHED", "DONE 0.3s"),
        transcript("FROM docker.io/library/base:latest", "CACHED", "DONE 0.3s"),
        transcript(from, "", "DONE 0.3s"),
    ] {
        assert_eq!(run_steps(&other), steps);
        assert_from_step(&ok, &other, "library/base:latest");
    }
    assert_ne!(run_steps(&transcript(from, "CACHED", "CACHED")), steps);
    assert_ne!(
        run_steps(&transcript(from, "CACHED", "ERROR: exit code: 1")),
        steps
    );
}
