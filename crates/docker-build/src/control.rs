//! BuildKit's gRPC Control API, through the Docker daemon's socket or from a BuildKit daemon
//! (feature `control`).
//!
//! Every build on a daemon, whoever started it (`docker build`, `docker buildx build`, compose,
//! a CI runner, this crate), is visible here: [`Control::history`] lists and follows the build
//! history (`ListenBuildHistory`), [`Control::status`] streams one build's progress (the same
//! [`StatusResponse`] records a `POST /build` body carries: live while the build runs, replayed
//! from the history once it has finished), and [`Control::read_blob`] reads history blobs such
//! as a build's logs.
//!
//! # How the connection is made
//!
//! The Docker daemon serves the API behind `POST /grpc`: an HTTP/1.1 upgrade (`Upgrade: h2c`,
//! answered `101 Switching Protocols`), after which the same socket speaks HTTP/2 with prior
//! knowledge. Docker 29.2 (API 1.53) also serves gRPC directly on the API socket and deprecates
//! `/grpc`: [`Daemon::control`] tries that first when the daemon's API version is 1.53 or newer
//! and falls back to the upgrade when the daemon refuses. A standalone BuildKit daemon
//! (`buildkitd`, `BUILDKIT_HOST`) speaks gRPC directly: [`Control::connect_buildkit`].
//!
//! The gRPC channel is one HTTP/2 connection driven by hyper (a spawned tokio task, aborted
//! when the last clone of the [`Control`] is dropped), used by the tonic clients generated in
//! `buildkit-proto`. tonic's own `transport` (its `Channel`, with tower's balancing, buffering
//! and reconnecting layers) is not used: one connection to one local socket needs none of it,
//! and it would add tower and its layers to every user's build.
//!
//! # Which daemons
//!
//! `Status` exists on every BuildKit daemon (Docker 19.03 and later). The history
//! (`ListenBuildHistory`, and `Status` of a finished build) arrived with BuildKit 0.11 (Docker
//! 24); older daemons answer [`RequestError::NoHistoryApi`].
//!
//! ```no_run
//! use docker_build::connection::Daemon;
//! use docker_build::control::HistoryRequest;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let daemon = Daemon::connect().await?;
//! let control = daemon.control().await?;
//! // Every build the daemon remembers, then the stream ends (`docker buildx history ls`).
//! let mut history = control.history(HistoryRequest::existing()).await?;
//! while let Some(event) = history.next().await {
//!     let record = event?.record.unwrap_or_default();
//!     println!("{} {} steps", record.r#ref, record.num_total_steps);
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use buildkit_proto::Message as _;
use buildkit_proto::client::{ContentClient, ControlClient};
use buildkit_proto::content::{ReadContentRequest, ReadContentResponse};
use buildkit_proto::control::{
    BuildHistoryEvent, BuildHistoryRecord, BuildHistoryRequest, BuildkitVersion, ErrorSource,
    InfoRequest, RpcStatus,
};
use buildkit_proto::{StatusRequest, StatusResponse};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::codegen::http::Uri;

use crate::connection::{AbortOnDrop, BoxError, Daemon, Io, daemon_message};

/// The first Docker API version that serves gRPC directly on the API socket (Docker 29.2).
const NATIVE_GRPC_API: (u32, u32) = (1, 53);

/// The origin the requests name (`:authority`); the socket decides where they go.
const ORIGIN: &str = "http://buildkit.local";

/// How the gRPC connection reached the Control API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// HTTP/2 after the Docker daemon's `POST /grpc` upgrade (Docker 19.03 to 29.x).
    Upgrade,
    /// HTTP/2 with prior knowledge straight on the socket (Docker ≥ 29.2, `buildkitd`).
    Native,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Upgrade => "gRPC after the POST /grpc upgrade",
            Transport::Native => "gRPC on the socket",
        })
    }
}

/// Where a standalone BuildKit daemon listens: `unix:///run/buildkit/buildkitd.sock` (its
/// default) or `tcp://host:port`, as `buildctl --addr` and `BUILDKIT_HOST` take it.
///
/// ```
/// use docker_build::control::BuildkitHost;
///
/// let host: BuildkitHost = "tcp://10.0.0.5:1234".parse()?;
/// assert_eq!(host.to_string(), "tcp://10.0.0.5:1234");
/// assert_eq!(
///     BuildkitHost::from_env_value(None)?,
///     BuildkitHost::Unix("/run/buildkit/buildkitd.sock".into())
/// );
/// assert!(BuildkitHost::parse("docker-container://buildkitd").is_err());
/// # Ok::<(), docker_build::control::BuildkitHostError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BuildkitHost {
    /// A Unix domain socket.
    Unix(PathBuf),
    /// Plain TCP (no TLS).
    Tcp {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
}

/// buildkitd's default address.
pub const DEFAULT_BUILDKIT_HOST: &str = "unix:///run/buildkit/buildkitd.sock";

/// Why a BuildKit daemon address could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildkitHostError {
    /// Not `unix://` or `tcp://` (e.g. `docker-container://`, `kube-pod://`, `tcp://` with TLS
    /// options are not supported).
    #[error("unsupported BuildKit address {address:?}: expected unix:///path or tcp://host:port")]
    Unsupported {
        /// The address as given.
        address: String,
    },
    /// A `tcp://` address without a valid port.
    #[error("BuildKit address {address:?} needs a port, e.g. tcp://127.0.0.1:1234")]
    Port {
        /// The address as given.
        address: String,
    },
}

impl BuildkitHost {
    /// Parses `unix:///path` or `tcp://host:port`.
    pub fn parse(address: &str) -> Result<Self, BuildkitHostError> {
        if let Some(path) = address.strip_prefix("unix://") {
            if path.is_empty() {
                return Self::parse(DEFAULT_BUILDKIT_HOST);
            }
            return Ok(BuildkitHost::Unix(PathBuf::from(path)));
        }
        let Some(authority) = address.strip_prefix("tcp://") else {
            return Err(BuildkitHostError::Unsupported {
                address: address.to_string(),
            });
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        let port_error = || BuildkitHostError::Port {
            address: address.to_string(),
        };
        let (host, port) = authority.rsplit_once(':').ok_or_else(port_error)?;
        let port = port.parse().map_err(|_| port_error())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(BuildkitHostError::Unsupported {
                address: address.to_string(),
            });
        }
        Ok(BuildkitHost::Tcp {
            host: host.to_string(),
            port,
        })
    }

    /// The address from a `BUILDKIT_HOST` value (`None` or empty: buildkitd's default socket).
    pub fn from_env_value(value: Option<&str>) -> Result<Self, BuildkitHostError> {
        Self::parse(
            value
                .filter(|v| !v.is_empty())
                .unwrap_or(DEFAULT_BUILDKIT_HOST),
        )
    }
}

impl fmt::Display for BuildkitHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildkitHost::Unix(path) => write!(f, "unix://{}", path.display()),
            BuildkitHost::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            BuildkitHost::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

impl std::str::FromStr for BuildkitHost {
    type Err = BuildkitHostError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why [`Daemon::control`] or [`Control::connect_buildkit`] could not reach the Control API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The socket could not be opened.
    #[error("cannot connect to {target}")]
    Connect {
        /// The address (`unix:///var/run/docker.sock`, …).
        target: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange that opens the gRPC connection failed (the `/grpc` upgrade request or
    /// the HTTP/2 handshake).
    #[error("cannot open a gRPC connection to {target}")]
    Handshake {
        /// The address.
        target: String,
        /// What hyper reported.
        #[source]
        source: BoxError,
    },
    /// The daemon answered `POST /grpc` without switching protocols.
    #[error(
        "the Docker daemon at {target} does not serve BuildKit's Control API (POST /grpc answered HTTP {status}: {message})"
    )]
    Refused {
        /// The address.
        target: String,
        /// The HTTP status, e.g. 404 on a daemon without BuildKit.
        status: u16,
        /// The daemon's message.
        message: String,
    },
}

/// Why a request to the Control API failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The daemon's BuildKit predates the build history (BuildKit 0.11, Docker 24): it does not
    /// know `method`.
    #[error(
        "the daemon's BuildKit has no build history API ({method} is unknown to it); Docker 24 or later (BuildKit 0.11) has it"
    )]
    NoHistoryApi {
        /// The gRPC method, e.g. `ListenBuildHistory`.
        method: &'static str,
    },
    /// No build with this ref is running or in the history (`no such job`).
    #[error("no build with ref {build_ref:?} is running or in the daemon's history")]
    NoSuchBuild {
        /// The ref asked for.
        build_ref: String,
    },
    /// No blob with this digest is in the daemon's content store.
    #[error("the daemon has no blob {digest}")]
    NoSuchBlob {
        /// The digest asked for.
        digest: String,
    },
    /// Any other failure of the call, as gRPC reported it.
    #[error("BuildKit's {method} failed")]
    Rpc {
        /// The gRPC method.
        method: &'static str,
        /// The gRPC status (code and message).
        #[source]
        source: tonic::Status,
    },
}

/// A connection to BuildKit's Control API (and the content store beside it).
///
/// Cheap to clone: clones share the one HTTP/2 connection, which carries any number of calls
/// at once. The connection closes when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Control {
    control: ControlClient<GrpcChannel>,
    content: ContentClient<GrpcChannel>,
    transport: Transport,
    target: Arc<str>,
}

/// What [`Control::history`] asks for.
///
/// ```
/// use docker_build::control::HistoryRequest;
///
/// // `docker buildx history ls`: the records there are now, then the end.
/// let ls = HistoryRequest::existing();
/// // Keep listening: every build that starts, completes or is deleted from now on.
/// let watch = HistoryRequest::follow().active_only();
/// # let _ = (ls, watch);
/// ```
#[derive(Debug, Clone, Default)]
pub struct HistoryRequest {
    request: BuildHistoryRequest,
}

impl HistoryRequest {
    /// The records there are now; the stream ends after them.
    pub fn existing() -> Self {
        HistoryRequest {
            request: BuildHistoryRequest {
                early_exit: true,
                ..Default::default()
            },
        }
    }

    /// The records there are now, then an event for each build that starts, completes or is
    /// deleted, until the stream is dropped.
    pub fn follow() -> Self {
        HistoryRequest::default()
    }

    /// Only builds that are still running.
    pub fn active_only(mut self) -> Self {
        self.request.active_only = true;
        self
    }

    /// Only the build with this ref.
    pub fn build_ref(mut self, build_ref: impl Into<String>) -> Self {
        self.request.r#ref = build_ref.into();
        self
    }

    /// Server-side filters, e.g. `ref==…` (BuildKit 0.20, Docker 28.0; older daemons ignore
    /// them).
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.request.filter.push(filter.into());
        self
    }

    /// The request as sent.
    pub fn as_proto(&self) -> &BuildHistoryRequest {
        &self.request
    }
}

/// Where a recorded build stands, as `docker buildx history ls` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildState {
    /// Not completed yet.
    Running,
    /// Completed without error.
    Completed,
    /// Completed with an error.
    Error,
    /// Completed because it was canceled (its error says `context canceled`).
    Canceled,
}

impl BuildState {
    /// The state of a history record.
    pub fn of(record: &BuildHistoryRecord) -> Self {
        match (&record.completed_at, &record.error) {
            (None, _) => BuildState::Running,
            (Some(_), None) => BuildState::Completed,
            (Some(_), Some(error)) if error.message.contains("context canceled") => {
                BuildState::Canceled
            }
            (Some(_), Some(_)) => BuildState::Error,
        }
    }

    /// `running`, `completed`, `error` or `canceled`.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildState::Running => "running",
            BuildState::Completed => "completed",
            BuildState::Error => "error",
            BuildState::Canceled => "canceled",
        }
    }
}

impl fmt::Display for BuildState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The frontend attribute that names a build (`--build-arg BUILDKIT_BUILD_NAME=…`).
pub const BUILD_NAME_ATTR: &str = "build-arg:BUILDKIT_BUILD_NAME";

/// A build's name as `docker buildx history` shows it, from its record's frontend attributes:
/// `BUILDKIT_BUILD_NAME` when set, else the context path, the Dockerfile's name when it is not
/// `Dockerfile`, and the target in parentheses, else the VCS source. (buildx also consults the
/// local state of the client that started the build, which the daemon does not have, so a
/// build started by buildx from a local directory can be named by buildx and not here.)
///
/// ```
/// use std::collections::HashMap;
/// use docker_build::control::build_name;
///
/// let attrs: HashMap<String, String> = [
///     ("filename".to_string(), "ci/Dockerfile.test".to_string()),
///     ("target".to_string(), "test".to_string()),
/// ]
/// .into_iter()
/// .collect();
/// assert_eq!(build_name(&attrs), "Dockerfile.test (test)");
/// ```
pub fn build_name(attrs: &std::collections::HashMap<String, String>) -> String {
    let get = |key: &str| attrs.get(key).map(String::as_str).filter(|v| !v.is_empty());
    if let Some(name) = get(BUILD_NAME_ATTR) {
        return name.to_string();
    }
    let mut name = String::new();
    if let Some(context) = get("context").or(get("vcs:localdir:context").filter(|c| *c != ".")) {
        name = context.to_string();
    } else if let Some(file) = get("filename").filter(|f| *f != "Dockerfile") {
        name = file.rsplit('/').next().unwrap_or(file).to_string();
    }
    if let Some(target) = get("target") {
        name = if name.is_empty() {
            target.to_string()
        } else {
            format!("{name} ({target})")
        };
    }
    if name.is_empty() {
        if let Some(source) = get("vcs:source") {
            name = source.to_string();
        }
    }
    name
}

/// A stream of messages from a server-streaming call.
#[derive(Debug)]
pub struct Messages<T> {
    inner: tonic::Streaming<T>,
    method: &'static str,
    subject: Option<String>,
}

impl<T> Messages<T> {
    /// The next message, or `None` once the server ended the stream.
    pub async fn next(&mut self) -> Option<Result<T, RequestError>> {
        match self.inner.message().await {
            Ok(Some(message)) => Some(Ok(message)),
            Ok(None) => None,
            Err(status) => Some(Err(classify(self.method, self.subject.as_deref(), status))),
        }
    }
}

impl Control {
    /// Connects to a standalone BuildKit daemon (gRPC straight on its socket).
    pub async fn connect_buildkit(host: &BuildkitHost) -> Result<Self, ControlError> {
        let target = host.to_string();
        let io: Io = match host {
            #[cfg(unix)]
            BuildkitHost::Unix(path) => Box::pin(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|source| ControlError::Connect {
                        target: target.clone(),
                        source,
                    })?,
            ),
            #[cfg(not(unix))]
            BuildkitHost::Unix(_) => {
                return Err(ControlError::Connect {
                    target,
                    source: std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        "Unix sockets are not supported on this platform",
                    ),
                });
            }
            BuildkitHost::Tcp { host, port } => Box::pin(
                tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|source| ControlError::Connect {
                        target: target.clone(),
                        source,
                    })?,
            ),
        };
        let channel = GrpcChannel::handshake(TokioIo::new(io), &target).await?;
        Ok(Self::new(channel, Transport::Native, target))
    }

    fn new(channel: GrpcChannel, transport: Transport, target: String) -> Self {
        let origin = Uri::from_static(ORIGIN);
        Control {
            control: ControlClient::with_origin(channel.clone(), origin.clone()),
            content: ContentClient::with_origin(channel, origin),
            transport,
            target: target.into(),
        }
    }

    /// How the connection reached the API.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The address connected to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The BuildKit version of the daemon (`Info`; BuildKit 0.11 and later).
    pub async fn version(&self) -> Result<BuildkitVersion, RequestError> {
        let response = self
            .control
            .clone()
            .info(InfoRequest {})
            .await
            .map_err(|status| classify("Info", None, status))?;
        Ok(response.into_inner().buildkit_version.unwrap_or_default())
    }

    /// The build history (`ListenBuildHistory`): the recorded builds, and with
    /// [`HistoryRequest::follow`] every change after them.
    pub async fn history(
        &self,
        request: HistoryRequest,
    ) -> Result<Messages<BuildHistoryEvent>, RequestError> {
        const METHOD: &str = "ListenBuildHistory";
        let response = self
            .control
            .clone()
            .listen_build_history(request.request)
            .await
            .map_err(|status| classify(METHOD, None, status))?;
        Ok(Messages {
            inner: response.into_inner(),
            method: METHOD,
            subject: None,
        })
    }

    /// The progress of the build `build_ref` (`Status`): live while it runs (from its start,
    /// whenever the call is made), replayed from the history once it has finished.
    pub async fn status(&self, build_ref: &str) -> Result<Messages<StatusResponse>, RequestError> {
        const METHOD: &str = "Status";
        let response = self
            .control
            .clone()
            .status(StatusRequest {
                r#ref: build_ref.to_string(),
            })
            .await
            .map_err(|status| classify(METHOD, Some(build_ref), status))?;
        Ok(Messages {
            inner: response.into_inner(),
            method: METHOD,
            subject: Some(build_ref.to_string()),
        })
    }

    /// Reads the blob `digest` (e.g. a [`BuildHistoryRecord`]'s `logs`) from the daemon's
    /// content store, in the chunks the daemon sends.
    ///
    /// [`BuildHistoryRecord`]: buildkit_proto::control::BuildHistoryRecord
    pub async fn read_blob(&self, digest: &str) -> Result<BlobReader, RequestError> {
        const METHOD: &str = "Read";
        let response = self
            .content
            .clone()
            .read(ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            })
            .await
            .map_err(|status| classify_blob(digest, status))?;
        Ok(BlobReader {
            messages: Messages {
                inner: response.into_inner(),
                method: METHOD,
                subject: Some(digest.to_string()),
            },
        })
    }

    /// The newest build in the history named `name` (its `BUILDKIT_BUILD_NAME`, e.g. from
    /// [`BuildOptions::build_name`](crate::BuildOptions::build_name)), running or finished.
    pub async fn find_build(&self, name: &str) -> Result<Option<BuildHistoryRecord>, RequestError> {
        let mut history = self.history(HistoryRequest::existing()).await?;
        let mut found: Option<BuildHistoryRecord> = None;
        while let Some(event) = history.next().await {
            let Some(record) = event?.record else {
                continue;
            };
            if record
                .frontend_attrs
                .get(BUILD_NAME_ATTR)
                .map(String::as_str)
                != Some(name)
            {
                continue;
            }
            let newer = |r: &BuildHistoryRecord| r.created_at.map(|t| t.unix_nanos());
            if found.as_ref().is_none_or(|f| newer(&record) >= newer(f)) {
                found = Some(record);
            }
        }
        Ok(found)
    }

    /// Where in the Dockerfile a failed build's error comes from: the `errdefs.Source` details
    /// of the error the daemon keeps in the record's `externalError` blob (Docker ≥ 27.1).
    /// Empty when the record has none. Render them with [`source_snippet`].
    pub async fn error_sources(
        &self,
        record: &BuildHistoryRecord,
    ) -> Result<Vec<ErrorSource>, RequestError> {
        let Some(blob) = &record.external_error else {
            return Ok(Vec::new());
        };
        let mut reader = self.read_blob(&blob.digest).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = reader.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        // An undecodable blob has no sources we could show; the error message itself is in the
        // record.
        let Ok(status) = RpcStatus::decode(bytes.as_slice()) else {
            return Ok(Vec::new());
        };
        Ok(status.details.iter().filter_map(error_source).collect())
    }

    /// The generated client, for the calls this type does not wrap.
    pub fn client(&self) -> ControlClient<GrpcChannel> {
        self.control.clone()
    }
}

/// The chunks of one blob ([`Control::read_blob`]).
#[derive(Debug)]
pub struct BlobReader {
    messages: Messages<ReadContentResponse>,
}

impl BlobReader {
    /// The next chunk, or `None` at the end of the blob.
    pub async fn next(&mut self) -> Option<Result<Bytes, RequestError>> {
        loop {
            match self.messages.inner.message().await {
                Ok(Some(chunk)) if chunk.data.is_empty() => continue,
                Ok(Some(chunk)) => return Some(Ok(chunk.data)),
                Ok(None) => return None,
                Err(status) => {
                    let digest = self.messages.subject.as_deref().unwrap_or_default();
                    return Some(Err(classify_blob(digest, status)));
                }
            }
        }
    }
}

/// An `errdefs.Source` detail: protobuf (type URL `…/errdefs.Source`), or, as Docker 28's
/// BuildKit stores them, Go's JSON encoding of the same message (`…/errdefs.Source+json`:
/// lower-case field names, `data` in base64).
fn error_source(any: &buildkit_proto::control::Any) -> Option<ErrorSource> {
    use base64::Engine as _;
    use buildkit_proto::pb::{Position, Range, SourceInfo};

    if any.type_url.ends_with("/errdefs.Source") {
        return ErrorSource::decode(any.value.clone()).ok();
    }
    if !any.type_url.ends_with("/errdefs.Source+json") {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Json {
        info: Option<Info>,
        #[serde(default)]
        ranges: Vec<JsonRange>,
    }
    #[derive(serde::Deserialize)]
    struct Info {
        #[serde(default)]
        filename: String,
        #[serde(default)]
        data: String,
    }
    #[derive(serde::Deserialize)]
    struct JsonRange {
        start: Option<JsonPosition>,
        end: Option<JsonPosition>,
    }
    #[derive(serde::Deserialize)]
    struct JsonPosition {
        #[serde(default)]
        line: i32,
        #[serde(default)]
        character: i32,
    }
    let json: Json = serde_json::from_slice(&any.value).ok()?;
    let info = json.info?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(info.data.as_bytes())
        .ok()?;
    let position = |p: Option<JsonPosition>| {
        p.map(|p| Position {
            line: p.line,
            character: p.character,
        })
    };
    Some(ErrorSource {
        info: Some(SourceInfo {
            filename: info.filename,
            data: data.into(),
            ..Default::default()
        }),
        ranges: json
            .ranges
            .into_iter()
            .map(|r| Range {
                start: position(r.start),
                end: position(r.end),
            })
            .collect(),
    })
}

/// The lines of the source file around an error, marked `>>>`, as BuildKit prints them (and
/// `docker buildx build` after a failure):
///
/// ```
/// use buildkit_proto::control::ErrorSource;
/// use buildkit_proto::pb::{Position, Range, SourceInfo};
/// use docker_build::control::source_snippet;
///
/// let source = ErrorSource {
///     info: Some(SourceInfo {
///         filename: "Dockerfile".into(),
///         data: "FROM bb\nRUN exit 3\nRUN echo two\n".into(),
///         ..Default::default()
///     }),
///     ranges: vec![Range {
///         start: Some(Position { line: 2, character: 0 }),
///         end: Some(Position { line: 2, character: 0 }),
///     }],
/// };
/// assert_eq!(
///     source_snippet(&source).unwrap(),
///     "Dockerfile:2\n\
///      --------------------\n   \
///      1 |     FROM bb\n   \
///      2 | >>> RUN exit 3\n   \
///      3 |     RUN echo two\n   \
///      4 |     \n\
///      --------------------\n"
/// );
/// ```
///
/// `None` when the source has no file or no range inside it. The format is
/// [`buildkit_events::source_snippet`]'s, which warnings share.
pub fn source_snippet(source: &ErrorSource) -> Option<String> {
    let info = source.info.as_ref()?;
    let line_of = |p: &Option<buildkit_proto::pb::Position>| p.as_ref().map_or(0, |p| p.line);
    let ranges: Vec<(i32, i32)> = source
        .ranges
        .iter()
        .map(|r| (line_of(&r.start), line_of(&r.end)))
        .collect();
    buildkit_events::source_snippet(&info.filename, &info.data, &ranges)
}

fn classify(method: &'static str, subject: Option<&str>, status: tonic::Status) -> RequestError {
    match status.code() {
        tonic::Code::Unimplemented if method != "Status" => RequestError::NoHistoryApi { method },
        tonic::Code::NotFound | tonic::Code::Unknown
            if method == "Status" && status.message().contains("no such job") =>
        {
            RequestError::NoSuchBuild {
                build_ref: subject.unwrap_or_default().to_string(),
            }
        }
        _ => RequestError::Rpc {
            method,
            source: status,
        },
    }
}

fn classify_blob(digest: &str, status: tonic::Status) -> RequestError {
    match status.code() {
        tonic::Code::NotFound => RequestError::NoSuchBlob {
            digest: digest.to_string(),
        },
        tonic::Code::Unimplemented => RequestError::NoHistoryApi { method: "Read" },
        _ => RequestError::Rpc {
            method: "Read",
            source: status,
        },
    }
}

impl Daemon {
    /// Opens a connection to the daemon's BuildKit Control API.
    ///
    /// Daemons with API 1.53 or newer (Docker 29.2) are asked with gRPC straight on the socket
    /// first; the others, and those that refuse it, through the `POST /grpc` upgrade.
    pub async fn control(&self) -> Result<Control, ControlError> {
        let target = self.host().to_string();
        if api_at_least(self.api_version(), NATIVE_GRPC_API) {
            let io = self.open_control_io(&target).await?;
            if let Ok(channel) = GrpcChannel::handshake(TokioIo::new(io), &target).await {
                let control = Control::new(channel, Transport::Native, target.clone());
                // A daemon that does not speak HTTP/2 on its socket closes the connection: the
                // first call tells.
                if control.version().await.is_ok() {
                    return Ok(control);
                }
            }
        }
        self.control_upgrade(target).await
    }

    async fn open_control_io(&self, target: &str) -> Result<Io, ControlError> {
        self.open_io()
            .await
            .map_err(|source| ControlError::Connect {
                target: target.to_string(),
                source,
            })
    }

    async fn control_upgrade(&self, target: String) -> Result<Control, ControlError> {
        let handshake_error = |source: BoxError| ControlError::Handshake {
            target: target.clone(),
            source,
        };
        let io = self.open_control_io(&target).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| handshake_error(Box::new(e)))?;
        let driver = tokio::spawn(connection.with_upgrades());
        let request = Request::builder()
            .method(Method::POST)
            .uri("/grpc")
            .header(HOST, "localhost")
            .header(CONNECTION, "Upgrade")
            .header(UPGRADE, "h2c")
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| handshake_error(Box::new(e)))?;
        let response: Response<Incoming> = sender
            .send_request(request)
            .await
            .map_err(|e| handshake_error(Box::new(e)))?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = response.status().as_u16();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            driver.abort();
            return Err(ControlError::Refused {
                target,
                status,
                message: daemon_message(&body),
            });
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| handshake_error(Box::new(e)))?;
        // The HTTP/1 connection task ends with the upgrade; the socket now belongs to `upgraded`.
        let channel = GrpcChannel::handshake(upgraded, &target).await?;
        Ok(Control::new(channel, Transport::Upgrade, target))
    }
}

/// Whether the API version `version` ("1.51") is `min` or newer.
fn api_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= min,
        _ => false,
    }
}

/// One HTTP/2 connection as the service the tonic clients call.
///
/// `Clone` shares the connection; the task that drives it is aborted when the last clone is
/// dropped.
#[derive(Clone)]
pub struct GrpcChannel {
    sender: hyper::client::conn::http2::SendRequest<tonic::body::Body>,
    _driver: Arc<AbortOnDrop>,
}

impl fmt::Debug for GrpcChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcChannel").finish_non_exhaustive()
    }
}

impl GrpcChannel {
    async fn handshake<T>(io: T, target: &str) -> Result<Self, ControlError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|source| ControlError::Handshake {
                target: target.to_string(),
                source: Box::new(source),
            })?;
        let driver = AbortOnDrop(tokio::spawn(connection).abort_handle());
        Ok(GrpcChannel {
            sender,
            _driver: Arc::new(driver),
        })
    }
}

impl tower_service::Service<Request<tonic::body::Body>> for GrpcChannel {
    type Response = Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.sender.send_request(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gRPC server with prior knowledge on TCP, as buildkitd (and Docker ≥ 29.2) speaks it:
    /// `Control/Info` answers a version, every other method is unimplemented, as on a BuildKit
    /// without the history.
    async fn fake_buildkitd() -> BuildkitHost {
        use http_body_util::StreamBody;
        use hyper::body::Frame;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    type Frames = Vec<Result<Frame<Bytes>, std::convert::Infallible>>;
                    let mut trailers = hyper::HeaderMap::new();
                    let mut response =
                        Response::builder().header("content-type", "application/grpc");
                    let frames: Frames = if request.uri().path() == "/moby.buildkit.v1.Control/Info"
                    {
                        let reply = buildkit_proto::control::InfoResponse {
                            buildkit_version: Some(BuildkitVersion {
                                version: "v0.99.0".into(),
                                ..Default::default()
                            }),
                        }
                        .encode_to_vec();
                        let mut frame = vec![0u8];
                        frame.extend_from_slice(&(reply.len() as u32).to_be_bytes());
                        frame.extend_from_slice(&reply);
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        vec![
                            Ok(Frame::data(Bytes::from(frame))),
                            Ok(Frame::trailers(trailers)),
                        ]
                    } else {
                        // A trailers-only response, as gRPC servers answer an unknown method.
                        response = response
                            .header("grpc-status", "12")
                            .header("grpc-message", "unknown method");
                        Vec::new()
                    };
                    let body = StreamBody::new(futures_util_stream(frames));
                    Ok::<_, std::convert::Infallible>(response.body(body).unwrap())
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        BuildkitHost::Tcp {
            host: "127.0.0.1".into(),
            port,
        }
    }

    /// A stream of the given items (no futures-util needed).
    fn futures_util_stream<T: Unpin>(items: Vec<T>) -> impl futures_core::Stream<Item = T> {
        struct Items<T>(std::collections::VecDeque<T>);
        impl<T: Unpin> futures_core::Stream for Items<T> {
            type Item = T;
            fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<T>> {
                Poll::Ready(self.0.pop_front())
            }
        }
        Items(items.into())
    }

    #[tokio::test]
    async fn a_buildkitd_is_reached_with_grpc_on_its_socket() {
        let host = fake_buildkitd().await;
        let control = Control::connect_buildkit(&host).await.unwrap();
        assert_eq!(control.transport(), Transport::Native);
        assert_eq!(control.target(), host.to_string());
        assert_eq!(control.version().await.unwrap().version, "v0.99.0");
        // Calls share the one connection, also at the same time.
        let other = control.clone();
        let (a, b) = tokio::join!(control.version(), other.version());
        assert_eq!(
            (a.unwrap().version, b.unwrap().version),
            ("v0.99.0".into(), "v0.99.0".into())
        );
        let err = control
            .history(HistoryRequest::existing())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RequestError::NoHistoryApi {
                    method: "ListenBuildHistory"
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error_naming_the_address() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let host = BuildkitHost::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let err = Control::connect_buildkit(&host).await.unwrap_err();
        assert!(matches!(err, ControlError::Connect { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!("cannot connect to tcp://127.0.0.1:{port}")
        );
    }

    /// The detail as Docker 28.5 stored it for a failed `RUN` on line 3 (definition left out).
    #[test]
    fn json_error_sources_become_snippets() {
        let any = buildkit_proto::control::Any {
            type_url: "github.com/moby/buildkit/errdefs.Source+json".into(),
            value: br#"{"info":{"filename":"Dockerfile","data":"RlJPTSBiYgpSVU4gZWNobyBhClJVTiBlY2hvIGJlZm9yZSAmJiBleGl0IDMKUlVOIGVjaG8gdHdvCg==","language":"Dockerfile"},"ranges":[{"start":{"line":3},"end":{"line":3}}]}"#
                .to_vec()
                .into(),
        };
        let source = error_source(&any).expect("a source");
        assert_eq!(
            source_snippet(&source).unwrap(),
            "Dockerfile:3\n--------------------\n   1 |     FROM bb\n   2 |     RUN echo a\n   3 | >>> RUN echo before && exit 3\n   4 |     RUN echo two\n   5 |     \n--------------------\n"
        );
        let other = buildkit_proto::control::Any {
            type_url: "github.com/moby/buildkit/errdefs.Vertex+json".into(),
            value: b"{}".to_vec().into(),
        };
        assert!(error_source(&other).is_none());
    }

    #[test]
    fn api_versions_compare_numerically() {
        assert!(api_at_least("1.53", NATIVE_GRPC_API));
        assert!(api_at_least("1.100", NATIVE_GRPC_API));
        assert!(api_at_least("2.0", NATIVE_GRPC_API));
        assert!(!api_at_least("1.51", NATIVE_GRPC_API));
        assert!(!api_at_least("1.41", NATIVE_GRPC_API));
        assert!(!api_at_least("garbage", NATIVE_GRPC_API));
    }

    #[test]
    fn buildkit_addresses() {
        assert_eq!(
            BuildkitHost::parse("unix:///run/buildkit/buildkitd.sock").unwrap(),
            BuildkitHost::Unix("/run/buildkit/buildkitd.sock".into())
        );
        assert_eq!(
            BuildkitHost::parse("unix://").unwrap(),
            BuildkitHost::parse(DEFAULT_BUILDKIT_HOST).unwrap()
        );
        let tcp = BuildkitHost::parse("tcp://[::1]:1234").unwrap();
        assert_eq!(
            tcp,
            BuildkitHost::Tcp {
                host: "::1".into(),
                port: 1234
            }
        );
        assert_eq!(tcp.to_string(), "tcp://[::1]:1234");
        assert_eq!(
            BuildkitHost::from_env_value(Some("")).unwrap(),
            BuildkitHost::parse(DEFAULT_BUILDKIT_HOST).unwrap()
        );
        for bad in [
            "tcp://host",
            "tcp://host:x",
            "docker-container://b",
            "tcp://:1/x",
        ] {
            let err = BuildkitHost::parse(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn grpc_errors_are_classified() {
        let old = classify(
            "ListenBuildHistory",
            None,
            tonic::Status::unimplemented("unknown method ListenBuildHistory"),
        );
        assert!(matches!(old, RequestError::NoHistoryApi { .. }), "{old}");
        assert!(old.to_string().contains("Docker 24"), "{old}");

        let missing = classify(
            "Status",
            Some("abc"),
            tonic::Status::unknown("no such job abc"),
        );
        assert!(
            matches!(&missing, RequestError::NoSuchBuild { build_ref } if build_ref == "abc"),
            "{missing}"
        );

        let other = classify("Status", Some("abc"), tonic::Status::internal("boom"));
        assert!(matches!(other, RequestError::Rpc { .. }));
        // The status is the source, not repeated in the message.
        assert!(!other.to_string().contains("boom"), "{other}");
        assert!(
            std::error::Error::source(&other)
                .unwrap()
                .to_string()
                .contains("boom")
        );
    }
}
