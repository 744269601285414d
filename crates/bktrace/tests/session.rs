//! `bktrace build --secret …` and `--ssh …` as a user runs them, against Docker 20.10 (the
//! default socket) and Docker 28 (`BKTRACE_DOCKER28_HOST`). Without a daemon each test skips
//! visibly; under `CI=true` it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use docker_build::connection::Daemon;
use workspace_tests::daemon::{base_image, daemon, daemon28, unique_marker};
use workspace_tests::ssh_agent::{Agent, keygen, openssh_client_tools};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_marker(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `bktrace build DIR --progress plain ARGS…` on `daemon` with `env` added.
fn bktrace_build(daemon: &Daemon, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bktrace"));
    command
        .args(["build", dir.to_str().unwrap(), "--progress", "plain"])
        .args(args)
        .env("DOCKER_HOST", daemon.host().to_string())
        .env_remove("DOCKER_CONTEXT")
        .env_remove("SSH_AUTH_SOCK");
    command
        .envs(env.iter().copied())
        .output()
        .expect("run bktrace")
}

async fn an_env_secret_is_read_by_the_step_and_shown_nowhere(daemon: Daemon) {
    let base = base_image(&daemon).await;
    let value = unique_marker("env-s3cr3t");
    let dir = temp_dir("bktrace-secret");
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {base}\nRUN --mount=type=secret,id=token,required=true rev /run/secrets/token\n"
        ),
    )
    .unwrap();
    let record = dir.join("body.ndjson");
    let output = bktrace_build(
        &daemon,
        &dir,
        &[
            "--no-cache",
            "--secret",
            "id=token,env=BKTRACE_TEST_TOKEN",
            "--record",
            record.to_str().unwrap(),
        ],
        &[("BKTRACE_TEST_TOKEN", &value)],
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let reversed: String = value.chars().rev().collect();
    assert!(stdout.contains(&reversed), "{stdout}");
    let body = std::fs::read_to_string(&record).unwrap();
    for (place, text) in [
        ("stdout", &stdout),
        ("stderr", &stderr),
        ("the recording", &body),
    ] {
        assert!(!text.contains(&value), "the secret's value is in {place}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker20_an_env_secret_is_read_by_the_step_and_shown_nowhere() {
    let Some(daemon) = daemon().await else { return };
    an_env_secret_is_read_by_the_step_and_shown_nowhere(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_an_env_secret_is_read_by_the_step_and_shown_nowhere() {
    let Some(daemon) = daemon28().await else {
        return;
    };
    an_env_secret_is_read_by_the_step_and_shown_nowhere(daemon).await;
}

async fn ssh_default_forwards_the_agent_at_ssh_auth_sock(daemon: Daemon) {
    let base = base_image(&daemon).await;
    let dir = temp_dir("bktrace-ssh");
    let Some(agent) = Agent::start() else {
        return;
    };
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {base}\nRUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo agent-socket-present\n"),
    )
    .unwrap();
    let output = bktrace_build(
        &daemon,
        &dir,
        &["--no-cache", "--ssh", "default"],
        &[("SSH_AUTH_SOCK", agent.socket.to_str().unwrap())],
    );
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("agent-socket-present"), "{stdout}");

    // Without SSH_AUTH_SOCK, `--ssh default` fails before the build, in one line.
    let output = bktrace_build(&daemon, &dir, &["--ssh", "default"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "error: cannot serve the build's BuildKit session: SSH agent \"default\": SSH_AUTH_SOCK is not set; start an ssh-agent or give ID=SOCKET\n"
    );
    drop(agent);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker20_ssh_default_forwards_the_agent_at_ssh_auth_sock() {
    let Some(daemon) = daemon().await else { return };
    ssh_default_forwards_the_agent_at_ssh_auth_sock(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_ssh_default_forwards_the_agent_at_ssh_auth_sock() {
    let Some(daemon) = daemon28().await else {
        return;
    };
    ssh_default_forwards_the_agent_at_ssh_auth_sock(daemon).await;
}

/// `--ssh default=KEY_FILE`: an `ssh-keygen` key served by the session's own agent, used by the
/// host's OpenSSH client inside the step (busybox has none: `openssh_client_tools` brings
/// `ssh-add` and `ssh-keygen` with their libraries in a bind mount). `ssh-add -l` lists the key
/// and `ssh-keygen -Y sign` signs through the agent; the host verifies that signature.
async fn ssh_key_files_are_served_by_an_agent_of_our_own(daemon: Daemon) {
    let base = base_image(&daemon).await;
    let dir = temp_dir("bktrace-ssh-keys");
    let key = dir.join("id_ed25519");
    let Some(()) = keygen(&key, "", "bktrace-key@test") else {
        return;
    };
    let Some(loader) = openssh_client_tools(&dir.join("tools")) else {
        return;
    };
    std::fs::copy(dir.join("id_ed25519.pub"), dir.join("tools/id.pub")).unwrap();
    let run = format!("/tools/{loader} --library-path /tools");
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {base}\n\
             RUN --mount=type=bind,source=tools,target=/tools --mount=type=ssh \\\n\
             \x20 echo root:x:0:0::/root:/bin/sh > /etc/passwd && {run} /tools/ssh-add -l \\\n\
             \x20 && echo signed-by-the-agent > /tmp/m \\\n\
             \x20 && {run} /tools/ssh-keygen -Y sign -n bktrace -f /tools/id.pub /tmp/m && cat /tmp/m.sig\n"
        ),
    )
    .unwrap();
    let ssh = format!("default={}", key.display());
    let output = bktrace_build(&daemon, &dir, &["--no-cache", "--ssh", &ssh], &[]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // `ssh-add -l` in the step: the key's fingerprint and comment.
    let fingerprint = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(dir.join("id_ed25519.pub"))
        .output()
        .unwrap();
    let fingerprint = text(&fingerprint.stdout);
    assert!(fingerprint.contains("bktrace-key@test"), "{fingerprint}");
    assert!(
        stdout.contains(fingerprint.trim()),
        "{fingerprint}\n{stdout}"
    );
    // `ssh-keygen -Y sign` in the step: a signature the host verifies with the public key.
    let signature: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.splitn(3, ' ').nth(2))
        .skip_while(|line| *line != "-----BEGIN SSH SIGNATURE-----")
        .take_while(|line| *line != "-----END SSH SIGNATURE-----")
        .chain(["-----END SSH SIGNATURE-----"])
        .collect();
    assert!(signature.len() > 2, "{stdout}");
    std::fs::write(dir.join("m.sig"), signature.join("\n") + "\n").unwrap();
    let mut check = Command::new("ssh-keygen")
        .args(["-Y", "check-novalidate", "-n", "bktrace", "-s"])
        .arg(dir.join("m.sig"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(b"signed-by-the-agent\n")
        .unwrap();
    let check = check.wait_with_output().unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        text(&check.stdout),
        text(&check.stderr)
    );
    let private = std::fs::read_to_string(&key).unwrap();
    let body = private.lines().nth(1).unwrap();
    assert!(!stdout.contains(body) && !stderr.contains(body));

    // A key with a passphrase is refused before the build, in one line.
    let encrypted = dir.join("id_encrypted");
    keygen(&encrypted, "a passphrase", "bktrace-test").unwrap();
    let ssh = format!("default={}", encrypted.display());
    let output = bktrace_build(&daemon, &dir, &["--ssh", &ssh], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        format!(
            "error: cannot serve the build's BuildKit session: SSH agent \"default\": {} is encrypted; load it into an ssh-agent (ssh-add) and give its socket\n",
            encrypted.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker20_ssh_key_files_are_served_by_an_agent_of_our_own() {
    let Some(daemon) = daemon().await else { return };
    ssh_key_files_are_served_by_an_agent_of_our_own(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_ssh_key_files_are_served_by_an_agent_of_our_own() {
    let Some(daemon) = daemon28().await else {
        return;
    };
    ssh_key_files_are_served_by_an_agent_of_our_own(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_errors_are_one_line() {
    let Some(daemon) = daemon().await else { return };
    let dir = temp_dir("bktrace-session-errors");
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    let key = dir.join("id_ed25519");
    std::fs::write(&key, "not a key").unwrap();
    let key_arg = format!("github={}", key.display());
    let cases: [(&[&str], String); 2] = [
        (
            &["--classic", "--secret", "id=a,src=/etc/hostname"],
            "error: secrets and SSH agents need a BuildKit session, but the classic builder serves none\n".to_string(),
        ),
        (
            &["--ssh", &key_arg],
            format!(
                "error: cannot serve the build's BuildKit session: SSH agent \"github\": {} is not an OpenSSH private key\n",
                key.display()
            ),
        ),
    ];
    for (args, expected) in cases {
        let output = bktrace_build(&daemon, &dir, args, &[]);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&output.stderr), expected, "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_secret_is_refused_by_the_argument_parser() {
    let output = Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(["build", ".", "--secret", "id=a,type=ssh"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(
            "error: invalid value 'id=a,type=ssh' for '--secret <id=ID,src=PATH|env=VAR>': unsupported secret type \"ssh\": expected file or env"
        ),
        "{stderr}"
    );
}
