//! Several builds at once on one daemon, through one [`Daemon`] client: each build's stream
//! carries only its own build's events. Skips without a daemon; fails without one under
//! `CI=true`.

use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::RemoveImageOptionsBuilder;
use bytes::Bytes;
use docker_build::connection::Daemon;
use docker_build::decode::BuildEvent;
use docker_build::{BuildOptions, build};
use docker_context::Context;
use tokio::sync::Barrier;
use workspace_tests::daemon::{base_image, daemon, tar_context, unique_marker};
use workspace_tests::events::log_lines as logs;

const BUILDS: usize = 8;

/// One build's marker, tag and every event of its stream.
struct Built {
    marker: String,
    tag: String,
    events: Vec<BuildEvent>,
}

async fn run_build(daemon: Daemon, base: String, i: usize, start: Arc<Barrier>) -> Built {
    // The prefixes differ, so no marker is a substring of another.
    let marker = unique_marker(&format!("conc{i}"));
    let tag = format!("bktrace-test-concurrency:{marker}");
    let dockerfile = format!("FROM {base}\nRUN echo {marker} && echo done-{marker}\n");
    let context = Context::from_tar(Bytes::from(tar_context(&[(
        "Dockerfile",
        dockerfile.as_bytes(),
    )])));
    let options = BuildOptions {
        tags: vec![tag.clone()],
        no_cache: true,
        ..Default::default()
    };
    // All builds are sent together.
    start.wait().await;
    let mut stream = build(&daemon, context, &options)
        .await
        .unwrap_or_else(|e| panic!("build {i} does not start: {e}"));
    let mut events = Vec::new();
    while let Some(event) = stream.next_event().await {
        events.push(event.unwrap_or_else(|e| panic!("build {i}'s stream failed: {e}")));
    }
    Built {
        marker,
        tag,
        events,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_builds_at_once_through_one_client_each_see_only_their_own_events() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let start = Arc::new(Barrier::new(BUILDS));
    let tasks: Vec<_> = (0..BUILDS)
        .map(|i| {
            tokio::spawn(run_build(
                daemon.clone(),
                base.clone(),
                i,
                Arc::clone(&start),
            ))
        })
        .collect();
    let deadline = Duration::from_secs(300);
    let mut builds = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let built = tokio::time::timeout(deadline, task)
            .await
            .unwrap_or_else(|_| panic!("build {i} did not end within {deadline:?}"))
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        builds.push(built);
    }

    // Look the images up, then remove them, then judge: a failed assertion leaves no images.
    let mut ids = Vec::new();
    let mut inspected = Vec::new();
    for b in &builds {
        let id = match b.events.last() {
            Some(BuildEvent::Finished(s)) => s.image_id.clone(),
            _ => None,
        };
        let image = match &id {
            Some(id) => daemon.bollard().inspect_image(id).await.ok(),
            None => None,
        };
        inspected.push(image);
        ids.push(id);
    }
    let remove = RemoveImageOptionsBuilder::default().force(true).build();
    for b in &builds {
        let _ = daemon
            .bollard()
            .remove_image(&b.tag, Some(remove.clone()), None)
            .await;
    }

    let markers: Vec<&str> = builds.iter().map(|b| b.marker.as_str()).collect();
    for (i, b) in builds.iter().enumerate() {
        let what = format!("build {i} ({})", b.marker);
        match b.events.last() {
            Some(BuildEvent::Finished(s)) => {
                assert!(s.failure.is_none(), "{what}: {:?}", s.failure)
            }
            other => panic!("{what}: the last event is not Finished: {other:?}"),
        }
        let lines = logs(&b.events);
        assert!(lines.contains(&b.marker), "{what}: {lines:?}");
        assert!(
            lines.contains(&format!("done-{}", b.marker)),
            "{what}: {lines:?}"
        );
        // No other build's marker anywhere in this build's events (names, logs, messages, …).
        for e in &b.events {
            let text = format!("{e:?}");
            for other in markers.iter().filter(|m| **m != b.marker) {
                assert!(
                    !text.contains(other),
                    "{what} carries {other}'s event: {text}"
                );
            }
        }
        let id = ids[i]
            .as_deref()
            .unwrap_or_else(|| panic!("{what}: no image id"));
        assert!(id.starts_with("sha256:"), "{what}: {id}");
        let image = inspected[i]
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: image {id} does not exist"));
        assert_eq!(image.id.as_deref(), Some(id), "{what}");
        assert!(
            image.repo_tags.iter().flatten().any(|t| t == &b.tag),
            "{what}: {id} is tagged {}",
            b.tag
        );
    }
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), BUILDS, "eight distinct images: {ids:?}");
}
