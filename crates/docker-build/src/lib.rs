//! Run Docker image builds on a daemon and stream typed progress events.
//!
//! The daemon answers `POST /build` with newline-delimited JSON: BuildKit (`version=2`) sends
//! its progress as base64 protobuf records (`{"id":"moby.buildkit.trace","aux":"…"}`), the
//! classic builder (`version=1`) as text. This crate turns that body into [`BuildEvent`]s: every
//! per-vertex event of [`buildkit_events`] (started, completed, log lines, byte progress,
//! warnings), the image id, daemon messages, and the failure attributed to its step. The types
//! the events carry are re-exported here ([`Event`], [`Outcome`], [`Time`], [`LogLine`], …), so
//! this crate is the only dependency a user needs.
//!
//! # Features
//!
//! - Without features, the crate is the transport-free core: [`ndjson`], [`classic`],
//!   [`decode`], [`recording`] and [`BuildOptions`]. Body bytes in, [`BuildEvent`]s out, no I/O, no clock, no
//!   async runtime or HTTP stack in the dependency tree. Use it for recorded bodies, or with an
//!   HTTP client of your own ([`BuildOptions::query`] gives the query string).
//! - `daemon` (default): talking to a daemon with tokio, hyper and bollard. The [`connection`]
//!   module ([`DockerHost`] from `DOCKER_HOST`, [`Daemon`], the raw `/build` request), and
//!   [`build()`], which sends a build [`Context`] (re-exported from `docker-context`) and
//!   returns a [`BuildStream`] of events. [`bollard`] is re-exported at the version in use.
//! - `control` (off by default): BuildKit's gRPC Control API through the daemon's socket
//!   (`control`: build history, any build's live status).
//! - `session` (off by default): a BuildKit session served for the build (`session`): secrets
//!   ([`Secret`], `RUN --mount=type=secret`) and SSH agents ([`SshAgent`],
//!   `RUN --mount=type=ssh`) given in [`BuildOptions`], and outputs ([`Output`]: the result's
//!   files or a tar instead of an image). Without it a build given secrets, SSH agents or
//!   outputs fails before it starts.
//!
//! # Platforms
//!
//! The core is platform independent. With `daemon`, Unix sockets (`unix://`, the default
//! `DOCKER_HOST`) and build contexts from a directory (`docker-context`) are Unix-only
//! (`cfg(unix)`): on other platforms [`connection`] works with `tcp://` hosts, and
//! [`build()`], [`BuildStream`] and [`Context`] are not there.
//!
//! # Pieces, from the wire up
//!
//! - [`connection`] (`daemon`): finding and talking to the daemon (`DOCKER_HOST`, bollard for
//!   ping and version negotiation, the raw `/build` request over hyper).
//! - [`ndjson`], [`classic`], [`decode`]: the transport-free core, body bytes in and
//!   [`BuildEvent`]s out, shared by live builds, replays and tests.
//! - [`recording`]: the other recordings of a build (a BuildKit history logs blob, buildx
//!   `--progress=rawjson` output), told apart from a body by their first bytes, into the same
//!   events.
//! - [`options`]: the `POST /build` parameters and the decoder's limits.
//! - [`registry_auth`] (`daemon`): registry credentials found as the docker CLI finds them,
//!   and with `session` the session's `Auth` service that hands them to the daemon.
//! - [`stream`] (`daemon`, Unix): the live build as a `futures_core::Stream`.
//!
//! ```
//! use docker_build::{BuildDecoder, BuildEvent, Event, Time};
//!
//! // A classic-builder body, as recorded from the daemon.
//! let body = concat!(
//!     "{\"stream\":\"Step 1/1 : RUN echo hi\"}\r\n{\"stream\":\"\\n\"}\r\n",
//!     "{\"stream\":\"hi\\n\"}\r\n{\"aux\":{\"ID\":\"sha256:abc\"}}\r\n",
//! );
//! let mut decoder = BuildDecoder::new();
//! decoder.push(body, Time(0));
//! decoder.finish(Time(1));
//! let mut logs = Vec::new();
//! while let Some(event) = decoder.poll_event() {
//!     if let BuildEvent::Vertex(Event::Log(line)) = event {
//!         logs.push(line.text().into_owned());
//!     }
//! }
//! assert_eq!(logs, ["hi"]);
//! ```
#![cfg_attr(
    all(feature = "daemon", unix),
    doc = r#"
A live build (feature `daemon`, Unix). Dropping the stream closes the connection and the daemon
cancels the build.

```no_run
use docker_build::connection::Daemon;
use docker_build::{BuildEvent, BuildOptions, Context, build};

# async fn run() -> Result<(), Box<dyn std::error::Error>> {
let daemon = Daemon::connect().await?;
let context = Context::from_dir("./app")?;
let options = BuildOptions { tags: vec!["app:dev".into()], ..Default::default() };
let mut events = build(&daemon, context, &options).await?;
while let Some(event) = events.next_event().await {
    if let BuildEvent::Failed(failure) = event? {
        eprintln!("{}", failure.message);
    }
}
# Ok(()) }
```
"#
)]
// Links to what a feature or platform may leave out: to the item where it exists, else to the
// sections above.
#![cfg_attr(
    feature = "daemon",
    doc = "[`connection`]: crate::connection\n[`Daemon`]: crate::connection::Daemon\n\
           [`DockerHost`]: crate::connection::DockerHost\n[`bollard`]: crate::bollard\n\
           [`registry_auth`]: crate::registry_auth"
)]
#![cfg_attr(
    not(feature = "daemon"),
    doc = "[`connection`]: #features\n[`Daemon`]: #features\n[`DockerHost`]: #features\n\
           [`bollard`]: #features\n[`registry_auth`]: #features"
)]
#![cfg_attr(
    all(feature = "daemon", unix),
    doc = "[`build()`]: crate::build\n[`BuildStream`]: crate::BuildStream\n\
           [`Context`]: crate::Context\n[`stream`]: crate::stream"
)]
#![cfg_attr(
    not(all(feature = "daemon", unix)),
    doc = "[`build()`]: #platforms\n[`BuildStream`]: #platforms\n[`Context`]: #platforms\n\
           [`stream`]: #platforms"
)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod classic;
#[cfg(feature = "daemon")]
#[cfg_attr(docsrs, doc(cfg(feature = "daemon")))]
pub mod connection;
#[cfg(feature = "control")]
#[cfg_attr(docsrs, doc(cfg(feature = "control")))]
pub mod control;
pub mod decode;
pub mod ndjson;
pub mod options;
pub mod recording;
#[cfg(feature = "daemon")]
#[cfg_attr(docsrs, doc(cfg(feature = "daemon")))]
pub mod registry_auth;
#[cfg(all(feature = "session", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "session", unix))))]
pub mod session;
#[cfg(all(feature = "daemon", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "daemon", unix))))]
pub mod stream;
#[cfg(all(feature = "daemon", unix))]
mod upload;

pub use decode::{
    BuildDecoder, BuildEvent, BuildFailure, BuildSummary, ContextUpload, DecoderConfig, InputKind,
};
pub use ndjson::LineError;
pub use options::{
    BuildOptions, Builder, ContextTransport, Output, OutputSpecError, Secret, SecretSource,
    SecretSpecError, SessionMode, SshAgent, SshSpecError, TarDest,
};
#[cfg(all(feature = "daemon", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "daemon", unix))))]
pub use stream::{
    BuildError, BuildStream, BuildStreamError, UploadProgress, build, build_with_progress,
};

/// The types the events carry, from [`buildkit_events`].
pub use buildkit_events::{
    Config as TrackerConfig, Elapsed, Event, FailedVertex, LineEnd, LogLine, Outcome,
    OutcomeCounts, Progress, ProgressGroup, RecordError, Step, StepName, Stream as LogStream,
    Summary, Time, Tracker, VertexCompleted, VertexInfo, VertexStarted, VertexState, Warning,
};

/// The bollard version [`connection::Daemon`] uses, for its [`bollard`](connection::Daemon::bollard)
/// client and [`from_bollard`](connection::Daemon::from_bollard).
#[cfg(feature = "daemon")]
#[cfg_attr(docsrs, doc(cfg(feature = "daemon")))]
pub use bollard;

/// Build contexts, from `docker-context`: a directory streamed as a tar, with Docker's ignore
/// rules.
#[cfg(all(feature = "daemon", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "daemon", unix))))]
pub use docker_context::{Context, ContextError};

/// This crate's README examples, compiled as doctests.
#[cfg(all(doctest, feature = "daemon", unix))]
#[doc = include_str!("../README.md")]
pub struct CrateReadmeDoctests;
