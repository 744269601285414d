//! `bktrace build` sending the context as the tar body (issue 15, items 5 and 10): where the
//! Dockerfile goes when `-f` names one outside the context or one the `.dockerignore`
//! excludes, on the classic builder and on BuildKit without a FileSync session. Live, against
//! the CI daemon (Docker 20.10, `workspace_tests::daemon`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use workspace_tests::daemon::{base_image, daemon, unique_marker};

/// A fresh directory under the temp dir, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("bktrace-tar-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bktrace(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bktrace"))
        .args(args)
        .args(paths)
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("run bktrace")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A Dockerfile that copies the whole context and lists it between markers in its log.
fn listing_dockerfile(base: &str, marker: &str) -> String {
    format!("FROM {base}\nCOPY . /ctx/\nRUN echo {marker}; ls -a /ctx; echo {marker}-end\n")
}

/// The names `ls -a /ctx` printed between the markers, from a plain output.
fn listed(stdout: &str, marker: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in stdout.lines() {
        // `#N 0.123 name`
        let Some(word) = line.split_whitespace().nth(2) else {
            continue;
        };
        if word == format!("{marker}-end") {
            break;
        }
        if inside && word != "." && word != ".." {
            names.push(word.to_string());
        }
        if word == marker {
            inside = true;
        }
    }
    assert!(inside, "no listing in:\n{stdout}");
    names
}

/// `-f` naming a file outside the context builds, as with `docker build`: the file is sent as
/// `.dockerfile.<hex>` and listed in the `.dockerignore` sent with it, so the classic builder
/// leaves it out of the image, and a BuildKit build without a session (which applies no
/// ignore rules to the tar) sees it, with one warning saying so.
#[tokio::test]
async fn a_dockerfile_outside_the_context_builds_on_both_builders() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let context = Dir::new("outside-ctx");
    context.file("app.txt", "app\n");
    let elsewhere = Dir::new("outside-df");
    let marker = unique_marker("outside");
    let dockerfile = elsewhere.file("prod.Dockerfile", &listing_dockerfile(&base, &marker));

    let classic = bktrace(
        &[
            "build",
            "--classic",
            "--no-cache",
            "--progress",
            "plain",
            "-f",
        ],
        &[&dockerfile, &context.0],
    );
    let stdout = text(&classic.stdout);
    assert!(classic.status.success(), "{}", text(&classic.stderr));
    // The generated `.dockerignore` lists itself too, as the CLI's does: the classic builder
    // removes both.
    assert_eq!(listed(&stdout, &marker), ["app.txt"]);
    assert!(
        !text(&classic.stderr).contains("warning"),
        "{}",
        text(&classic.stderr)
    );

    let buildkit = bktrace(
        &[
            "build",
            "--context-transport",
            "tar",
            "--no-cache",
            "--progress",
            "plain",
            "-f",
        ],
        &[&dockerfile, &context.0],
    );
    let stdout = text(&buildkit.stdout);
    let stderr = text(&buildkit.stderr);
    assert!(buildkit.status.success(), "{stderr}");
    let names = listed(&stdout, &marker);
    assert_eq!(names.len(), 3, "{names:?}");
    let generated = &names[0];
    assert!(generated.starts_with(".dockerfile."), "{names:?}");
    assert_eq!(names[1..], [".dockerignore", "app.txt"]);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warnings,
        [format!(
            "warning: the Dockerfile {} is outside the build context: it is sent in the \
             context as {generated} and, without a BuildKit session, COPY . will copy it",
            dockerfile.display()
        )]
    );

    // Through the session (the default), as buildx sends it: the Dockerfile is served from its
    // own folder, so the context holds neither it nor a generated file, and nothing is warned.
    let session = bktrace(
        &["build", "--no-cache", "--progress", "plain", "-f"],
        &[&dockerfile, &context.0],
    );
    assert!(session.status.success(), "{}", text(&session.stderr));
    assert_eq!(listed(&text(&session.stdout), &marker), ["app.txt"]);
    assert!(
        !text(&session.stderr).contains("warning"),
        "{}",
        text(&session.stderr)
    );
}

/// A Dockerfile the `.dockerignore` excludes: the classic daemon removes it from the build
/// itself; a BuildKit build without a session sees it, and one warning line says so.
#[tokio::test]
async fn an_ignored_dockerfile_is_absent_with_classic_and_warned_about_with_buildkit() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let context = Dir::new("ignored");
    let marker = unique_marker("ignored");
    context.file("Dockerfile", &listing_dockerfile(&base, &marker));
    context.file(".dockerignore", "Dockerfile\n");
    context.file("app.txt", "app\n");

    let classic = bktrace(
        &["build", "--classic", "--no-cache", "--progress", "plain"],
        &[&context.0],
    );
    assert!(classic.status.success(), "{}", text(&classic.stderr));
    assert_eq!(
        listed(&text(&classic.stdout), &marker),
        [".dockerignore", "app.txt"]
    );
    assert!(
        !text(&classic.stderr).contains("warning"),
        "{}",
        text(&classic.stderr)
    );

    let buildkit = bktrace(
        &[
            "build",
            "--context-transport",
            "tar",
            "--no-cache",
            "--progress",
            "plain",
        ],
        &[&context.0],
    );
    let stderr = text(&buildkit.stderr);
    assert!(buildkit.status.success(), "{stderr}");
    assert_eq!(
        listed(&text(&buildkit.stdout), &marker),
        [".dockerignore", "Dockerfile", "app.txt"]
    );
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warnings,
        [format!(
            "warning: the Dockerfile {} is excluded by .dockerignore but, without a BuildKit \
             session, it is sent in the context and COPY . will copy it",
            context.0.join("Dockerfile").display()
        )]
    );

    // Through the session (the default) the ignore rules are ours: the Dockerfile is absent.
    let session = bktrace(
        &["build", "--no-cache", "--progress", "plain"],
        &[&context.0],
    );
    assert!(session.status.success(), "{}", text(&session.stderr));
    assert_eq!(
        listed(&text(&session.stdout), &marker),
        [".dockerignore", "app.txt"]
    );
    assert!(
        !text(&session.stderr).contains("warning"),
        "{}",
        text(&session.stderr)
    );
}

/// The tar of `dir` as bktrace sends it, in bytes.
fn tar_size(dir: &Path) -> u64 {
    docker_context::Context::from_dir(dir)
        .unwrap()
        .into_chunks()
        .map(|chunk| chunk.unwrap().len() as u64)
        .sum()
}

/// A context with 3 MB of data: its upload takes many chunks.
fn multi_megabyte_context(name: &str, base: &str) -> (Dir, u64) {
    let dir = Dir::new(name);
    dir.file(
        "Dockerfile",
        &format!(
            "FROM {base}\nCOPY small.txt /\nRUN echo {}\n",
            unique_marker(name)
        ),
    );
    dir.file("small.txt", "small\n");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(dir.0.join("big.bin"), data).unwrap();
    let size = tar_size(&dir.0);
    (dir, size)
}

/// The context's upload is shown (issue 15, item 10): on BuildKit as a block of ours,
/// `#0 [internal] sending build context`, ending with `transferring context: <size> <t>s done`
/// before the daemon's first step; in JSON as `context_upload` lines, the last one with the
/// whole tar's bytes and `done`.
#[tokio::test]
async fn a_multi_megabyte_context_shows_its_transfer_in_plain_and_json() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let (dir, size) = multi_megabyte_context("upload-bk", &base);

    let plain = bktrace(
        &["build", "--context-transport", "tar", "--progress", "plain"],
        &[&dir.0],
    );
    let stdout = text(&plain.stdout);
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "#0 [internal] sending build context", "{stdout}");
    let shown = buildkit_progressui::format::bytes(size as i64);
    let done = lines
        .iter()
        .position(|l| l.starts_with("#0 transferring context: ") && l.ends_with(" done"))
        .unwrap_or_else(|| panic!("no final transfer line in:\n{stdout}"));
    assert!(
        lines[done].starts_with(&format!("#0 transferring context: {shown}")),
        "{} (expected {shown})",
        lines[done]
    );
    assert!(lines[done + 1].starts_with("#0 DONE "), "{stdout}");
    // Nothing of the daemon's came before the upload's first line.
    assert!(
        !lines[..done].iter().any(|l| l.starts_with("#1 ")),
        "{stdout}"
    );

    let json = bktrace(
        &["build", "--context-transport", "tar", "--progress", "json"],
        &[&dir.0],
    );
    assert!(json.status.success(), "{}", text(&json.stderr));
    let uploads: Vec<serde_json::Value> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "context_upload")
        .collect();
    let last = uploads.last().expect("context_upload lines");
    assert_eq!(
        (last["bytes"].as_u64(), last["done"].as_bool()),
        (Some(size), Some(true))
    );
    let counts: Vec<u64> = uploads
        .iter()
        .map(|v| v["bytes"].as_u64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert!(
        uploads[..uploads.len() - 1]
            .iter()
            .all(|v| v["done"] == false),
        "{uploads:?}"
    );
}

/// With the classic builder the docker CLI's line: `Sending build context to Docker daemon`
/// and the size as go-units writes it, once, first.
#[tokio::test]
async fn a_classic_build_says_sending_build_context_with_the_final_size() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let (dir, size) = multi_megabyte_context("upload-classic", &base);
    let plain = bktrace(&["build", "--classic", "--progress", "plain"], &[&dir.0]);
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    let stdout = text(&plain.stdout);
    let expected = format!(
        "Sending build context to Docker daemon {:>8}",
        buildkit_progressui::upload::human_size(size)
    );
    assert_eq!(stdout.lines().next(), Some(expected.as_str()), "{stdout}");
    assert_eq!(
        stdout.matches("Sending build context").count(),
        1,
        "{stdout}"
    );
}
