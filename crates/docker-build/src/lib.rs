//! Run Docker image builds on a daemon and stream typed progress events.
//!
//! [`build`] sends a build context to `POST /build` (BuildKit with `version=2`, or the classic
//! builder) and returns a [`BuildStream`] of [`BuildEvent`]s as the daemon sends them: every
//! per-vertex event of [`buildkit_events`] (started, completed, log lines, byte progress,
//! warnings), the image id, daemon messages, and the failure attributed to its step. Dropping the
//! stream closes the connection and the daemon cancels the build.
//!
//! ```no_run
//! use docker_build::connection::Daemon;
//! use docker_context::Context;
//! use docker_build::{BuildEvent, BuildOptions, build};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let daemon = Daemon::connect().await?;
//! let context = Context::from_dir("./app")?;
//! let options = BuildOptions { tags: vec!["app:dev".into()], ..Default::default() };
//! let mut events = build(&daemon, context, &options).await?;
//! while let Some(event) = events.next_event().await {
//!     if let BuildEvent::Failed(failure) = event? {
//!         eprintln!("{}", failure.message);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The pieces, from the wire up:
//! - [`connection`]: finding and talking to the daemon (`DOCKER_HOST`, bollard, the raw
//!   `/build` request over hyper).
//! - the build context comes from [`docker_context`]: a directory streamed as a tar, with
//!   Docker's ignore rules.
//! - [`ndjson`], [`classic`], [`decode`]: the transport-free core, body bytes in and
//!   [`BuildEvent`]s out, shared by live builds, replays and tests. No I/O, no clock.
//! - [`stream`]: the live build as a `futures_core::Stream`.

pub mod classic;
pub mod connection;
pub mod decode;
pub mod ndjson;
pub mod stream;
mod upload;

pub use decode::{BuildDecoder, BuildEvent, BuildFailure, BuildSummary, FailedStep};
pub use stream::{BuildError, BuildOptions, BuildStream, BuildStreamError, Builder, build};

/// The workspace README's Rust example, compiled as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
