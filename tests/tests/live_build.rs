//! `docker_build::build()` against a live daemon (the CI daemon, with the harness's busybox base
//! image; no registry). Without a daemon each test skips visibly; under `CI=true` it fails.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use buildkit_events::{Event, Outcome, Stream};
use bytes::Bytes;
use docker_build::connection::Daemon;
use docker_build::decode::BuildEvent;
use docker_build::{BuildOptions, BuildStream, Builder, build};
use docker_context::Context;
use dockerfile_analysis::base_images;
use workspace_tests::daemon::{base_image, daemon, tar_context, unique_marker};
use workspace_tests::events::{log_lines as logs, outcomes, summary};

/// Runs a build to its end and returns every event; panics on a stream error. For BuildKit
/// builds it also checks the Dockerfile parser against BuildKit: the images of the
/// `[internal] load metadata for …` vertices are exactly the ones `base_images` predicted.
async fn run(daemon: &Daemon, dockerfile: &str, options: &BuildOptions) -> Vec<BuildEvent> {
    let context = Context::from_tar(Bytes::from(tar_context(&[(
        "Dockerfile",
        dockerfile.as_bytes(),
    )])));
    let events = collect(build(daemon, context, options).await.expect("build starts")).await;
    if options.builder == Builder::BuildKit {
        assert_metadata_matches_parser(dockerfile, &options.build_args, &events);
    }
    events
}

fn assert_metadata_matches_parser(
    dockerfile: &str,
    build_args: &[(String, String)],
    events: &[BuildEvent],
) {
    let predicted: BTreeSet<String> =
        base_images(dockerfile, build_args.iter().map(|(k, v)| (k, v)))
            .expect("the parser accepts a Dockerfile the daemon built")
            .images
            .iter()
            .map(|i| i.normalized().expect("normalizable reference"))
            .collect();
    let loaded: BTreeSet<String> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Vertex(Event::Started(s)) => {
                s.name.strip_prefix("[internal] load metadata for ")
            }
            _ => None,
        })
        .map(|image| image.split(' ').next().unwrap_or(image).to_string())
        .collect();
    assert_eq!(
        loaded, predicted,
        "BuildKit loaded metadata for other images than the parser predicted"
    );
}

async fn collect(mut stream: BuildStream) -> Vec<BuildEvent> {
    let mut events = Vec::new();
    while let Some(event) = stream.next_event().await {
        events.push(event.expect("the build stream ends cleanly"));
    }
    events
}

fn pairs(events: &[BuildEvent]) -> (usize, usize) {
    let started = events
        .iter()
        .filter(|e| matches!(e, BuildEvent::Vertex(Event::Started(_))))
        .count();
    let completed = events
        .iter()
        .filter(|e| matches!(e, BuildEvent::Vertex(Event::Completed(_))))
        .count();
    (started, completed)
}

fn two_step(base: &str, marker: &str) -> String {
    format!("FROM {base}\nRUN echo {marker} && echo line-two\nRUN echo second-step\n")
}

/// The original change's test, then the same build again: cached.
#[tokio::test]
async fn two_step_build_reports_steps_logs_and_image_then_comes_back_cached() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let marker = unique_marker("two-step");
    let dockerfile = two_step(&base, &marker);
    let tag = format!("bktrace-test-two-step:{}", marker.to_lowercase());
    let options = BuildOptions {
        tags: vec![tag.clone()],
        ..Default::default()
    };

    let events = run(&daemon, &dockerfile, &options).await;
    let (started, completed) = pairs(&events);
    assert!(
        started >= 2 && completed >= 2,
        "{started} started, {completed} completed"
    );
    assert!(
        logs(&events).iter().any(|l| l == &marker),
        "no log line is the marker {marker}"
    );
    assert_eq!(outcomes(&events, "RUN echo second-step"), [Outcome::Done]);
    let s = summary(&events);
    assert!(s.failure.is_none(), "{:?}", s.failure);
    let id = s.image_id.clone().expect("an image id is reported");
    let image = daemon
        .bollard()
        .inspect_image(&id)
        .await
        .expect("the image exists");
    assert!(
        image.repo_tags.unwrap_or_default().contains(&tag),
        "tagged {tag}"
    );

    let again = run(&daemon, &dockerfile, &options).await;
    assert_eq!(
        outcomes(&again, &format!("RUN echo {marker}")),
        [Outcome::Cached]
    );
    assert_eq!(outcomes(&again, "RUN echo second-step"), [Outcome::Cached]);
    assert!(
        !logs(&again).iter().any(|l| l == &marker),
        "a cached step prints nothing"
    );
    assert_eq!(summary(&again).image_id.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn a_failing_run_is_attributed_to_its_step_with_its_stderr() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let marker = unique_marker("fails");
    let dockerfile = format!(
        "FROM {base}\nRUN echo out-{marker} && echo err-{marker} >&2 && exit 3\nRUN echo never\n"
    );
    let events = run(
        &daemon,
        &dockerfile,
        &BuildOptions {
            no_cache: true,
            ..Default::default()
        },
    )
    .await;
    let failed: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, BuildEvent::Failed(_)))
        .collect();
    assert_eq!(failed.len(), 1);
    let failure = summary(&events).failure.clone().expect("the build failed");
    assert!(
        failure.message.contains("exit code: 3"),
        "{}",
        failure.message
    );
    let step = failure.step.expect("attributed to a step");
    assert!(
        step.name.contains(&format!("RUN echo out-{marker}")),
        "{}",
        step.name
    );
    let last_lines: Vec<String> = step.last_lines.iter().map(|l| l.text().into()).collect();
    assert!(
        last_lines.contains(&format!("err-{marker}")),
        "{last_lines:?}"
    );
    assert!(
        last_lines.contains(&format!("out-{marker}")),
        "{last_lines:?}"
    );
    assert!(summary(&events).image_id.is_none());
    assert!(
        outcomes(&events, "RUN echo never").is_empty(),
        "the next step never ran"
    );
}

#[tokio::test]
async fn an_ignored_file_is_absent_from_the_image() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let marker = unique_marker("ignore");
    let dir = std::env::temp_dir().join(format!("bktrace-ignore-{marker}"));
    std::fs::create_dir_all(dir.join("src/secret")).unwrap();
    std::fs::write(dir.join("src/kept.txt"), "kept").unwrap();
    std::fs::write(dir.join("src/drop.tmp"), "dropped").unwrap();
    std::fs::write(dir.join("src/secret/key"), "secret").unwrap();
    std::fs::write(dir.join(".dockerignore"), "**/*.tmp\nsrc/secret\n").unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {base}\nCOPY src /src\nRUN echo {marker} && find /src | sort\n"),
    )
    .unwrap();
    let context = Context::from_dir(&dir).expect("context");
    let events = collect(
        build(
            &daemon,
            context,
            &BuildOptions {
                no_cache: true,
                ..Default::default()
            },
        )
        .await
        .unwrap(),
    )
    .await;
    let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
    assert_metadata_matches_parser(&dockerfile, &[], &events);
    std::fs::remove_dir_all(&dir).unwrap();
    let lines = logs(&events);
    assert!(lines.contains(&marker), "the RUN ran: {lines:?}");
    assert!(lines.contains(&"/src/kept.txt".to_string()), "{lines:?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("drop.tmp") || l.contains("secret")),
        "{lines:?}"
    );
    assert!(summary(&events).failure.is_none());
}

#[tokio::test]
async fn the_classic_builder_gives_the_same_vocabulary() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let marker = unique_marker("classic");
    let dockerfile = two_step(&base, &marker);
    let options = BuildOptions {
        builder: Builder::Classic,
        no_cache: true,
        ..Default::default()
    };
    let events = run(&daemon, &dockerfile, &options).await;
    let (started, completed) = pairs(&events);
    assert_eq!((started, completed), (3, 3), "one vertex per step");
    assert_eq!(
        outcomes(&events, &format!("[2/3] RUN echo {marker}")),
        [Outcome::Done]
    );
    assert!(logs(&events).contains(&marker));
    let id = summary(&events).image_id.clone().expect("image id");
    daemon
        .bollard()
        .inspect_image(&id)
        .await
        .expect("the image exists");

    let again = run(
        &daemon,
        &dockerfile,
        &BuildOptions {
            builder: Builder::Classic,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(outcomes(&again, "RUN echo second-step"), [Outcome::Cached]);

    let failing = format!("FROM {base}\nRUN echo x-{marker} && echo e-{marker} >&2 && exit 4\n");
    let events = run(&daemon, &failing, &options).await;
    let failure = summary(&events).failure.clone().expect("failed");
    assert_eq!(failure.code, Some(4));
    let step = failure.step.expect("attributed");
    // stdout and stderr are separate pipes: their lines may interleave either way.
    let mut tail: Vec<String> = step.last_lines.iter().map(|l| l.text().into()).collect();
    tail.sort();
    assert_eq!(tail, [format!("e-{marker}"), format!("x-{marker}")]);
    // The daemon marks stderr with terminal colour codes; they come out as the stderr stream.
    let stderr: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Vertex(Event::Log(l)) if l.stream == Stream::Stderr => {
                Some(l.text().into_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(stderr, [format!("e-{marker}")]);
}

/// The classic builder reports an image id for every stage it finishes; when a later stage
/// fails, none of them is the build's image (issue 15, item 6).
#[tokio::test]
async fn a_classic_build_failing_in_its_second_stage_reports_no_image() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let marker = unique_marker("classic-stages");
    let dockerfile = format!(
        "FROM {base} AS first\nRUN echo {marker} > /one\nFROM {base}\nCOPY --from=first /one /one\nRUN exit 5\n"
    );
    let options = BuildOptions {
        builder: Builder::Classic,
        no_cache: true,
        ..Default::default()
    };
    let events = run(&daemon, &dockerfile, &options).await;
    let stage_ids = events
        .iter()
        .filter(|e| matches!(e, BuildEvent::ImageBuilt { .. }))
        .count();
    assert_eq!(
        stage_ids, 0,
        "no image reported for a failed build: {events:#?}"
    );
    let finished = summary(&events);
    assert_eq!(finished.failure.as_ref().and_then(|f| f.code), Some(5));
    assert_eq!(finished.image_id, None);
    assert!(!finished.succeeded());
}

fn processes_mentioning(needle: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmd| cmd.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .count()
}

/// Events arrive while the build runs, and dropping the stream stops the build.
#[tokio::test]
async fn events_stream_live_and_dropping_the_stream_stops_the_build() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let marker = unique_marker("slow");
    let dockerfile =
        format!("FROM {base}\nRUN echo first-{marker}; sleep 60; echo last-{marker}\n");
    let context = Context::from_tar(Bytes::from(tar_context(&[(
        "Dockerfile",
        dockerfile.as_bytes(),
    )])));
    let mut stream = build(
        &daemon,
        context,
        &BuildOptions {
            no_cache: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let first = format!("first-{marker}");
    loop {
        match stream.next_event().await {
            Some(Ok(BuildEvent::Vertex(Event::Log(l)))) if l.text() == first => break,
            Some(Ok(BuildEvent::Finished(_))) | None => {
                panic!("the build ended before its first line")
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("{e}"),
        }
    }
    // Everything the decoder has seen so far still has the RUN running: the line came out while
    // the step was sleeping, not in one batch at the end.
    let running: Vec<String> = stream
        .decoder()
        .running()
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    assert!(
        running.iter().any(|n| n.contains(&first)),
        "running: {running:?}"
    );
    assert!(
        processes_mentioning(&first) > 0,
        "the step's shell runs on this machine"
    );

    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(30);
    while processes_mentioning(&first) > 0 {
        assert!(
            Instant::now() < deadline,
            "the build still runs 30 s after the stream was dropped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A multi-stage build with meta ARGs, a stage named like an image, `COPY --from` an image and a
/// build arg: the parser's prediction matches what BuildKit resolved (checked inside `run`).
#[tokio::test]
async fn the_dockerfile_parser_predicts_the_images_buildkit_loads() {
    let Some(daemon) = daemon().await else { return };
    let base = base_image(&daemon).await;
    let (repo, tag) = base.split_once(':').unwrap();
    let marker = unique_marker("images");
    let dockerfile = format!(
        "# syntax check: none\nARG REPO=nothing-here\nARG TAG=latest\n\
         FROM ${{REPO}}:${{TAG}} AS {repo}\nRUN echo {marker} > /stage-a\n\
         from {repo} as second\nRUN cat /stage-a\n\
         FROM scratch\nCOPY --from=second /stage-a /a\nCOPY --from={base} /bin/busybox /busybox\n"
    );
    let options = BuildOptions {
        build_args: vec![("REPO".into(), repo.into()), ("TAG".into(), tag.into())],
        no_cache: true,
        ..Default::default()
    };
    let events = run(&daemon, &dockerfile, &options).await;
    assert!(
        summary(&events).failure.is_none(),
        "{:?}",
        summary(&events).failure
    );
    assert!(logs(&events).contains(&marker));
}
