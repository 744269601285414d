//! Builds with a BuildKit session (docker-build's `session` feature) against both CI daemons:
//! Docker 20.10 (the default socket) and Docker 28 (`BKTRACE_DOCKER28_HOST`). Secrets reach the
//! step and nowhere else, an unknown required secret fails with BuildKit's message, an SSH
//! agent is forwarded, and a session build dropped mid-step leaves no session behind. Without
//! a daemon each test skips visibly; under `CI=true` it fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use buildkit_events::Event;
use bytes::Bytes;
use docker_build::connection::Daemon;
use docker_build::decode::BuildEvent;
use docker_build::session::{Session, SessionError};
use docker_build::{BuildError, BuildOptions, Secret, SshAgent, build};
use docker_context::Context;
use workspace_tests::daemon::{base_image, daemon, daemon28, tar_context, unique_marker};
use workspace_tests::events::log_lines;
use workspace_tests::ssh_agent::Agent;

/// A generous bound for what the daemon does at once on a working machine.
const WAIT: Duration = Duration::from_secs(60);

/// The raw body, as `record_to` writes it.
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Vec<u8>>>);

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn context(dockerfile: &str) -> Context {
    Context::from_tar(Bytes::from(tar_context(&[(
        "Dockerfile",
        dockerfile.as_bytes(),
    )])))
}

/// Runs a build to its end: its events and the recorded body.
async fn run(
    daemon: &Daemon,
    dockerfile: &str,
    options: &BuildOptions,
) -> (Vec<BuildEvent>, String) {
    let recording = Recording::default();
    let mut stream = build(daemon, context(dockerfile), options)
        .await
        .expect("the build starts")
        .record_to(recording.clone());
    assert!(
        stream.session_id().is_some(),
        "a session build has a session"
    );
    let mut events = Vec::new();
    while let Some(event) = stream.next_event().await {
        events.push(event.expect("the build stream ends cleanly"));
    }
    // The body has ended: the session is closed.
    assert_eq!(stream.session_id(), None);
    let body = String::from_utf8_lossy(&recording.0.lock().unwrap()).into_owned();
    (events, body)
}

fn succeeded(events: &[BuildEvent]) -> bool {
    matches!(events.last(), Some(BuildEvent::Finished(summary)) if summary.succeeded())
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_marker(&format!("bktrace-session-{name}")));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn secrets_reach_the_step_and_nowhere_else(daemon: Daemon) {
    let base = base_image(&daemon).await;
    let marker = unique_marker("s3cr3t");
    let (file_value, bytes_value) = (format!("file-{marker}"), format!("bytes-{marker}"));
    let dir = temp_dir("secret");
    let path = dir.join("value.txt");
    std::fs::write(&path, &file_value).unwrap();
    let tag = format!("bktrace-session-secret:{}", std::process::id());
    // The step prints each value reversed: proof that it read them, without the value itself.
    let dockerfile = format!(
        "FROM {base}\nRUN --mount=type=secret,id=file,required=true \
         --mount=type=secret,id=mem,required=true \
         rev /run/secrets/file && echo && rev /run/secrets/mem && echo\n"
    );
    let options = BuildOptions {
        tags: vec![tag.clone()],
        no_cache: true,
        secrets: vec![
            Secret::file("file", &path),
            Secret::bytes("mem", bytes_value.clone()),
        ],
        ..Default::default()
    };
    let (events, body) = run(&daemon, &dockerfile, &options).await;
    assert!(succeeded(&events), "{events:#?}");
    let logs = log_lines(&events).join("\n");
    for value in [&file_value, &bytes_value] {
        let reversed: String = value.chars().rev().collect();
        assert!(logs.contains(&reversed), "{reversed} not in {logs}");
    }

    let docker = daemon.bollard();
    let image = docker
        .inspect_image(&tag)
        .await
        .expect("the image was built");
    let history = docker.image_history(&tag).await.expect("its history");
    let history_text = format!("{history:?}");
    assert!(
        history_text.contains("rev /run/secrets/file"),
        "the history shows the step: {history_text}"
    );
    let events_text = format!("{events:?}");
    let image_text = format!("{image:?}");
    for value in [&file_value, &bytes_value] {
        for (place, text) in [
            ("the events", &events_text),
            ("the recorded body", &body),
            ("the image's history", &history_text),
            ("the image's configuration", &image_text),
        ] {
            assert!(
                !text.contains(value.as_str()),
                "a secret's value is in {place}"
            );
        }
    }
    let _ = docker
        .remove_image(
            &tag,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker20_secrets_reach_the_step_and_nowhere_else() {
    let Some(daemon) = daemon().await else { return };
    secrets_reach_the_step_and_nowhere_else(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_secrets_reach_the_step_and_nowhere_else() {
    let Some(daemon) = daemon28().await else {
        return;
    };
    secrets_reach_the_step_and_nowhere_else(daemon).await;
}

async fn an_unknown_required_secret_fails_the_step(daemon: Daemon) {
    let base = base_image(&daemon).await;
    let dockerfile = format!("FROM {base}\nRUN --mount=type=secret,id=absent,required=true true\n");
    let options = BuildOptions {
        no_cache: true,
        secrets: vec![Secret::bytes("present", "x")],
        ..Default::default()
    };
    let (events, _) = run(&daemon, &dockerfile, &options).await;
    assert!(!succeeded(&events));
    let failure = events
        .iter()
        .find_map(|e| match e {
            BuildEvent::Failed(failure) => Some(failure),
            _ => None,
        })
        .expect("a failure event");
    // BuildKit's words: `secret absent: not found` (0.8, Docker 20.10: `secret absent not
    // found: not found`).
    assert!(
        failure.message.contains("secret absent") && failure.message.ends_with("not found"),
        "{failure:?}"
    );
    let step = failure.step.as_ref().expect("attributed to its step");
    assert!(
        step.name.contains("--mount=type=secret,id=absent"),
        "{step:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker20_an_unknown_required_secret_fails_the_step() {
    let Some(daemon) = daemon().await else { return };
    an_unknown_required_secret_fails_the_step(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_an_unknown_required_secret_fails_the_step() {
    let Some(daemon) = daemon28().await else {
        return;
    };
    an_unknown_required_secret_fails_the_step(daemon).await;
}

async fn an_ssh_agent_reaches_the_step(daemon: Daemon, agent: &Agent) {
    let base = base_image(&daemon).await;
    let dockerfile = format!(
        "FROM {base}\nRUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"agent at $SSH_AUTH_SOCK\"\n\
         RUN --mount=type=ssh,id=other test -S \"$SSH_AUTH_SOCK\" && echo \"other agent\"\n"
    );
    let options = BuildOptions {
        no_cache: true,
        ssh: vec![
            SshAgent::socket("default", &agent.socket),
            SshAgent::socket("other", &agent.socket),
        ],
        ..Default::default()
    };
    let (events, _) = run(&daemon, &dockerfile, &options).await;
    assert!(succeeded(&events), "{events:#?}");
    let logs = log_lines(&events);
    assert!(logs.iter().any(|l| l.starts_with("agent at /")), "{logs:?}");
    assert!(logs.iter().any(|l| l == "other agent"), "{logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker20_an_ssh_agent_reaches_the_step() {
    let Some(daemon) = daemon().await else { return };
    let Some(agent) = Agent::start() else { return };
    an_ssh_agent_reaches_the_step(daemon, &agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_an_ssh_agent_reaches_the_step() {
    let Some(daemon) = daemon28().await else {
        return;
    };
    let Some(agent) = Agent::start() else { return };
    an_ssh_agent_reaches_the_step(daemon, &agent).await;
}

/// Drops a session build while its step runs, then shows that the daemon let the session go:
/// it accepts a new session with the same id (it refuses an id it still holds), and a
/// follow-up session build works.
async fn a_dropped_session_build_leaves_no_session_behind(daemon: Daemon) {
    let base = base_image(&daemon).await;
    let marker = unique_marker("dropped");
    let dockerfile =
        format!("FROM {base}\nRUN --mount=type=secret,id=s echo {marker} && sleep 600\n");
    let options = BuildOptions {
        secrets: vec![Secret::bytes("s", "value")],
        ..Default::default()
    };
    let mut stream = build(&daemon, context(&dockerfile), &options)
        .await
        .expect("the build starts");
    let id = stream.session_id().expect("a session").to_string();
    // Wait for the step's output: the step runs, with the session attached.
    let deadline = Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline.into(), stream.next_event())
            .await
            .expect("the step starts within the bound")
            .expect("the build is running")
            .expect("no stream error");
        // (No let chain: the workspace's rust-version predates them.)
        if matches!(&event, BuildEvent::Vertex(Event::Log(line)) if line.text().contains(&marker)) {
            break;
        }
    }
    // The check below is not vacuous: while the build runs, its session id is taken.
    let taken = Session::new(&[], &[])
        .unwrap()
        .with_id(&id)
        .start(&daemon)
        .await
        .unwrap_err();
    assert!(
        matches!(&taken, SessionError::Refused { status: 400, message, .. } if message.contains("already exists")),
        "{taken}"
    );
    drop(stream);

    // While the daemon holds a session, `POST /session` with its id is refused (HTTP 400,
    // "session … already exists"). Retry until it is accepted, within the bound.
    let start = Instant::now();
    let reopened = loop {
        match Session::new(&[], &[])
            .unwrap()
            .with_id(&id)
            .start(&daemon)
            .await
        {
            Ok(session) => break session,
            Err(SessionError::Refused {
                status: 400,
                message,
                ..
            }) if message.contains("already exists") && start.elapsed() < WAIT => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the daemon still holds session {id} after {WAIT:?}: {e}"),
        }
    };
    drop(reopened);

    let follow_up = format!(
        "FROM {base}\nRUN --mount=type=secret,id=s,required=true test -s /run/secrets/s && echo {marker}-again\n"
    );
    let (events, _) = run(&daemon, &follow_up, &options).await;
    assert!(succeeded(&events), "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker20_a_dropped_session_build_leaves_no_session_behind() {
    let Some(daemon) = daemon().await else { return };
    a_dropped_session_build_leaves_no_session_behind(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_a_dropped_session_build_leaves_no_session_behind() {
    let Some(daemon) = daemon28().await else {
        return;
    };
    a_dropped_session_build_leaves_no_session_behind(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_file_fails_before_the_build_in_one_line() {
    let Some(daemon) = daemon().await else { return };
    let missing = Path::new("/nonexistent/bktrace-secret");
    let options = BuildOptions {
        secrets: vec![Secret::file("gone", missing)],
        ..Default::default()
    };
    let err = build(&daemon, context("FROM scratch\n"), &options)
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::Session(_)), "{err:?}");
    assert_eq!(
        workspace_tests::error_chain(&err),
        "cannot serve the build's BuildKit session: secret \"gone\": cannot read /nonexistent/bktrace-secret: No such file or directory (os error 2)"
    );
}
