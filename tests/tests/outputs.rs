//! Builds whose result is files, received through the BuildKit session (`--output
//! type=local` and `type=tar,dest=FILE`), against Docker 20.10 (the default socket) and
//! Docker 28 (`BKTRACE_DOCKER28_HOST`). The build succeeds without an image, the files are
//! there with their contents, modes and links, and nothing is written beside the destination.
//! Without a daemon each test skips visibly; under `CI=true` it fails.

use std::path::PathBuf;

use bytes::Bytes;
use docker_build::connection::Daemon;
use docker_build::decode::BuildEvent;
use docker_build::{BuildOptions, Output, TarDest, build};
use docker_context::Context;
use workspace_tests::daemon::{base_image, daemon, daemon28, tar_context, unique_marker};
use workspace_tests::events::summary;
use workspace_tests::outputs::{dockerfile, expected, read_dir, read_tar};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_marker(&format!("bktrace-output-{name}")));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Builds `dockerfile` with `output` to its end: the events.
async fn run(daemon: &Daemon, dockerfile: &str, output: Output) -> Vec<BuildEvent> {
    let context = Context::from_tar(Bytes::from(tar_context(&[(
        "Dockerfile",
        dockerfile.as_bytes(),
    )])));
    let options = BuildOptions {
        outputs: vec![output],
        ..Default::default()
    };
    let mut stream = build(daemon, context, &options)
        .await
        .expect("the build starts");
    assert!(stream.session_id().is_some(), "an output needs a session");
    let mut events = Vec::new();
    while let Some(event) = stream.next_event().await {
        events.push(event.expect("the build stream ends cleanly"));
    }
    events
}

/// The build succeeded without an image, because its output was written.
fn assert_exported(events: &[BuildEvent]) {
    let summary = summary(events);
    assert!(summary.succeeded(), "{events:#?}");
    assert!(summary.exported, "{summary:#?}");
    assert_eq!(summary.image_id, None, "an output build makes no image");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, BuildEvent::ImageBuilt { .. }))
    );
}

async fn a_local_output_writes_the_files_under_dest_only(daemon: Daemon) {
    let base = base_image(&daemon).await;
    let marker = unique_marker("local-output");
    let parent = temp_dir("local");
    let dest = parent.join("out");
    let events = run(
        &daemon,
        &dockerfile(&base, &marker),
        Output::Local { dest: dest.clone() },
    )
    .await;
    assert_exported(&events);
    assert_eq!(read_dir(&dest), expected(&marker));
    // Nothing beside the destination.
    let beside: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["out"]);
    std::fs::remove_dir_all(&parent).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker20_a_local_output_writes_the_files_under_dest_only() {
    let Some(daemon) = daemon().await else { return };
    a_local_output_writes_the_files_under_dest_only(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_a_local_output_writes_the_files_under_dest_only() {
    let Some(daemon) = daemon28().await else {
        return;
    };
    a_local_output_writes_the_files_under_dest_only(daemon).await;
}

async fn a_tar_output_writes_the_archive_to_its_file(daemon: Daemon) {
    let base = base_image(&daemon).await;
    let marker = unique_marker("tar-output");
    let dir = temp_dir("tar");
    let file = dir.join("result.tar");
    let events = run(
        &daemon,
        &dockerfile(&base, &marker),
        Output::Tar {
            dest: TarDest::File(file.clone()),
        },
    )
    .await;
    assert_exported(&events);
    assert_eq!(read_tar(&std::fs::read(&file).unwrap()), expected(&marker));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker20_a_tar_output_writes_the_archive_to_its_file() {
    let Some(daemon) = daemon().await else { return };
    a_tar_output_writes_the_archive_to_its_file(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_a_tar_output_writes_the_archive_to_its_file() {
    let Some(daemon) = daemon28().await else {
        return;
    };
    a_tar_output_writes_the_archive_to_its_file(daemon).await;
}
