//! Harness for the tests that need a live Docker daemon.
//!
//! - [`daemon`] connects through `DOCKER_HOST` (default `unix:///var/run/docker.sock`); without a
//!   reachable daemon it prints a `SKIPPED: …` line and the test returns early, unless `CI=true`,
//!   where a missing daemon is a failure.
//! - [`base_image`] makes sure a tiny busybox image exists, built offline from the host's static
//!   `/bin/busybox` (no registry needed).
//! - [`tar_context`] and [`unique_marker`] help writing build contexts.
//!
//! ```no_run
//! # async fn test() {
//! use workspace_tests::daemon;
//!
//! let Some(docker) = daemon::daemon().await else { return };
//! let base = daemon::base_image(&docker).await;
//! let dockerfile = format!("FROM {base}\nRUN echo {}\n", daemon::unique_marker("demo"));
//! let context = daemon::tar_context(&[("Dockerfile", dockerfile.as_bytes())]);
//! # let _ = context;
//! # }
//! ```

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::query_parameters::CreateImageOptionsBuilder;
use docker_build::connection::Daemon;
use futures_util::StreamExt as _;

/// Repository of the base image made by [`base_image`].
pub const BASE_REPO: &str = "bktrace-test-busybox";
/// Tag of the base image made by [`base_image`].
pub const BASE_TAG: &str = "latest";

/// Where the static busybox binary is taken from (Debian's `busybox-static` package).
const BUSYBOX: &str = "/bin/busybox";

/// Whether missing prerequisites must fail the tests (`CI=true`); see [`crate::ci`].
pub use crate::ci;

/// Connects to the Docker daemon, or explains on stderr why the calling test is skipped.
///
/// Returns `None` when no daemon is reachable (the caller should `return`), after writing
/// `SKIPPED: no Docker daemon reachable at … ; set CI=true to make this a failure` straight to
/// the process's stderr, so the line is visible even for passing tests. With `CI=true` it panics
/// instead.
pub async fn daemon() -> Option<Daemon> {
    let error = match Daemon::connect().await {
        Ok(daemon) => return Some(daemon),
        Err(error) => error,
    };
    let reason = crate::error_chain(&error);
    if ci() {
        panic!("{reason}; CI=true makes a missing Docker daemon a failure");
    }
    skipped(&reason);
    None
}

/// Writes `SKIPPED: {reason}; set CI=true to make this a failure [test name]` straight to the
/// process's stderr (libtest captures `eprintln!` of passing tests), for a test that returns
/// early because something it needs is missing. Under `CI=true` call `panic!` instead.
pub fn skipped(reason: &str) {
    // libtest names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .map_or_else(String::new, |name| format!(" [{name}]"));
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {reason}; set CI=true to make this a failure{test}"
    );
}

/// The Docker 28 daemon `.ci/run` starts beside the default one (BuildKit with the history
/// API), from `BKTRACE_DOCKER28_HOST`; `None` (after a `SKIPPED` line) when it is not set,
/// a panic under `CI=true`.
pub async fn daemon28() -> Option<Daemon> {
    let Some(host) = std::env::var("BKTRACE_DOCKER28_HOST")
        .ok()
        .filter(|h| !h.is_empty())
    else {
        return skip(
            "BKTRACE_DOCKER28_HOST is not set (.ci/run starts a Docker 28 daemon and sets it)",
        );
    };
    let host = docker_build::connection::DockerHost::parse(&host)
        .unwrap_or_else(|e| panic!("BKTRACE_DOCKER28_HOST={host}: {e}"));
    match Daemon::connect_to(host.clone()).await {
        Ok(daemon) => Some(daemon),
        Err(e) => skip(&format!("no Docker 28 daemon at {host}: {e}")),
    }
}

/// The docker CLI that goes with [`daemon28`] (with buildx), as a command whose environment
/// points at that daemon: `BKTRACE_DOCKER28_CLI`, `BKTRACE_DOCKER28_CONFIG`.
pub fn docker28_cli() -> Option<std::process::Command> {
    let cli = std::env::var("BKTRACE_DOCKER28_CLI")
        .ok()
        .filter(|v| !v.is_empty());
    let config = std::env::var("BKTRACE_DOCKER28_CONFIG")
        .ok()
        .filter(|v| !v.is_empty());
    let host = std::env::var("BKTRACE_DOCKER28_HOST")
        .ok()
        .filter(|v| !v.is_empty());
    let (Some(cli), Some(config), Some(host)) = (cli, config, host) else {
        return skip("BKTRACE_DOCKER28_CLI/CONFIG/HOST are not set (.ci/run sets them)");
    };
    let mut command = std::process::Command::new(cli);
    command
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_CONTEXT")
        .env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1");
    Some(command)
}

/// Says why the calling test is skipped (or panics under `CI=true`).
fn skip<T>(reason: &str) -> Option<T> {
    if ci() {
        panic!("{reason}; CI=true makes this a failure");
    }
    skipped(reason);
    None
}

/// Makes sure the base image `bktrace-test-busybox:latest` exists and returns its name.
///
/// The image is a `docker import` of a root filesystem holding `/bin/busybox` and a symlink for
/// every applet it lists (`busybox --list-full`: `/bin/sh`, `/bin/echo`, `/usr/bin/env`, …).
/// Within one process the work happens once per daemon, however many tests ask concurrently; across
/// processes the image is inspected first, and importing it twice is harmless.
///
/// Panics if the image cannot be made (e.g. busybox is not installed).
pub async fn base_image(daemon: &Daemon) -> String {
    // One per daemon (the tests use two); the lock is held while importing.
    static READY: tokio::sync::Mutex<Vec<String>> = tokio::sync::Mutex::const_new(Vec::new());
    let host = daemon.host().to_string();
    let mut ready = READY.lock().await;
    let name = format!("{BASE_REPO}:{BASE_TAG}");
    if !ready.contains(&host) {
        ensure_base_image(daemon).await;
        ready.push(host);
    }
    name
}

async fn ensure_base_image(daemon: &Daemon) -> String {
    let name = format!("{BASE_REPO}:{BASE_TAG}");
    let docker = daemon.bollard();
    if docker.inspect_image(&name).await.is_ok() {
        return name;
    }
    let rootfs = tokio::task::spawn_blocking(|| busybox_rootfs(Path::new(BUSYBOX)))
        .await
        .expect("building the busybox rootfs");
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(BASE_REPO)
        .tag(BASE_TAG)
        .message("busybox test base image made by the workspace tests")
        .build();
    let mut progress =
        docker.create_image(Some(options), Some(bollard::body_full(rootfs.into())), None);
    while let Some(item) = progress.next().await {
        if let Err(e) = item {
            panic!("importing {name} into the Docker daemon failed: {e}");
        }
    }
    docker
        .inspect_image(&name)
        .await
        .unwrap_or_else(|e| panic!("{name} was imported but cannot be inspected: {e}"));
    name
}

/// A root filesystem tar: `busybox` at `/bin/busybox` and a symlink to it for each applet.
fn busybox_rootfs(busybox: &Path) -> Vec<u8> {
    let binary = std::fs::read(busybox).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); install Debian's busybox-static to run the daemon tests",
            busybox.display()
        )
    });
    let output = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .unwrap_or_else(|e| panic!("running {} --list-full: {e}", busybox.display()));
    assert!(
        output.status.success(),
        "{} --list-full failed",
        busybox.display()
    );
    let list = String::from_utf8(output.stdout).expect("applet list is UTF-8");
    let mut applets: Vec<&str> = list
        .lines()
        .map(|l| l.trim().trim_start_matches('/'))
        .filter(|l| !l.is_empty() && *l != "bin/busybox")
        .collect();
    applets.sort_unstable();
    applets.dedup();

    let mut tar = tar::Builder::new(Vec::new());
    for (dir, mode) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("root", 0o700),
        ("sbin", 0o755),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
    ] {
        let mut header = tar_header(tar::EntryType::Directory, mode, 0);
        tar.append_data(&mut header, dir, std::io::empty())
            .expect("tar dir");
    }
    let mut header = tar_header(tar::EntryType::Regular, 0o755, binary.len() as u64);
    tar.append_data(&mut header, "bin/busybox", binary.as_slice())
        .expect("tar busybox");
    for applet in applets {
        let mut header = tar_header(tar::EntryType::Symlink, 0o777, 0);
        tar.append_link(&mut header, applet, "/bin/busybox")
            .expect("tar symlink");
    }
    tar.into_inner().expect("finishing the rootfs tar")
}

fn tar_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// An in-memory tar of a build context: each `(path, contents)` as a regular file with mode
/// 0644, owner 0:0 and mtime 0, in the given order, so equal inputs give equal bytes.
///
/// ```
/// let tar = workspace_tests::daemon::tar_context(&[("Dockerfile", b"FROM scratch\n")]);
/// let mut archive = tar::Archive::new(tar.as_slice());
/// let entry = archive.entries().unwrap().next().unwrap().unwrap();
/// assert_eq!(entry.path().unwrap().to_str(), Some("Dockerfile"));
/// ```
pub fn tar_context(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut header = tar_header(tar::EntryType::Regular, 0o644, contents.len() as u64);
        tar.append_data(&mut header, path, *contents)
            .unwrap_or_else(|e| panic!("adding {path} to the context tar: {e}"));
    }
    tar.into_inner().expect("finishing the context tar")
}

/// A string no other build (in this or another process) uses: `{prefix}-{pid}-{nanos}-{n}`.
/// Handy to defeat the build cache and to find one's own log lines.
pub fn unique_marker(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_context_is_deterministic_and_readable() {
        let files: &[(&str, &[u8])] = &[("Dockerfile", b"FROM x\n"), ("dir/data.txt", b"hello")];
        let tar = tar_context(files);
        assert_eq!(tar, tar_context(files));
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.mode().unwrap(), 0o644);
            assert_eq!(header.mtime().unwrap(), 0);
            assert_eq!(header.uid().unwrap(), 0);
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut contents = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut contents).unwrap();
            seen.push((path, contents));
        }
        assert_eq!(
            seen,
            vec![
                ("Dockerfile".to_string(), b"FROM x\n".to_vec()),
                ("dir/data.txt".to_string(), b"hello".to_vec()),
            ]
        );
    }

    #[test]
    fn markers_are_unique() {
        let a = unique_marker("m");
        let b = unique_marker("m");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("m-{}-", std::process::id())), "{a}");
    }

    #[test]
    fn rootfs_links_every_applet_to_busybox() {
        if !Path::new(BUSYBOX).exists() {
            assert!(!ci(), "{BUSYBOX} is missing; CI=true makes this a failure");
            let _ = writeln!(std::io::stderr(), "SKIPPED: {BUSYBOX} is missing");
            return;
        }
        let tar = busybox_rootfs(Path::new(BUSYBOX));
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut links = Vec::new();
        let mut binary_size = None;
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            match entry.header().entry_type() {
                tar::EntryType::Symlink => {
                    let target = entry.link_name().unwrap().unwrap();
                    assert_eq!(target.to_str(), Some("/bin/busybox"), "{path}");
                    links.push(path);
                }
                tar::EntryType::Regular => {
                    assert_eq!(path, "bin/busybox");
                    binary_size = Some(entry.header().size().unwrap());
                }
                _ => {}
            }
        }
        assert_eq!(binary_size, Some(std::fs::metadata(BUSYBOX).unwrap().len()));
        for needed in ["bin/sh", "bin/echo", "bin/cat", "bin/ls", "bin/sleep"] {
            assert!(
                links.iter().any(|l| l == needed),
                "no {needed} in {links:?}"
            );
        }
    }
}
