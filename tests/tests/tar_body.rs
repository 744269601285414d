//! The context as the `POST /build` tar body, through the library with no session
//! (`SessionMode::Never`: the path of the classic builder, and of BuildKit where no session is
//! possible), on the CI daemon (Docker 20.10): where the Dockerfile goes (issue 15, item 5) and
//! the upload's byte count (item 10).

use std::path::{Path, PathBuf};

use buildkit_events::Event;
use docker_build::connection::Daemon;
use docker_build::decode::BuildEvent;
use docker_build::{BuildOptions, Builder, SessionMode, UploadProgress, build_with_progress};
use docker_context::Context;
use workspace_tests::daemon::{base_image, daemon, unique_marker};
use workspace_tests::events::{log_lines, summary};

/// A fresh directory under the temp dir, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("bktrace-tarbody-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(relative);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn options(builder: Builder) -> BuildOptions {
    BuildOptions {
        builder,
        no_cache: true,
        session: SessionMode::Never,
        ..Default::default()
    }
}

/// Builds `context`, returning its events and the upload's last state.
async fn run(
    daemon: &Daemon,
    context: Context,
    options: &BuildOptions,
) -> (Vec<BuildEvent>, UploadProgress) {
    let progress = UploadProgress::new();
    let mut stream = build_with_progress(daemon, context, options, progress.clone())
        .await
        .expect("build starts");
    let mut events = Vec::new();
    while let Some(event) = stream.next_event().await {
        events.push(event.expect("the build stream ends cleanly"));
    }
    (events, progress)
}

/// What `ls -a /ctx` printed between `marker` and `<marker>-end`.
fn listed(events: &[BuildEvent], marker: &str) -> Vec<String> {
    let lines = log_lines(events);
    let start = lines
        .iter()
        .position(|l| *l == marker)
        .expect("the listing");
    let end = lines
        .iter()
        .position(|l| *l == format!("{marker}-end"))
        .unwrap();
    lines[start + 1..end]
        .iter()
        .filter(|l| *l != "." && *l != "..")
        .cloned()
        .collect()
}

fn listing_dockerfile(base: &str, marker: &str) -> String {
    format!("FROM {base}\nCOPY . /ctx/\nRUN echo {marker}; ls -a /ctx; echo {marker}-end\n")
}

/// An outside Dockerfile travels as `.dockerfile.<hex>`: the classic builder removes it and the
/// generated `.dockerignore` (which lists both), BuildKit given the tar applies no ignore rules
/// and shows both to `COPY .`.
#[tokio::test]
async fn an_outside_dockerfile_builds_from_the_tar_on_both_builders() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let context = Dir::new("outside-ctx");
    context.file("app.txt", "app\n");
    let elsewhere = Dir::new("outside-df");
    let marker = unique_marker("tarbody-outside");
    let dockerfile = elsewhere.file("prod.Dockerfile", listing_dockerfile(&base, &marker));
    let plan = || {
        Context::builder(&context.0)
            .dockerfile(&dockerfile)
            .plan()
            .unwrap()
    };
    let generated = plan().dockerfile_path_in_context().to_owned();
    assert!(plan().dockerfile_ignored());

    let (events, _) = run(&daemon, plan(), &options(Builder::Classic)).await;
    assert!(
        summary(&events).succeeded(),
        "{:?}",
        summary(&events).failure
    );
    assert_eq!(listed(&events, &marker), ["app.txt"]);

    let (events, _) = run(&daemon, plan(), &options(Builder::BuildKit)).await;
    assert!(
        summary(&events).succeeded(),
        "{:?}",
        summary(&events).failure
    );
    assert_eq!(
        listed(&events, &marker),
        [generated.as_str(), ".dockerignore", "app.txt"]
    );
}

/// A Dockerfile the `.dockerignore` excludes: absent with the classic builder, present (what
/// `dockerfile_ignored` warns of) with BuildKit given the tar.
#[tokio::test]
async fn an_ignored_dockerfile_is_absent_only_with_the_classic_builder() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let context = Dir::new("ignored");
    let marker = unique_marker("tarbody-ignored");
    context.file("Dockerfile", listing_dockerfile(&base, &marker));
    context.file(".dockerignore", "Dockerfile\n");
    context.file("app.txt", "app\n");
    let plan = || Context::from_dir(&context.0).unwrap();
    assert!(plan().dockerfile_ignored());

    let (events, _) = run(&daemon, plan(), &options(Builder::Classic)).await;
    assert_eq!(listed(&events, &marker), [".dockerignore", "app.txt"]);
    let (events, _) = run(&daemon, plan(), &options(Builder::BuildKit)).await;
    assert_eq!(
        listed(&events, &marker),
        [".dockerignore", "Dockerfile", "app.txt"]
    );
}

/// The upload is counted to the tar's last byte, on both builders, and the count is done
/// before the build's last event.
#[tokio::test]
async fn the_upload_counts_every_byte_of_the_tar() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let context = Dir::new("count");
    context.file(
        "Dockerfile",
        format!("FROM {base}\nRUN echo {}\n", unique_marker("tarbody-count")),
    );
    let data: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    context.file("big.bin", data);
    let size: u64 = tar_size(&context.0);
    assert!(size > 2_000_000);
    for builder in [Builder::Classic, Builder::BuildKit] {
        let (events, progress) = run(
            &daemon,
            Context::from_dir(&context.0).unwrap(),
            &options(builder),
        )
        .await;
        assert!(summary(&events).succeeded(), "{builder:?}");
        let last = progress.snapshot().expect("the upload started");
        assert_eq!((last.sent, last.done, last.builder), (size, true, builder));
        assert!(last.started <= last.at);
        // The build did run.
        assert!(
            events
                .iter()
                .any(|e| matches!(e, BuildEvent::Vertex(Event::Completed(_))))
        );
    }
}

fn tar_size(dir: &Path) -> u64 {
    Context::from_dir(dir)
        .unwrap()
        .into_chunks()
        .map(|chunk| chunk.unwrap().len() as u64)
        .sum()
}
