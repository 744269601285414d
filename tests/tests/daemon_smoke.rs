//! First contact with a live Docker daemon: the raw `POST /build` of `docker_build::connection`.
//!
//! Without a daemon every test that needs one prints `SKIPPED: …` and passes, unless `CI=true`.

use std::convert::Infallible;

use buildkit_proto::{Message as _, StatusResponse};
use bytes::Bytes;
use docker_build::connection::{BuildRequestError, ConnectError, Daemon, DockerHost};
use futures_util::StreamExt as _;
use workspace_tests::body::{decode_aux, json_lines};
use workspace_tests::daemon;

/// A request body holding `context` in one chunk.
fn body(context: Vec<u8>) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::once(async move { Ok(Bytes::from(context)) })
}

#[tokio::test]
async fn ping_through_bollard() {
    let Some(daemon) = daemon::daemon().await else {
        return;
    };
    assert_eq!(daemon.bollard().ping().await.unwrap(), "OK");
    let version = daemon.bollard().version().await.unwrap();
    let daemon_api = version.api_version.expect("daemon reports ApiVersion");
    // Negotiation never goes above what the daemon speaks.
    let parse = |v: &str| -> (u32, u32) {
        let (major, minor) = v.split_once('.').expect("major.minor");
        (major.parse().unwrap(), minor.parse().unwrap())
    };
    assert!(parse(daemon.api_version()) <= parse(&daemon_api));
}

#[tokio::test]
async fn buildkit_build_streams_trace_records_and_an_image_id() {
    let Some(daemon) = daemon::daemon().await else {
        return;
    };
    let base = daemon::base_image(&daemon).await;
    let marker = daemon::unique_marker("smoke");
    let dockerfile = format!("FROM {base}\nRUN echo {marker}\n");
    let context = daemon::tar_context(&[("Dockerfile", dockerfile.as_bytes())]);

    let mut response = daemon
        .post_build("version=2&nocache=1", body(context))
        .await
        .unwrap();
    let mut raw = Vec::new();
    while let Some(chunk) = response.next().await {
        raw.extend_from_slice(&chunk.unwrap());
    }
    assert!(
        raw.ends_with(b"\r\n"),
        "body does not end with a whole line"
    );

    let lines = json_lines(&raw);
    let errors: Vec<_> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert!(errors.is_empty(), "build failed: {errors:?}");

    let mut statuses = Vec::new();
    let mut image_ids = Vec::new();
    for line in &lines {
        match line["id"].as_str() {
            Some("moby.buildkit.trace") => {
                let aux = line["aux"].as_str().expect("trace aux is a base64 string");
                let proto = decode_aux(aux)
                    .unwrap_or_else(|e| panic!("trace aux is not base64 ({e}): {aux}"));
                statuses.push(
                    StatusResponse::decode(proto)
                        .unwrap_or_else(|e| panic!("not a StatusResponse ({e}): {aux}")),
                );
            }
            Some("moby.image.id") => image_ids.push(
                line["aux"]["ID"]
                    .as_str()
                    .expect("image id aux has an ID")
                    .to_string(),
            ),
            _ => {}
        }
    }
    assert!(!statuses.is_empty(), "no moby.buildkit.trace records");

    let names: Vec<&str> = statuses
        .iter()
        .flat_map(|s| &s.vertexes)
        .map(|v| v.name.as_str())
        .collect();
    assert!(
        names.iter().any(|n| n.contains("RUN echo")),
        "no RUN echo vertex in {names:?}"
    );
    let logs: Vec<String> = statuses
        .iter()
        .flat_map(|s| &s.logs)
        .map(|l| String::from_utf8_lossy(&l.msg).into_owned())
        .collect();
    assert!(
        logs.iter().any(|l| l.contains(&marker)),
        "marker {marker} not in logs {logs:?}"
    );

    assert_eq!(image_ids.len(), 1, "{image_ids:?}");
    let id = &image_ids[0];
    assert!(id.starts_with("sha256:"), "{id}");
    let image = daemon.bollard().inspect_image(id).await.unwrap();
    assert_eq!(image.id.as_deref(), Some(id.as_str()));
    daemon
        .bollard()
        .remove_image(
            id,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .unwrap();
}

/// Sends a build the daemon refuses before streaming anything; returns status and message.
async fn refused(daemon: &Daemon, query: &str) -> (u16, String) {
    let context = daemon::tar_context(&[("Dockerfile", b"FROM scratch\n")]);
    let error = daemon
        .post_build(query, body(context))
        .await
        .expect_err("the daemon should refuse this query");
    assert!(error.to_string().contains("HTTP"), "{error}");
    match error {
        BuildRequestError::Status { status, message } => (status, message),
        other => panic!("expected an HTTP status error, got {other:?}"),
    }
}

#[tokio::test]
async fn error_status_before_streaming_carries_the_daemon_message() {
    let Some(daemon) = daemon::daemon().await else {
        return;
    };
    let (status, message) = refused(&daemon, "version=2&buildargs=notjson").await;
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("error reading build args"), "{message}");

    // An unknown builder version: 500 on Docker 20.10, 400 (invalid parameter) on newer daemons.
    let (status, message) = refused(&daemon, "version=3").await;
    assert!(status == 400 || status == 500, "{status} {message}");
    assert!(message.contains("invalid version"), "{message}");
}

#[tokio::test]
async fn missing_socket_is_named_in_the_error() {
    // Needs no daemon: nothing can listen on a path whose directory does not exist.
    let path = std::env::temp_dir()
        .join(daemon::unique_marker("no-such-dir"))
        .join("docker.sock");
    let host = DockerHost::Unix(path.clone());
    let error = Daemon::connect_to(host.clone())
        .await
        .expect_err("nothing listens there");
    assert!(
        matches!(&error, ConnectError::Unreachable { host: h, .. } if *h == host),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_image_is_shared_by_concurrent_callers() {
    let Some(daemon) = daemon::daemon().await else {
        return;
    };
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let daemon = daemon.clone();
            tokio::spawn(async move { daemon::base_image(&daemon).await })
        })
        .collect();
    let mut names = Vec::new();
    for task in tasks {
        names.push(task.await.unwrap());
    }
    assert!(names.iter().all(|n| *n == names[0]), "{names:?}");
    let image = daemon.bollard().inspect_image(&names[0]).await.unwrap();
    assert_eq!(image.os.as_deref(), Some("linux"));
    assert!(
        image.size.unwrap_or_default() > 1_000_000,
        "busybox is missing"
    );
}
