//! `bktrace watch`, `history ls` and `history logs` against real daemons: Docker 28 (BuildKit
//! with the history API, started by `.ci/run` beside the default daemon), with builds started by
//! the docker CLI (`docker buildx build`), and the refusal of Docker 20.10 (the default daemon
//! in CI), which has no history API.
//!
//! Every build is named with a unique `BUILDKIT_BUILD_NAME`, so that tests running at the same
//! time, and builds left from earlier runs, never match.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use workspace_tests::daemon::{base_image, daemon, daemon28, docker28_cli, unique_marker};
use workspace_tests::plain::parse;

const BKTRACE: &str = env!("CARGO_BIN_EXE_bktrace");

/// What every test here needs: the Docker 28 daemon with the base image, and its docker CLI;
/// `None` (the test returns) where they are missing outside CI.
struct Setup {
    daemon: docker_build::connection::Daemon,
    /// The base image on that daemon.
    base: String,
}

async fn setup() -> Option<Setup> {
    let daemon = daemon28().await?;
    docker28_cli()?;
    let base = base_image(&daemon).await;
    Some(Setup { daemon, base })
}

/// Starts `bktrace watch` with `args` (stdout piped) and returns once it says it is attached,
/// with the thread that collects its stderr.
fn attached_watch(args: &[&str]) -> (Child, std::thread::JoinHandle<String>) {
    let mut watch = bktrace28()
        .arg("watch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = watch.stderr.take().unwrap();
    let (attached_tx, attached) = mpsc::channel();
    let stderr_thread = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("watching the builds of") {
                let _ = attached_tx.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    attached
        .recv_timeout(Duration::from_secs(60))
        .expect("watch attaches within a minute");
    (watch, stderr_thread)
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
    let dir = std::env::temp_dir().join(format!("bktrace-control-{marker}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    dir
}

/// `docker buildx build` of `dir` on the Docker 28 daemon, named `name`.
fn buildx_build(mut cli: Command, dir: &PathBuf, name: &str) -> Child {
    cli.args(["buildx", "build", "--progress=plain", "--no-cache"])
        .arg("--build-arg")
        .arg(format!("BUILDKIT_BUILD_NAME={name}"))
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker buildx build starts")
}

/// `docker buildx build` of the two-step Dockerfile of [`dockerfile`], named `marker`.
fn buildx_two_steps(base: &str, marker: &str) -> Child {
    buildx_build(
        docker28_cli().expect("checked by the caller"),
        &context(marker, &dockerfile(base, marker)),
        marker,
    )
}

fn finish(child: Child, what: &str) -> Output {
    let output = child.wait_with_output().expect("waiting for a child");
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The history rows (`history ls --json`) of builds whose name contains `name`.
fn history_rows(name: &str) -> Vec<Value> {
    let output = bktrace28()
        .args(["history", "ls", "--json", "--filter"])
        .arg(format!("name={name}"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "history ls failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("history ls --json prints JSON lines"))
        .collect()
}

/// The history row of the one build named `name`, once the daemon has completed its record
/// (it does so as the build's client is told the result; this waits out the difference).
fn finished_row(name: &str) -> Value {
    for _ in 0..300 {
        let rows = history_rows(name);
        assert!(rows.len() <= 1, "one build is named {name}: {rows:?}");
        if let Some(row) = rows.into_iter().next().filter(|r| r["status"] != "running") {
            return row;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the record of {name} is not complete after 30 s");
}

fn dockerfile(base: &str, marker: &str) -> String {
    format!("FROM {base}\nRUN echo {marker}-one && sleep 1\nRUN echo {marker}-two\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_shows_builds_the_cli_starts_each_on_its_own() {
    let Some(Setup { base, .. }) = setup().await else {
        return;
    };
    // Other tests build on the same daemon at the same time: watch only these two.
    let token = unique_marker("watch");
    let a = format!("{token}-a");
    let b = format!("{token}-b");

    // Builds are started only once watch says it is attached.
    let filter = format!("name={token}");
    let (watch, stderr_thread) =
        attached_watch(&["--count", "2", "--progress", "json", "--filter", &filter]);

    let build_a = buildx_two_steps(&base, &a);
    let build_b = buildx_two_steps(&base, &b);
    finish(build_a, "build a");
    finish(build_b, "build b");

    // watch ends by itself after two builds (--count 2); a hang is a failure, not a wait.
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(watch.wait_with_output());
    });
    let output = done
        .recv_timeout(Duration::from_secs(120))
        .expect("watch ends after the two builds")
        .unwrap();
    let stderr = stderr_thread.join().unwrap();
    assert!(output.status.success(), "watch failed: {stderr}");

    // Events grouped by build.
    let mut builds: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let event: Value = serde_json::from_str(line).expect("watch --progress json prints JSON");
        let name = event["build_name"]
            .as_str()
            .expect("every event names its build");
        assert!(
            event["ref"].as_str().is_some_and(|r| !r.is_empty()),
            "{line}"
        );
        builds.entry(name.to_string()).or_default().push(event);
    }
    assert_eq!(
        builds.keys().cloned().collect::<Vec<_>>(),
        {
            let mut names = vec![a.clone(), b.clone()];
            names.sort();
            names
        },
        "exactly the two builds started after attaching (and matching the filter) are shown: {stderr}"
    );
    for (marker, other) in [(&a, &b), (&b, &a)] {
        let events = &builds[marker];
        let refs: std::collections::BTreeSet<&str> =
            events.iter().map(|e| e["ref"].as_str().unwrap()).collect();
        assert_eq!(refs.len(), 1, "one ref per build");
        let logs: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "vertex_log")
            .map(|e| e["line"].as_str().unwrap())
            .collect();
        assert!(logs.contains(&format!("{marker}-one").as_str()), "{logs:?}");
        assert!(logs.contains(&format!("{marker}-two").as_str()), "{logs:?}");
        assert!(
            !logs.iter().any(|l| l.contains(other.as_str())),
            "events of two builds are not mixed: {logs:?}"
        );
        let completed: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "vertex_completed")
            .filter(|e| e["name"].as_str().unwrap().contains(" RUN echo "))
            .map(|e| e["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(completed, ["done", "done"], "both RUN steps completed");
        let last = events.last().unwrap();
        assert_eq!(last["type"], "build_finished");
        assert_eq!(last["success"], true);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn history_ls_lists_finished_and_failed_builds() {
    let Some(Setup { base, .. }) = setup().await else {
        return;
    };
    let good = unique_marker("ls-good");
    let bad = unique_marker("ls-bad");
    finish(buildx_two_steps(&base, &good), "the good build");
    let failing = buildx_build(
        docker28_cli().unwrap(),
        &context(&bad, &format!("FROM {base}\nRUN echo {bad} && exit 3\n")),
        &bad,
    );
    let output = failing.wait_with_output().unwrap();
    assert!(!output.status.success(), "the failing build fails");

    let row = &finished_row(&good);
    assert_eq!(row["name"], good.as_str());
    assert_eq!(row["status"], "completed");
    let total = row["steps_total"].as_i64().unwrap();
    assert!(total >= 3, "{row}");
    assert_eq!(row["steps_completed"], total, "{row}");
    assert!(
        row["duration_s"].as_f64().unwrap() > 0.9,
        "the build sleeps 1 s: {row}"
    );
    assert!(row["created"].as_str().unwrap() < row["completed"].as_str().unwrap());

    assert_eq!(finished_row(&bad)["status"], "error");

    // The table names the build too.
    let table = bktrace28()
        .args(["history", "ls", "--filter"])
        .arg(format!("name={good}"))
        .output()
        .unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("BUILD ID"), "{text}");
    assert!(
        lines[1].contains(&good) && lines[1].contains("completed"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn history_logs_prints_what_buildx_history_logs_prints() {
    let Some(Setup { base, .. }) = setup().await else {
        return;
    };
    let marker = unique_marker("logs");
    finish(buildx_two_steps(&base, &marker), "the build");
    let build_ref = finished_row(&marker)["ref"].as_str().unwrap().to_string();

    let ours = bktrace28()
        .args(["history", "logs", &build_ref, "--progress", "plain"])
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let theirs = finish(
        {
            let mut cli = docker28_cli().unwrap();
            cli.args([
                "buildx",
                "history",
                "logs",
                "--progress",
                "plain",
                &build_ref,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            cli.spawn().unwrap()
        },
        "docker buildx history logs",
    );
    let ours = String::from_utf8(ours.stdout).unwrap();
    // buildx prints progress on stderr.
    let theirs = String::from_utf8(theirs.stderr).unwrap();
    assert!(ours.contains(&format!("{marker}-one")), "{ours}");
    // Step by step: each step's log lines and closing marker, and the closing blocks. The
    // order of the blocks may differ: a record of the history holds several vertices at once,
    // and buildx shows them in the record's order where bktrace orders them by their times;
    // the shared `FROM` vertex carries the times of whichever concurrent build ran it.
    let (ours_steps, theirs_steps) = (parse(&ours), parse(&theirs));
    assert_eq!(
        ours_steps.steps, theirs_steps.steps,
        "bktrace history logs vs docker buildx history logs:\n{ours}\n---\n{theirs}"
    );
    assert_eq!(ours_steps.closing, theirs_steps.closing);
    let run_one = ours_steps
        .steps
        .iter()
        .find(|(name, _)| name.contains(&format!("echo {marker}-one")))
        .map(|(_, step)| step);
    assert_eq!(
        run_one.and_then(|s| s.marker.as_deref()),
        Some("DONE"),
        "{ours}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_ref_gets_one_clear_line() {
    let Some(_) = daemon28().await else { return };
    let output = bktrace28()
        .args(["history", "logs", "no-such-build-ref"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no build with ref \"no-such-build-ref\""),
        "{stderr}"
    );
}

/// Docker 20.10's BuildKit (0.8) serves the Control API but has no history: `history` and
/// `watch` say so in one line and exit 1.
#[tokio::test(flavor = "multi_thread")]
async fn an_old_daemon_is_refused_in_one_line() {
    let Some(daemon) = daemon().await else { return };
    let version = daemon.bollard().version().await.unwrap();
    let api = daemon.api_version().to_string();
    let minor: u32 = api
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if minor >= 43 {
        // Docker 24 (API 1.43) and later have the history: nothing to refuse here.
        eprintln!(
            "SKIPPED: the default daemon is Docker {:?} (API {api}), which has the history API",
            version.version
        );
        return;
    }
    for args in [
        &["history", "ls"][..],
        &["watch"],
        &["history", "logs", "x"],
    ] {
        let output = Command::new(BKTRACE)
            .args(args)
            .env("DOCKER_HOST", daemon.host().to_string())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains("has no build history API") && stderr.contains("Docker 24"),
            "{args:?}: {stderr}"
        );
    }
}

/// `bktrace build` names its build and finds it in the history afterwards: the ref it prints
/// is the one `history ls` lists under that name.
#[tokio::test(flavor = "multi_thread")]
async fn build_prints_its_history_ref() {
    let Some(Setup { base, .. }) = setup().await else {
        return;
    };
    let marker = unique_marker("own-ref");
    let dir = context(&marker, &dockerfile(&base, &marker));
    let output = bktrace28()
        .args(["build", "--progress", "plain", "--name", &marker])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    let printed = stderr
        .lines()
        .find_map(|l| l.strip_prefix("build ref: "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no build ref line: {stderr}"));
    let row = finished_row(&marker);
    assert_eq!(row["ref"], printed);
    assert_eq!(row["status"], "completed");
}

/// A failed build shows the Dockerfile lines of its error, marked `>>>`, as buildx does (the
/// daemon keeps them with the history record since Docker 27.1).
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_build_shows_the_dockerfile_snippet() {
    let Some(Setup { base, .. }) = setup().await else {
        return;
    };
    let marker = unique_marker("snippet");
    let dir = context(
        &marker,
        &format!("FROM {base}\nRUN echo {marker}\nRUN echo before && exit 3\nRUN echo after\n"),
    );
    let output = bktrace28()
        .args(["build", "--progress", "plain", "--name", &marker])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let want = [
        "Dockerfile:3",
        "--------------------",
        &format!("   1 |     FROM {base}"),
        &format!("   2 |     RUN echo {marker}"),
        "   3 | >>> RUN echo before && exit 3",
        "   4 |     RUN echo after",
        "   5 |     ",
        "--------------------",
    ]
    .join("\n");
    assert!(stderr.contains(&want), "{stderr}");
    assert!(
        stderr.contains("error: build failed: process \"/bin/sh -c echo before && exit 3\""),
        "{stderr}"
    );
}

/// `bktrace build --progress github` of a failing build: the failure is annotated on the
/// failing `RUN`'s line of the Dockerfile (from the error source the daemon's history keeps),
/// the lint warnings on theirs, each step folds into a group, the summary of warnings with its
/// `>>>` lines is there, and the build's Markdown report is appended to `$GITHUB_STEP_SUMMARY`.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_build_in_github_mode_annotates_the_failing_run() {
    let Some(Setup { base, .. }) = setup().await else {
        return;
    };
    let marker = unique_marker("github");
    let dir = context(
        &marker,
        &format!(
            "FROM {base} AS Build\nRUN echo {marker}\nRUN echo before && \\\n    exit 3\nRUN echo after\n"
        ),
    );
    // An earlier step wrote to the job summary: the build's report is appended after it.
    let summary = std::env::temp_dir().join(format!("bktrace-step-summary-{marker}.md"));
    std::fs::write(&summary, "earlier step\n").unwrap();
    let output = bktrace28()
        .args(["build", "--progress", "github", "--name", &marker, "."])
        .current_dir(&dir)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let markdown = std::fs::read_to_string(&summary).unwrap();
    std::fs::remove_file(&summary).unwrap();
    assert!(
        markdown.starts_with("earlier step\n## Build report\n"),
        "{markdown}"
    );
    assert!(markdown.contains("RUN echo before"), "{markdown}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let error = stdout
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("no ::error annotation:\n{stdout}"));
    // The RUN spans lines 3 and 4; its error comes from the daemon's history record. (A
    // single-stage build's steps carry no stage name, even a named stage's.)
    assert!(
        error
            .starts_with("::error file=Dockerfile,line=3,endLine=4,title=[3/4] RUN echo before &&")
            && error.ends_with(" did not complete successfully: exit code: 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("::warning file=Dockerfile,line=1,endLine=1,title=StageNameCasing::"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("::group::#") && l.contains(" [3/4] RUN echo before &&")),
        "{stdout}"
    );
    assert!(stdout.contains("   1 | >>> FROM "), "{stdout}");
    // Groups never nest: they alternate open, close.
    let mut open = false;
    for line in stdout.lines() {
        if line.starts_with("::group::") {
            assert!(!open, "nested group at {line}:\n{stdout}");
            open = true;
        } else if line == "::endgroup::" {
            assert!(open, "an endgroup without a group:\n{stdout}");
            open = false;
        }
    }
    assert!(!open, "a group is left open:\n{stdout}");
}

/// On a daemon whose history keeps no error source (Docker 20.10, the default daemon in CI),
/// `--progress github` finds the failing instruction by its step name (`[build 2/2]`) in the
/// Dockerfile on disk.
#[tokio::test(flavor = "multi_thread")]
async fn without_an_error_source_the_failure_is_located_by_its_step_name() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let marker = unique_marker("github-name");
    let dir = context(
        &marker,
        &format!(
            "FROM {base} AS build\nRUN echo {marker}\n\nRUN echo failing && \\\n    exit 4\n\nFROM {base}\nCOPY --from=build /bin/sh /x\n"
        ),
    );
    let output = Command::new(BKTRACE)
        .args(["build", "--progress", "github", "--no-cache", "."])
        .current_dir(&dir)
        .env("DOCKER_HOST", daemon.host().to_string())
        .env_remove("DOCKER_CONTEXT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let error = stdout
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("no ::error annotation:\n{stdout}"));
    assert!(
        error.starts_with(
            "::error file=Dockerfile,line=4,endLine=5,title=[build 3/3] RUN echo failing"
        ),
        "{stdout}"
    );
}

/// A port of the host that a build's `RUN` step waits for: the step polls the container's
/// gateway (the host) on it until the test opens the gate by accepting one connection. Builds
/// that must be running while the test looks at them wait here, so nothing depends on timing.
struct Gate {
    port: u16,
}

impl Gate {
    fn new() -> Self {
        // Reserve a port and close it again: the build's connections fail until `open`.
        let port = std::net::TcpListener::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Gate { port }
    }

    /// A Dockerfile that logs `{marker}-waiting`, waits for the gate, then logs `{marker}-late`.
    fn dockerfile(&self, base: &str, marker: &str) -> String {
        let port = self.port;
        format!(
            "FROM {base}\n\
             RUN echo {marker}-waiting && gw=$(ip route | awk '/^default/ {{print $3}}') && \\\n\
             \x20   until nc \"$gw\" {port} </dev/null; do sleep 0.2; done && echo {marker}-late\n"
        )
    }

    /// Lets the waiting build go on (fails the test if it does not connect within 2 minutes).
    fn open(self) {
        let port = self.port;
        let listener = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            match listener.accept() {
                Ok((connection, _)) => break drop(connection),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the build did not connect to port {port} within 2 minutes"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("accepting the build's connection: {e}"),
            }
        }
    }
}

/// Ctrl-C (SIGINT) detaches `watch` cleanly, exit status 0, while the build it shows goes on to
/// succeed.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_detaches_watch_and_the_build_goes_on() {
    let Some(Setup { base, .. }) = setup().await else {
        return;
    };
    let marker = unique_marker("detach");
    let filter = format!("name={marker}");
    let (mut watch, _stderr) = attached_watch(&["--progress", "plain", "--filter", &filter]);
    // Lines of stdout as they come.
    let stdout = watch.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });

    let gate = Gate::new();
    let build = buildx_build(
        docker28_cli().unwrap(),
        &context(&marker, &gate.dockerfile(&base, &marker)),
        &marker,
    );
    // Wait until watch shows the build's first log line: the build is running and waiting.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.ends_with(&format!("{marker}-waiting")))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("watch did not show the build's first line: {seen:?}"),
        }
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(watch.wait());
    });
    let status = done
        .recv_timeout(Duration::from_secs(30))
        .expect("watch ends on SIGINT")
        .unwrap();
    assert!(status.success(), "watch detaches with status 0: {status}");
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    assert!(
        seen.iter()
            .any(|l| l.contains("=== detached from build") && l.contains("still running")),
        "{seen:?}"
    );
    gate.open();
    let output = finish(build, "the build watch detached from");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains(&format!("{marker}-late")), "{text}");
}

/// `history logs --follow` of a running build shows it live to its end; without `--follow`
/// the running build is refused in one line. The build waits for the test: its `RUN` step
/// polls a TCP port of the host (the container's gateway) that the test opens only once it has
/// seen the build running, so nothing depends on timing.
#[tokio::test(flavor = "multi_thread")]
async fn history_logs_follows_a_running_build() {
    let Some(Setup { base, .. }) = setup().await else {
        return;
    };
    let marker = unique_marker("follow");
    let gate = Gate::new();
    let build = buildx_build(
        docker28_cli().unwrap(),
        &context(&marker, &gate.dockerfile(&base, &marker)),
        &marker,
    );
    let mut build_ref = None;
    for _ in 0..600 {
        if let Some(row) = history_rows(&marker).first() {
            assert_eq!(
                row["status"], "running",
                "the build waits for the test: {row}"
            );
            build_ref = row["ref"].as_str().map(str::to_string);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let build_ref = build_ref.expect("the build shows up in the history within a minute");

    let refused = bktrace28()
        .args(["history", "logs", &build_ref])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert!(stderr.contains("still running; pass --follow"), "{stderr}");

    let follow = bktrace28()
        .args([
            "history",
            "logs",
            &build_ref,
            "--follow",
            "--progress",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    gate.open();
    finish(build, "the build");
    let followed = finish(follow, "history logs --follow");
    let events: Vec<Value> = String::from_utf8(followed.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let logs: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "vertex_log")
        .filter_map(|e| e["line"].as_str())
        .collect();
    assert!(
        logs.contains(&format!("{marker}-waiting").as_str()),
        "{logs:?}"
    );
    assert!(
        logs.contains(&format!("{marker}-late").as_str()),
        "{logs:?}"
    );
    assert_eq!(events.last().unwrap()["type"], "build_finished");
    assert_eq!(events.last().unwrap()["success"], true);
}

/// A build's logs blob, fetched from the daemon's content store, replays to the same events
/// as the daemon's own `Status` replay of the build.
#[tokio::test(flavor = "multi_thread")]
async fn a_logs_blob_from_the_daemon_replays_like_status() {
    let Some(Setup { daemon, base }) = setup().await else {
        return;
    };
    let marker = unique_marker("blob");
    finish(buildx_two_steps(&base, &marker), "the build");
    let control = daemon.control().await.unwrap();
    // The daemon writes the logs blob when it finalizes the record, just after the build.
    let mut record = None;
    for _ in 0..100 {
        let found = control
            .find_build(&marker)
            .await
            .unwrap()
            .expect("the build is recorded");
        if found.logs.is_some() {
            record = Some(found);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = record.expect("the record gets its logs blob within 10 s");
    let logs = record.logs.as_ref().unwrap();
    assert_eq!(logs.media_type, "application/vnd.buildkit.status.v0");
    let mut reader = control.read_blob(&logs.digest).await.unwrap();
    let mut blob = Vec::new();
    while let Some(chunk) = reader.next().await {
        blob.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(blob.len() as i64, logs.size);
    let path = std::env::temp_dir().join(format!("bktrace-{marker}.blob"));
    std::fs::write(&path, &blob).unwrap();

    let replayed = Command::new(BKTRACE)
        .args(["replay", "--progress", "json"])
        .arg(&path)
        .output()
        .unwrap();
    let status = bktrace28()
        .args(["history", "logs", &record.r#ref, "--progress", "json"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let replayed = String::from_utf8(replayed.stdout).unwrap();
    assert!(replayed.contains(&format!("{marker}-two")), "{replayed}");
    assert_eq!(replayed, String::from_utf8(status.stdout).unwrap());
}
