//! `bktrace build --progress plain` next to BuildKit's own plain printer, on the same daemon and
//! the same Dockerfile. The reference is the docker CLI of Debian's `docker.io` package
//! (`/usr/bin/docker`, 20.10, BuildKit's progress printer built in), run with
//! `DOCKER_BUILDKIT=1 docker build --progress=plain`. For every Dockerfile step both name the
//! same steps, print the same log lines, and end each step with the same marker; a failed step
//! gets a closing block in both.
//!
//! The CLI attaches a session and sends the context its own way, so the `[internal]` steps
//! differ by design; they are left out of the comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use workspace_tests::daemon::{base_image, ci, daemon, unique_marker};

const REFERENCE_CLI: &str = "/usr/bin/docker";

/// What a plain transcript says about one step.
#[derive(Debug, Default, PartialEq, Eq)]
struct Step {
    logs: Vec<String>,
    /// The last closing marker: `DONE`, `CACHED`, `ERROR: …` or `CANCELED`.
    marker: Option<String>,
}

/// Steps by name, plus the closing blocks (` > name:` → lines without their time prefix).
#[derive(Debug, Default)]
struct Transcript {
    steps: BTreeMap<String, Step>,
    closing: BTreeMap<String, Vec<String>>,
}

fn is_time(word: &str) -> bool {
    word.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && (a.to_owned() + b).bytes().all(|c| c.is_ascii_digit())
    })
}

fn parse(text: &str) -> Transcript {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut t = Transcript::default();
    let mut closing: Option<String> = None;
    for line in text.lines() {
        if line == "------" {
            continue;
        }
        if let Some(name) = line.strip_prefix(" > ").and_then(|l| l.strip_suffix(':')) {
            closing = Some(name.to_string());
            t.closing.entry(name.to_string()).or_default();
            continue;
        }
        if let Some(name) = &closing {
            if let Some((time, rest)) = line.trim_start().split_once(' ') {
                if is_time(time) {
                    t.closing.get_mut(name).unwrap().push(rest.to_string());
                    continue;
                }
            }
            closing = None;
        }
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((n, body)) = rest.split_once(' ') else {
            continue;
        };
        if !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Some(name) = names.get(n).cloned() else {
            names.insert(n.to_string(), body.to_string());
            t.steps.entry(body.to_string()).or_default();
            continue;
        };
        let step = t.steps.get_mut(&name).unwrap();
        let (first, tail) = body.split_once(' ').unwrap_or((body, ""));
        if is_time(first) {
            step.logs.push(tail.to_string());
        } else if first == "DONE" || first == "CACHED" || first == "CANCELED" {
            step.marker = Some(first.to_string());
        } else if first == "ERROR:" {
            step.marker = Some(body.to_string());
        }
    }
    t
}

/// The Dockerfile's own steps (not `[internal] …`), with their log lines sorted: a step's
/// stdout and stderr are separate pipes, and BuildKit reads them concurrently, so how their
/// lines interleave differs from one run to the next (in either printer).
fn dockerfile_steps(t: &Transcript) -> BTreeMap<&str, Step> {
    t.steps
        .iter()
        .filter(|(name, _)| name.starts_with('[') && !name.starts_with("[internal]"))
        .map(|(name, step)| {
            let mut logs = step.logs.clone();
            logs.sort();
            (
                name.as_str(),
                Step {
                    logs,
                    marker: step.marker.clone(),
                },
            )
        })
        .collect()
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
    let want = dockerfile_steps(&reference);
    assert_eq!(
        want.len(),
        3,
        "the reference shows the 3 Dockerfile steps: {want:?}"
    );
    assert_eq!(
        dockerfile_steps(&ours),
        want,
        "bktrace differs from BuildKit's printer"
    );
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
    let want = dockerfile_steps(&reference);
    assert_eq!(
        dockerfile_steps(&ours),
        want,
        "bktrace differs from BuildKit's printer"
    );
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
