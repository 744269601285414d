//! Connecting to a Docker daemon, and the raw `POST /build` request (feature `daemon`).
//!
//! [`Endpoint`] is where the daemon is and how to talk to it, found as the docker CLI finds it
//! ([`Endpoint::from_env`]): `DOCKER_HOST`, else the Docker context named by `DOCKER_CONTEXT` or
//! by `currentContext` in `$DOCKER_CONFIG/config.json`, else `unix:///var/run/docker.sock`; TLS
//! for `tcp://` daemons from `DOCKER_TLS_VERIFY`/`DOCKER_TLS` and the `ca.pem`, `cert.pem`,
//! `key.pem` in `DOCKER_CERT_PATH`, or from the context's TLS files ([`TlsConfig`]). Its address
//! is a [`DockerHost`]. [`Daemon`] is a connected, version-negotiated handle: it gives
//! access to a [`bollard::Docker`] client for ordinary API calls (ping, images, …) and sends
//! `POST /build` itself with hyper, because bollard cannot hand out the build response body as
//! bytes: its `build_image` parses each line into its own types, and without bollard's
//! `buildkit` feature the first `moby.buildkit.trace` line (whose `aux` is a base64 string, not
//! an object) is an error (the crate README has the details and the numbers).
//!
//! The build response is handed out as raw body chunks ([`BuildResponse`]); splitting it into
//! JSON lines is left to the caller (e.g. [`BuildDecoder`](crate::BuildDecoder)).
//!
//! Every connection, `POST /build`'s and the bollard client's alike, is opened the same way:
//! the socket, then over TCP the TLS handshake if the endpoint has TLS (rustls with the `ring`
//! provider; only the CA in `ca.pem` is trusted). A failed handshake reads as one line, e.g.
//! `cannot connect to the Docker daemon at tcp://127.0.0.1:2376: TLS handshake failed: invalid
//! peer certificate: UnknownIssuer` (the error and its sources, `: `-joined).
//!
//! Unix sockets (`unix://`) are available on Unix platforms only (`cfg(unix)`); elsewhere
//! connecting to one fails with an [`std::io::ErrorKind::Unsupported`] source, and only
//! `tcp://` hosts work. SSH and named pipes are not supported.
//!
//! ```no_run
//! use docker_build::connection::Daemon;
//! use http_body_util::{BodyDataStream, Full};
//!
//! # async fn run(context_tar: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! let daemon = Daemon::connect().await?;
//! println!("Docker API {} at {}", daemon.api_version(), daemon.host());
//!
//! // The build context is the request body: a tar holding the Dockerfile.
//! let body = BodyDataStream::new(Full::new(bytes::Bytes::from(context_tar)));
//! let mut response = daemon.post_build("version=2&nocache=1", body).await?;
//! while let Some(chunk) = response.next_chunk().await {
//!     // NDJSON, one JSON object per `\r\n`-terminated line; a line may span chunks.
//!     print!("{}", String::from_utf8_lossy(&chunk?));
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::poll_fn;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_core::Stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::AbortHandle;

mod endpoint;
mod tls;

pub use endpoint::Endpoint;
pub use tls::{TlsConfig, TlsError};

/// The source of an error from the HTTP stack or bollard, boxed so that their types are not
/// part of this crate's API (downcast to inspect it).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The address Docker uses when `DOCKER_HOST` is unset or empty.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// The port of a `tcp://` address that names none (Docker's plain-HTTP port).
const DEFAULT_TCP_PORT: u16 = 2375;

/// Seconds bollard waits for each API call.
const BOLLARD_TIMEOUT_SECS: u64 = 120;

/// Where the Docker daemon listens.
///
/// Parsed like the Docker CLI parses `DOCKER_HOST`: `unix:///path`, `tcp://host:port` (or
/// `http://host:port`, `https://host:port`, or a bare `host:port`). `tcp://` without a port means
/// port 2375, an empty host means `localhost`, and `unix://` without a path means the default
/// socket. Whether TLS is spoken is not part of the address but of the [`Endpoint`] (which turns
/// it on for `https://`).
///
/// ```
/// use docker_build::connection::DockerHost;
///
/// let host: DockerHost = "tcp://127.0.0.1:2375".parse()?;
/// assert_eq!(host, DockerHost::Tcp { host: "127.0.0.1".into(), port: 2375 });
/// assert_eq!(host.to_string(), "tcp://127.0.0.1:2375");
///
/// let tls = DockerHost::parse("https://docker:2376")?;
/// assert_eq!(tls, DockerHost::Tcp { host: "docker".into(), port: 2376 });
/// # Ok::<(), docker_build::connection::HostError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DockerHost {
    /// A Unix domain socket, e.g. `unix:///var/run/docker.sock`. Parsed on every platform;
    /// connecting needs a Unix platform.
    Unix(PathBuf),
    /// TCP, e.g. `tcp://127.0.0.1:2375` (plain HTTP) or `tcp://127.0.0.1:2376` (usually TLS,
    /// which the [`Endpoint`] says).
    Tcp {
        /// Host name or IP address (an IPv6 address without its brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
}

/// Why a Docker host address, the environment or a Docker context could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The scheme is none of `unix://`, `tcp://`, `http://`, `https://` (e.g. `ssh://`,
    /// `npipe://`, `fd://`).
    #[error(
        "unsupported Docker host {address:?}: only unix://, tcp://, http:// and https:// are supported"
    )]
    UnsupportedScheme {
        /// The address as given.
        address: String,
    },
    /// The port of a TCP address is not a number from 0 to 65535.
    #[error("invalid port in Docker host {address:?}")]
    InvalidPort {
        /// The address as given.
        address: String,
        /// Why the port did not parse.
        #[source]
        source: std::num::ParseIntError,
    },
    /// A TCP address carries a path, or an IPv6 address lacks its closing bracket.
    #[error("malformed Docker host {address:?}: expected tcp://host:port")]
    Malformed {
        /// The address as given.
        address: String,
    },
    /// An environment variable is set to something that is not valid Unicode.
    #[error("environment variable {variable} is not valid Unicode")]
    NotUnicode {
        /// The variable's name.
        variable: &'static str,
    },
    /// The Docker context named by `DOCKER_CONTEXT` or `config.json` is not in the store.
    #[error("context {name:?} does not exist")]
    ContextNotFound {
        /// The context's name.
        name: String,
    },
    /// A context's `meta.json` could not be read, or is not what the docker CLI writes.
    #[error("cannot read the Docker context {name:?} from {}", path.display())]
    Context {
        /// The context's name.
        name: String,
        /// Its `meta.json`.
        path: PathBuf,
        /// The I/O or JSON error.
        #[source]
        source: BoxError,
    },
    /// A context has no `docker` endpoint.
    #[error("the Docker context {name:?} has no docker endpoint ({})", path.display())]
    ContextWithoutDocker {
        /// The context's name.
        name: String,
        /// Its `meta.json`.
        path: PathBuf,
    },
    /// `$DOCKER_CONFIG/config.json` could not be read or is not JSON.
    #[error("cannot read the Docker configuration {}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// The I/O or JSON error.
        #[source]
        source: BoxError,
    },
    /// TLS is on, `DOCKER_CERT_PATH` is unset, and there is no configuration directory to take
    /// the certificates from (neither `DOCKER_CONFIG` nor `HOME` is set).
    #[error(
        "TLS is on but no certificate directory is known: set DOCKER_CERT_PATH, DOCKER_CONFIG or HOME"
    )]
    NoCertPath,
    /// The TLS material could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl DockerHost {
    /// Parses one address (`unix:///path`, `tcp://host:port`, `http://host:port`, `host:port`).
    ///
    /// ```
    /// use docker_build::connection::{DockerHost, HostError};
    ///
    /// assert_eq!(
    ///     DockerHost::parse("unix:///run/docker.sock")?,
    ///     DockerHost::Unix("/run/docker.sock".into())
    /// );
    /// assert!(matches!(
    ///     DockerHost::parse("ssh://me@example.com"),
    ///     Err(HostError::UnsupportedScheme { .. })
    /// ));
    /// # Ok::<(), HostError>(())
    /// ```
    pub fn parse(address: &str) -> Result<Self, HostError> {
        let (scheme, rest) = address.split_once("://").unwrap_or(("tcp", address));
        match scheme {
            "unix" if rest.is_empty() => Self::parse(DEFAULT_DOCKER_HOST),
            "unix" => Ok(DockerHost::Unix(PathBuf::from(rest))),
            "tcp" | "http" | "https" => Self::parse_tcp(address, rest),
            _ => Err(HostError::UnsupportedScheme {
                address: address.to_string(),
            }),
        }
    }

    fn parse_tcp(address: &str, rest: &str) -> Result<Self, HostError> {
        let malformed = || HostError::Malformed {
            address: address.to_string(),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') {
            return Err(malformed());
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(malformed)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(malformed)?)),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            None | Some("") => DEFAULT_TCP_PORT,
            Some(port) => port.parse().map_err(|source| HostError::InvalidPort {
                address: address.to_string(),
                source,
            })?,
        };
        let host = if host.is_empty() { "localhost" } else { host };
        Ok(DockerHost::Tcp {
            host: host.to_string(),
            port,
        })
    }

    /// The `Host` header for requests to this daemon.
    pub(crate) fn authority(&self) -> String {
        match self {
            DockerHost::Unix(_) => "localhost".to_string(),
            DockerHost::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            DockerHost::Tcp { host, port } => format!("{host}:{port}"),
        }
    }
}

impl fmt::Display for DockerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerHost::Unix(path) => write!(f, "unix://{}", path.display()),
            DockerHost::Tcp { .. } => write!(f, "tcp://{}", self.authority()),
        }
    }
}

impl FromStr for DockerHost {
    type Err = HostError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why [`Daemon::connect`] or [`Daemon::connect_to`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Which daemon to use could not be told: the environment, a Docker context or the TLS
    /// material could not be used.
    #[error("cannot tell which Docker daemon to use")]
    Host(#[from] HostError),
    /// Nothing answered `GET /_ping` at the address (for a Unix socket this includes a socket file
    /// that does not exist).
    #[error("cannot connect to the Docker daemon at {host}")]
    Unreachable {
        /// The address tried.
        host: DockerHost,
        /// What bollard reported (a `bollard::errors::Error`), or an
        /// [`std::io::ErrorKind::Unsupported`] I/O error for a Unix socket on a platform
        /// without them.
        #[source]
        source: BoxError,
    },
    /// `GET /version` failed or returned no usable `ApiVersion`.
    #[error("cannot negotiate the API version with the Docker daemon at {host}")]
    Version {
        /// The daemon's address.
        host: DockerHost,
        /// What bollard reported (a `bollard::errors::Error`).
        #[source]
        source: BoxError,
    },
}

/// What a user needs to know of a bollard error on the way to the daemon: the first I/O
/// error in its chain ("Connection refused (os error 111)", "TLS handshake failed: …") rather
/// than the HTTP client's wrappers around it ("Error in the hyper legacy client: client error
/// (Connect): tcp connect error: …"); the bollard error itself when it holds none (e.g.
/// "Socket not found: /path").
fn transport_cause(error: bollard::errors::Error) -> BoxError {
    // An I/O error of its own, with its message and its sources' on one line (its `source()`
    // skips a custom error's own message).
    let own = |io: &std::io::Error| -> BoxError {
        Box::new(match io.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => {
                let mut text = io.to_string();
                let mut source = io.get_ref().and_then(|inner| inner.source());
                while let Some(s) = source {
                    let part = s.to_string();
                    if !text.contains(&part) {
                        text.push_str(": ");
                        text.push_str(&part);
                    }
                    source = s.source();
                }
                std::io::Error::new(io.kind(), text)
            }
        })
    };
    if let bollard::errors::Error::IOError { err } = &error {
        return own(err);
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return own(io);
        }
        cause = e.source();
    }
    Box::new(error)
}

/// A connected Docker daemon: endpoint, negotiated API version and a bollard client.
///
/// Cheap to clone (one reference count); clones share everything.
///
/// ```no_run
/// use docker_build::connection::{Daemon, DockerHost, Endpoint, TlsConfig};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let daemon = Daemon::connect_to(DockerHost::parse("unix:///var/run/docker.sock")?).await?;
/// let version = daemon.bollard().version().await?;
/// println!("Docker {:?}, talking API {}", version.version, daemon.api_version());
///
/// // A TLS daemon, e.g. GitLab's docker-in-docker service.
/// let tls = TlsConfig::from_dir("/certs/client".as_ref(), true)?;
/// let endpoint = Endpoint::new(DockerHost::parse("tcp://docker:2376")?, Some(tls));
/// let dind = Daemon::connect_to(endpoint).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Daemon {
    inner: Arc<DaemonInner>,
}

#[derive(Debug)]
struct DaemonInner {
    endpoint: Endpoint,
    docker: bollard::Docker,
    api_version: String,
}

impl Daemon {
    /// Connects to the daemon the environment names, found as the docker CLI finds it
    /// ([`Endpoint::from_env`]: `DOCKER_HOST`, Docker contexts, TLS).
    pub async fn connect() -> Result<Self, ConnectError> {
        Self::connect_to(Endpoint::from_env()?).await
    }

    /// Connects to `endpoint` (an [`Endpoint`], or a [`DockerHost`] for no TLS): pings the
    /// daemon and negotiates the API version (the daemon's `ApiVersion`, capped at the newest
    /// version bollard speaks).
    pub async fn connect_to(endpoint: impl Into<Endpoint>) -> Result<Self, ConnectError> {
        let endpoint = endpoint.into();
        let host = &endpoint.host;
        let unreachable = |source: BoxError| ConnectError::Unreachable {
            host: host.clone(),
            source,
        };
        let version = bollard::API_DEFAULT_VERSION;
        let docker = match host {
            #[cfg(unix)]
            DockerHost::Unix(path) => bollard::Docker::connect_with_unix(
                &path.to_string_lossy(),
                BOLLARD_TIMEOUT_SECS,
                version,
            ),
            #[cfg(not(unix))]
            DockerHost::Unix(_) => return Err(unreachable(Box::new(unix_unsupported()))),
            DockerHost::Tcp { .. } if endpoint.tls.is_some() => {
                bollard::Docker::connect_with_custom_transport(
                    over_open_io(endpoint.clone()),
                    Some(format!("https://{}", host.authority())),
                    BOLLARD_TIMEOUT_SECS,
                    version,
                )
            }
            DockerHost::Tcp { .. } => {
                bollard::Docker::connect_with_http(&host.to_string(), BOLLARD_TIMEOUT_SECS, version)
            }
        };
        let docker = docker.map_err(|e| unreachable(transport_cause(e)))?;
        docker
            .ping()
            .await
            .map_err(|e| unreachable(transport_cause(e)))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|source| ConnectError::Version {
                host: host.clone(),
                source: Box::new(source),
            })?;
        Ok(Self::from_bollard(docker, endpoint))
    }

    /// A `Daemon` from a bollard client you already hold, and the endpoint it talks to (bollard
    /// does not tell its address, and `POST /build` goes over a connection of its own; pass an
    /// [`Endpoint`] with its [`TlsConfig`] for a TLS daemon).
    ///
    /// No I/O: the daemon is not pinged, and the API version is the client's current
    /// [`client_version`](bollard::Docker::client_version) (call
    /// [`negotiate_version`](bollard::Docker::negotiate_version) first to match the daemon).
    ///
    /// ```no_run
    /// use docker_build::bollard::Docker;
    /// use docker_build::connection::{Daemon, DockerHost};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let docker = Docker::connect_with_unix("/var/run/docker.sock", 120, docker_build::bollard::API_DEFAULT_VERSION)?
    ///     .negotiate_version()
    ///     .await?;
    /// let daemon = Daemon::from_bollard(docker, DockerHost::parse("unix:///var/run/docker.sock")?);
    /// println!("talking API {}", daemon.api_version());
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_bollard(docker: bollard::Docker, endpoint: impl Into<Endpoint>) -> Self {
        let api_version = docker.client_version().to_string();
        Daemon {
            inner: Arc::new(DaemonInner {
                endpoint: endpoint.into(),
                docker,
                api_version,
            }),
        }
    }

    /// The bollard client, already set to [`Daemon::api_version`].
    pub fn bollard(&self) -> &bollard::Docker {
        &self.inner.docker
    }

    /// The negotiated API version, e.g. `"1.41"`.
    pub fn api_version(&self) -> &str {
        &self.inner.api_version
    }

    /// The daemon's address.
    pub fn host(&self) -> &DockerHost {
        &self.inner.endpoint.host
    }

    /// Where the daemon is and how it is talked to (TLS, the Docker context it came from).
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// Sends `POST /v{api}/build?{query}` with `body` (the build context as a tar) streamed as
    /// the request body, and returns once the daemon has answered with a success status.
    ///
    /// `query` is the already-encoded query string, e.g. `version=2&t=app%3Alatest` (`version=2`
    /// selects BuildKit, `version=1` or nothing the classic builder). No session is attached.
    ///
    /// The request uses its own HTTP/1 connection, driven by a spawned tokio task (so this must run
    /// inside a tokio runtime). The returned [`BuildResponse`] owns that task: dropping it closes
    /// the connection, which makes the daemon cancel the build. Dropping this future before it
    /// completes does the same.
    ///
    /// ```no_run
    /// use docker_build::connection::{BuildRequestError, Daemon};
    /// use http_body_util::{BodyDataStream, Full};
    ///
    /// # async fn run(daemon: Daemon, context_tar: Vec<u8>) {
    /// let body = BodyDataStream::new(Full::new(bytes::Bytes::from(context_tar)));
    /// // `buildargs` must be a JSON object: the daemon refuses before building anything.
    /// match daemon.post_build("version=2&buildargs=oops", body).await {
    ///     Err(BuildRequestError::Status { status, message }) => {
    ///         assert_eq!(status, 400);
    ///         assert!(message.contains("error reading build args"));
    ///     }
    ///     other => panic!("unexpected: {other:?}"),
    /// }
    /// # }
    /// ```
    pub async fn post_build<S, E>(
        &self,
        query: &str,
        body: S,
    ) -> Result<BuildResponse, BuildRequestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let mut uri = format!("/v{}/build", self.api_version());
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(query);
        }
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(HOST, self.host().authority())
            .header(CONTENT_TYPE, "application/x-tar")
            .body(StreamBody::new(DataFrames(Box::pin(body))))
            .map_err(|e| BuildRequestError::InvalidRequest(Box::new(e)))?;

        let connect_error = |source| BuildRequestError::Connect {
            host: self.host().clone(),
            source,
        };
        let io = self.open_io().await.map_err(connect_error)?;
        let (response, connection) = send(io, request).await?;

        let status = response.status();
        if !status.is_success() {
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|source| BuildRequestError::ErrorBody {
                    status: status.as_u16(),
                    source: Box::new(source),
                })?
                .to_bytes();
            return Err(BuildRequestError::Status {
                status: status.as_u16(),
                message: daemon_message(&body),
            });
        }
        Ok(BuildResponse {
            body: response.into_body(),
            _connection: connection,
        })
    }
}

impl Daemon {
    /// Opens a new byte stream to the daemon: every request that needs a connection of its own
    /// (`POST /build`, the gRPC upgrade of the Control API, and with TLS every bollard call)
    /// starts here. Over TCP with TLS the handshake is done: the stream carries plain HTTP.
    pub(crate) async fn open_io(&self) -> std::io::Result<Io> {
        self.inner.endpoint.open_io().await
    }
}

/// A bollard transport that sends each request over a new connection from
/// [`Endpoint::open_io`], so the bollard client speaks the endpoint's TLS (bollard's own TLS
/// client would need its `ssl` feature, trust the system's roots and could not skip
/// verification as `DOCKER_TLS=1` asks). One connection per request, as bollard's own clients
/// do; upgrades (attach, exec) are served.
fn over_open_io(
    endpoint: Endpoint,
) -> impl Fn(bollard::BollardRequest) -> TransportFuture + Send + Sync {
    let endpoint = Arc::new(endpoint);
    move |request: bollard::BollardRequest| {
        let endpoint = endpoint.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            // bollard gives an absolute URI; the request line wants the path and query.
            let path = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            parts.uri = path.parse().map_err(|e: hyper::http::uri::InvalidUri| {
                bollard::errors::Error::HttpClientError { err: e.into() }
            })?;
            if !parts.headers.contains_key(HOST) {
                let authority = endpoint.host.authority();
                let value = authority
                    .parse()
                    .map_err(|e: hyper::header::InvalidHeaderValue| {
                        bollard::errors::Error::HttpClientError { err: e.into() }
                    })?;
                parts.headers.insert(HOST, value);
            }
            let io = endpoint.open_io().await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
            tokio::spawn(connection.with_upgrades());
            Ok(sender
                .send_request(Request::from_parts(parts, body))
                .await?)
        })
    }
}

/// What the transport of [`over_open_io`] returns for a request.
type TransportFuture = Pin<
    Box<
        dyn std::future::Future<Output = Result<Response<Incoming>, bollard::errors::Error>> + Send,
    >,
>;

/// A byte stream to the daemon, whatever carries it.
pub(crate) type Io = Pin<Box<dyn DuplexIo>>;

/// What [`Io`] needs of its stream.
pub(crate) trait DuplexIo: AsyncRead + AsyncWrite + Send {}

impl<T: AsyncRead + AsyncWrite + Send> DuplexIo for T {}

/// Why [`Daemon::post_build`] failed before the response body started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildRequestError {
    /// The query string does not make a valid request URI.
    #[error("invalid build request")]
    InvalidRequest(#[source] BoxError),
    /// The connection to the daemon could not be opened.
    #[error("cannot connect to the Docker daemon at {host}")]
    Connect {
        /// The daemon's address.
        host: DockerHost,
        /// The socket error ([`std::io::ErrorKind::Unsupported`] for a Unix socket on a
        /// platform without them).
        #[source]
        source: std::io::Error,
    },
    /// The HTTP/1 handshake on the new connection failed.
    #[error("HTTP handshake with the Docker daemon failed")]
    Handshake(#[source] BoxError),
    /// Sending the request (including the request body) or reading the response head failed.
    #[error("sending the build request to the Docker daemon failed")]
    Send(#[source] BoxError),
    /// The daemon answered with a non-success status before any build output.
    #[error("the Docker daemon refused the build (HTTP {status}): {message}")]
    Status {
        /// The HTTP status code, e.g. 400 for an invalid parameter.
        status: u16,
        /// The daemon's `message` (or the raw body text when it is not JSON).
        message: String,
    },
    /// The daemon answered with a non-success status, and its body could not be read.
    #[error("the Docker daemon refused the build (HTTP {status}), and reading its reason failed")]
    ErrorBody {
        /// The HTTP status code.
        status: u16,
        /// The read error.
        #[source]
        source: BoxError,
    },
}

/// The body of a successful `POST /build`: raw chunks as they arrive from the daemon.
///
/// Implements [`Stream`]; chunks are neither buffered nor framed (a JSON line may be split across
/// chunks, and a chunk may hold many lines). The stream ends when the daemon ends the response.
///
/// The HTTP connection runs in a tokio task owned by this value: dropping the `BuildResponse`
/// aborts that task, which closes the socket (even while the request body is still being
/// uploaded), and the daemon then cancels the build.
#[derive(Debug)]
pub struct BuildResponse {
    body: Incoming,
    _connection: AbortOnDrop,
}

impl BuildResponse {
    /// The next body chunk, or `None` at the end of the response; the same as
    /// `StreamExt::next` without needing futures-util.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for BuildResponse {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                // Trailers and empty data frames carry nothing for the caller.
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Poll::Ready(Some(Ok(data))),
                    _ => continue,
                },
                Some(Err(source)) => {
                    return Poll::Ready(Some(Err(BodyError::Read(Box::new(source)))));
                }
                None => return Poll::Ready(None),
            }
        }
    }
}

/// Why reading the build response body failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The connection failed or closed before the response was complete.
    #[error("reading the build response from the Docker daemon failed")]
    Read(#[source] BoxError),
}

/// Aborts the task driving a hyper connection when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Adapts the caller's byte stream to the frame stream `StreamBody` wants.
struct DataFrames<E>(Pin<Box<dyn Stream<Item = Result<Bytes, E>> + Send>>);

impl<E: Into<BoxError>> Stream for DataFrames<E> {
    type Item = Result<Frame<Bytes>, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0
            .as_mut()
            .poll_next(cx)
            .map(|item| item.map(|chunk| chunk.map(Frame::data).map_err(Into::into)))
    }
}

/// Opens an HTTP/1 connection on `io`, spawns its driver task and sends `request`.
async fn send<IO, B>(
    io: IO,
    request: Request<B>,
) -> Result<(Response<Incoming>, AbortOnDrop), BuildRequestError>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| BuildRequestError::Handshake(Box::new(e)))?;
    // Errors of the connection also reach the pending request or the body, so the task's own
    // result is not needed.
    let guard = AbortOnDrop(tokio::spawn(connection).abort_handle());
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| BuildRequestError::Send(Box::new(e)))?;
    Ok((response, guard))
}

/// The error of connecting to a Unix socket where there are none.
#[cfg(not(unix))]
fn unix_unsupported() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "Unix sockets are not supported on this platform; use a tcp:// DOCKER_HOST",
    )
}

/// The `message` of a daemon error body `{"message":"..."}`, or the body text itself.
pub(crate) fn daemon_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => error.message,
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The host `Endpoint::from_vars` finds with `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and
    /// `DOCKER_CERT_PATH` set as given, and nothing else.
    fn parse_env(
        host: Option<&str>,
        verify: Option<&str>,
        cert: Option<&str>,
    ) -> Result<DockerHost, HostError> {
        Endpoint::from_vars(|name| match name {
            "DOCKER_HOST" => host.map(str::to_string),
            "DOCKER_TLS_VERIFY" => verify.map(str::to_string),
            "DOCKER_CERT_PATH" => cert.map(str::to_string),
            _ => None,
        })
        .map(|endpoint| endpoint.host)
    }

    fn tcp(host: &str, port: u16) -> DockerHost {
        DockerHost::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn default_is_the_standard_socket() {
        let want = DockerHost::Unix("/var/run/docker.sock".into());
        assert_eq!(parse_env(None, None, None).unwrap(), want);
        assert_eq!(parse_env(Some(""), Some(""), Some("")).unwrap(), want);
        assert_eq!(DockerHost::parse("unix://").unwrap(), want);
        assert_eq!(want.to_string(), DEFAULT_DOCKER_HOST);
    }

    #[test]
    fn unix_paths() {
        let host = parse_env(Some("unix:///run/user/1000/docker.sock"), None, None).unwrap();
        assert_eq!(host, DockerHost::Unix("/run/user/1000/docker.sock".into()));
        assert_eq!(host.to_string(), "unix:///run/user/1000/docker.sock");
        // A certificate path means nothing for a Unix socket.
        assert!(parse_env(Some("unix:///x.sock"), None, Some("/certs")).is_ok());
    }

    #[test]
    fn tcp_and_http_addresses() {
        assert_eq!(
            DockerHost::parse("tcp://127.0.0.1:2375").unwrap(),
            tcp("127.0.0.1", 2375)
        );
        assert_eq!(
            DockerHost::parse("http://docker:12375/").unwrap(),
            tcp("docker", 12375)
        );
        assert_eq!(
            DockerHost::parse("tcp://docker").unwrap(),
            tcp("docker", 2375)
        );
        assert_eq!(
            DockerHost::parse("tcp://:4243").unwrap(),
            tcp("localhost", 4243)
        );
        assert_eq!(
            DockerHost::parse("docker:2376").unwrap(),
            tcp("docker", 2376)
        );
        let v6 = DockerHost::parse("tcp://[::1]:2375").unwrap();
        assert_eq!(v6, tcp("::1", 2375));
        assert_eq!(v6.to_string(), "tcp://[::1]:2375");
        assert_eq!(v6.authority(), "[::1]:2375");
        assert_eq!(DockerHost::parse("tcp://[::1]").unwrap(), tcp("::1", 2375));
        assert_eq!("tcp://h:1".parse::<DockerHost>().unwrap(), tcp("h", 1));
    }

    #[test]
    fn malformed_addresses() {
        assert!(matches!(
            DockerHost::parse("tcp://docker:port"),
            Err(HostError::InvalidPort { .. })
        ));
        assert!(matches!(
            DockerHost::parse("tcp://docker:70000"),
            Err(HostError::InvalidPort { .. })
        ));
        assert!(matches!(
            DockerHost::parse("tcp://docker:2375/prefix"),
            Err(HostError::Malformed { .. })
        ));
        assert!(matches!(
            DockerHost::parse("tcp://[::1:2375"),
            Err(HostError::Malformed { .. })
        ));
        for address in ["ssh://me@docker", "npipe:////./pipe/docker_engine", "fd://"] {
            let err = DockerHost::parse(address).unwrap_err();
            assert!(
                matches!(err, HostError::UnsupportedScheme { .. }),
                "{address}"
            );
            assert!(err.to_string().contains(address), "{err}");
        }
    }

    #[test]
    fn https_is_a_tcp_address() {
        assert_eq!(
            DockerHost::parse("https://docker:2376").unwrap(),
            tcp("docker", 2376)
        );
        // The address is the same; TLS is the endpoint's.
        let err = parse_env(Some("https://docker:2376"), None, Some("/no/such/dir")).unwrap_err();
        assert!(
            matches!(err, HostError::Tls(TlsError::NoCa { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn daemon_messages() {
        assert_eq!(
            daemon_message(br#"{"message":"invalid version"}"#),
            "invalid version"
        );
        assert_eq!(daemon_message(b"page not found\n"), "page not found");
    }

    /// A fake daemon on a Unix socket, answering `/_ping`, `/version` and `/build` with canned
    /// responses, enough to drive [`Daemon`] without Docker.
    pub(super) mod fake {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
        use tokio::net::{TcpListener, UnixListener};
        use tokio::sync::mpsc;

        use crate::connection::DockerHost;

        /// What the fake does on `POST /build`.
        #[derive(Clone, Copy)]
        pub enum Build {
            /// 400 with `{"message":"invalid version"}`.
            Refuse,
            /// Two chunks and the end of the body.
            Complete,
            /// One chunk, then closes the socket mid-body.
            Hangup,
            /// One chunk, then waits for the client to close, and reports it.
            WaitForClose,
            /// Like `WaitForClose`, but answers without waiting for the request body to end.
            EarlyWaitForClose,
        }

        pub struct Fake {
            pub host: DockerHost,
            /// Receives the request head and body of each `/build`, then `"closed"` in
            /// `WaitForClose` modes once the client has hung up.
            pub events: mpsc::UnboundedReceiver<String>,
        }

        impl Drop for Fake {
            fn drop(&mut self) {
                if let DockerHost::Unix(path) = &self.host {
                    let _ = std::fs::remove_file(path);
                }
            }
        }

        pub fn start(api_version: &'static str, build: Build) -> Fake {
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "docker-build-fake-{}-{}.sock",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).unwrap();
            let (tx, events) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    tokio::spawn(serve(stream, api_version, build, tx.clone()));
                }
            });
            let host = DockerHost::Unix(path);
            Fake { host, events }
        }

        pub async fn start_tcp(api_version: &'static str, build: Build) -> Fake {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let (tx, events) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    tokio::spawn(serve(stream, api_version, build, tx.clone()));
                }
            });
            let host = DockerHost::Tcp {
                host: "127.0.0.1".into(),
                port,
            };
            Fake { host, events }
        }

        /// A fake daemon on `127.0.0.1` behind TLS with `config` (the handshake failures are
        /// the client's to report).
        pub async fn start_tls(
            api_version: &'static str,
            build: Build,
            config: std::sync::Arc<rustls::ServerConfig>,
        ) -> Fake {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let (tx, events) = mpsc::unbounded_channel();
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            tokio::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let (acceptor, tx) = (acceptor.clone(), tx.clone());
                    tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            serve(stream, api_version, build, tx).await;
                        }
                    });
                }
            });
            let host = DockerHost::Tcp {
                host: "127.0.0.1".into(),
                port,
            };
            Fake { host, events }
        }

        /// Reads into `buf` until it holds `end`; false at EOF.
        async fn read_until<S>(stream: &mut S, buf: &mut Vec<u8>, end: &[u8]) -> bool
        where
            S: AsyncRead + Unpin,
        {
            while !buf.windows(end.len()).any(|w| w == end) {
                let mut chunk = [0; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            true
        }

        fn json_response(status: &str, json: &str) -> String {
            let length = json.len();
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                 Content-Length: {length}\r\n\r\n{json}"
            )
        }

        async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
            mut stream: S,
            api_version: &str,
            build: Build,
            events: mpsc::UnboundedSender<String>,
        ) {
            let mut buf = Vec::new();
            // bollard and hyper each send one request per connection here.
            if !read_until(&mut stream, &mut buf, b"\r\n\r\n").await {
                return;
            }
            let head = String::from_utf8_lossy(&buf).into_owned();
            let request_line = head.lines().next().unwrap_or_default().to_string();
            let response = if request_line.contains("/session") {
                // As a socket proxy that blocks sessions answers.
                json_response("403 Forbidden", r#"{"message":"sessions are not allowed"}"#)
            } else if request_line.contains("/_ping") {
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK".to_string()
            } else if request_line.contains("/version") {
                let json = format!(r#"{{"Version":"0.0-fake","ApiVersion":"{api_version}"}}"#);
                json_response("200 OK", &json)
            } else {
                // The request body is chunked; read it to its last chunk.
                let early = matches!(build, Build::EarlyWaitForClose);
                if !early && !read_until(&mut stream, &mut buf, b"0\r\n\r\n").await {
                    return;
                }
                events
                    .send(String::from_utf8_lossy(&buf).into_owned())
                    .unwrap();
                let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
                match build {
                    Build::Refuse => {
                        json_response("400 Bad Request", r#"{"message":"invalid version"}"#)
                    }
                    Build::Complete => format!("{head}4\r\none\n\r\n4\r\ntwo\n\r\n0\r\n\r\n"),
                    Build::Hangup => format!("{head}4\r\none\n\r\n"),
                    Build::WaitForClose | Build::EarlyWaitForClose => {
                        stream
                            .write_all(format!("{head}4\r\none\n\r\n").as_bytes())
                            .await
                            .unwrap();
                        let mut rest = [0; 64];
                        while !matches!(stream.read(&mut rest).await, Ok(0) | Err(_)) {}
                        events.send("closed".to_string()).unwrap();
                        return;
                    }
                }
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    }

    fn tar_body(
        bytes: &'static [u8],
    ) -> http_body_util::BodyDataStream<http_body_util::Full<Bytes>> {
        http_body_util::BodyDataStream::new(http_body_util::Full::new(Bytes::from_static(bytes)))
    }

    async fn connect(fake: &fake::Fake) -> Daemon {
        Daemon::connect_to(fake.host.clone()).await.unwrap()
    }

    #[tokio::test]
    async fn negotiates_the_daemon_api_version_capped_at_bollards() {
        let old = fake::start("1.41", fake::Build::Complete);
        let daemon = connect(&old).await;
        assert_eq!(daemon.api_version(), "1.41");
        assert_eq!(daemon.host(), &old.host);
        assert_eq!(daemon.bollard().client_version().to_string(), "1.41");

        let future = fake::start("1.99", fake::Build::Complete);
        let daemon = connect(&future).await;
        assert_eq!(
            daemon.api_version(),
            bollard::API_DEFAULT_VERSION.to_string()
        );
    }

    #[tokio::test]
    async fn a_bollard_client_of_the_callers_drives_builds() {
        let mut fake = fake::start("1.41", fake::Build::Complete);
        let DockerHost::Unix(path) = &fake.host else {
            unreachable!()
        };
        let docker = bollard::Docker::connect_with_unix(
            &path.to_string_lossy(),
            120,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
        let daemon = Daemon::from_bollard(docker, fake.host.clone());
        assert_eq!(daemon.api_version(), "1.41");
        let mut response = daemon
            .post_build("version=2", tar_body(b"CONTEXT"))
            .await
            .unwrap();
        while let Some(chunk) = response.next_chunk().await {
            chunk.unwrap();
        }
        let request = fake.events.recv().await.unwrap();
        assert!(
            request.starts_with("POST /v1.41/build?version=2 "),
            "{request}"
        );
    }

    /// The error names the address and the system's reason, not the HTTP client's
    /// internals (issue 15, item 11).
    #[tokio::test]
    async fn a_refused_tcp_connection_says_connection_refused() {
        // A port that was free a moment ago and has no listener now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = DockerHost::parse(&format!("tcp://127.0.0.1:{port}")).unwrap();
        let err = Daemon::connect_to(host).await.unwrap_err();
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        assert!(
            text.starts_with(&format!(
                "cannot connect to the Docker daemon at tcp://127.0.0.1:{port}: Connection refused"
            )),
            "{text}"
        );
        assert!(!text.contains("hyper"), "{text}");
    }

    #[tokio::test]
    async fn missing_socket_is_unreachable_and_named() {
        let path = std::env::temp_dir().join("docker-build-no-such-dir/docker.sock");
        let err = Daemon::connect_to(DockerHost::Unix(path.clone()))
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectError::Unreachable { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    /// A build that would like a session for registry credentials (`SessionMode::Prefer`) and
    /// needs none goes on without when the daemon refuses it, and tells why; one that needs a
    /// session fails.
    #[cfg(feature = "session")]
    #[tokio::test]
    async fn a_refused_session_is_reported_and_the_build_goes_on_without() {
        let mut fake = fake::start("1.41", fake::Build::Complete);
        let daemon = connect(&fake).await;
        let context = || crate::Context::from_tar(bytes::Bytes::from_static(b"CONTEXT"));
        let options = crate::BuildOptions {
            session: crate::SessionMode::Prefer,
            ..Default::default()
        };
        let stream = crate::build(&daemon, context(), &options).await.unwrap();
        let refused = stream.session_refused().expect("the refusal is kept");
        let mut text = refused.to_string();
        let mut source = std::error::Error::source(refused);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        assert!(text.contains("sessions are not allowed"), "{text}");
        assert_eq!(stream.session_id(), None);
        let request = fake.events.recv().await.unwrap();
        assert!(request.starts_with("POST /v1.41/build?"), "{request}");
        assert!(
            !request.lines().next().unwrap().contains("session="),
            "{request}"
        );

        let needs = crate::BuildOptions {
            session: crate::SessionMode::Prefer,
            secrets: vec![crate::Secret::bytes("token", b"s3cr3t".to_vec())],
            ..Default::default()
        };
        let err = crate::build(&daemon, context(), &needs).await.unwrap_err();
        assert!(matches!(err, crate::BuildError::Session(_)), "{err:?}");

        // An output comes only through a session: no fallback either.
        let local = || crate::Output::Local {
            dest: "/nonexistent/out".into(),
        };
        let output = crate::BuildOptions {
            session: crate::SessionMode::Prefer,
            outputs: vec![local()],
            ..Default::default()
        };
        let err = crate::build(&daemon, context(), &output).await.unwrap_err();
        assert!(matches!(err, crate::BuildError::Session(_)), "{err:?}");
        let two = crate::BuildOptions {
            outputs: vec![local(), local()],
            ..output
        };
        let err = crate::build(&daemon, context(), &two).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the Docker daemon takes one build output, not 2"
        );
    }

    #[tokio::test]
    async fn streams_the_body_and_sends_the_context() {
        let mut fake = fake::start("1.41", fake::Build::Complete);
        let daemon = connect(&fake).await;
        let mut response = daemon
            .post_build("version=2&nocache=1", tar_body(b"CONTEXT"))
            .await
            .unwrap();
        let mut body = Vec::new();
        while let Some(chunk) = response.next_chunk().await {
            body.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(body, b"one\ntwo\n");
        let request = fake.events.recv().await.unwrap();
        assert!(
            request.starts_with("POST /v1.41/build?version=2&nocache=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("CONTEXT"), "{request}");
    }

    #[tokio::test]
    async fn error_status_carries_the_daemon_message() {
        let fake = fake::start("1.41", fake::Build::Refuse);
        let daemon = connect(&fake).await;
        let err = daemon
            .post_build("version=3", tar_body(b""))
            .await
            .unwrap_err();
        match &err {
            BuildRequestError::Status { status, message } => {
                assert_eq!(*status, 400);
                assert_eq!(message, "invalid version");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("invalid version"), "{err}");
    }

    #[tokio::test]
    async fn hangup_mid_body_is_an_error_item() {
        let fake = fake::start("1.41", fake::Build::Hangup);
        let daemon = connect(&fake).await;
        let mut response = daemon
            .post_build("version=2", tar_body(b"x"))
            .await
            .unwrap();
        assert_eq!(response.next_chunk().await.unwrap().unwrap(), "one\n");
        let err = response.next_chunk().await.unwrap().unwrap_err();
        assert!(matches!(err, BodyError::Read(_)), "{err:?}");
    }

    #[tokio::test]
    async fn dropping_the_response_closes_the_connection() {
        let mut fake = fake::start("1.41", fake::Build::WaitForClose);
        let daemon = connect(&fake).await;
        let mut response = daemon
            .post_build("version=2", tar_body(b"x"))
            .await
            .unwrap();
        assert_eq!(response.next_chunk().await.unwrap().unwrap(), "one\n");
        assert!(fake.events.recv().await.unwrap().contains("POST"));
        drop(response);
        // The fake only reports once its socket reads EOF, i.e. the client closed it.
        assert_eq!(fake.events.recv().await.unwrap(), "closed");
    }

    /// A request body that yields one chunk and then never ends.
    struct Unending(bool);

    impl Stream for Unending {
        type Item = Result<Bytes, std::convert::Infallible>;

        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(Bytes::from_static(b"partial context"))))
            }
        }
    }

    #[tokio::test]
    async fn dropping_the_response_during_the_upload_closes_the_connection() {
        // The daemon streams progress while it may still be reading the context.
        let mut fake = fake::start("1.41", fake::Build::EarlyWaitForClose);
        let daemon = connect(&fake).await;
        let mut response = daemon
            .post_build("version=2", Unending(false))
            .await
            .unwrap();
        assert_eq!(response.next_chunk().await.unwrap().unwrap(), "one\n");
        assert!(fake.events.recv().await.unwrap().contains("POST"));
        drop(response);
        assert_eq!(fake.events.recv().await.unwrap(), "closed");
    }

    #[tokio::test]
    async fn connect_failure_names_the_address() {
        let fake = fake::start("1.41", fake::Build::Complete);
        let daemon = connect(&fake).await;
        let host = fake.host.clone();
        drop(fake); // removes the socket file
        let err = daemon
            .post_build("version=2", tar_body(b""))
            .await
            .unwrap_err();
        assert!(matches!(err, BuildRequestError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains(&host.to_string()), "{err}");
    }

    #[tokio::test]
    async fn build_decodes_with_the_options_decoder_config_and_the_stream_is_fused() {
        use futures_core::FusedStream;

        let fake = fake::start("1.41", fake::Build::Complete);
        let daemon = connect(&fake).await;
        let mut options = crate::BuildOptions::default();
        options.decoder.max_line = 1;
        let context = crate::Context::from_tar(Bytes::from_static(b"CONTEXT"));
        let mut events = crate::build(&daemon, context, &options).await.unwrap();
        assert!(!events.is_terminated());
        let mut got = Vec::new();
        while let Some(event) = events.next_event().await {
            got.push(event.unwrap());
        }
        assert!(events.is_terminated());
        assert!(events.next_event().await.is_none());
        // The fake's body is `one\ntwo\n`: both lines are over the configured bound.
        let too_long = got
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    crate::BuildEvent::BadLine(crate::LineError::TooLong { max: 1, .. })
                )
            })
            .count();
        assert_eq!(too_long, 2, "{got:?}");
        assert!(matches!(got.last(), Some(crate::BuildEvent::Finished(_))));
    }

    #[tokio::test]
    async fn works_over_tcp() {
        let mut fake = fake::start_tcp("1.41", fake::Build::Complete).await;
        let daemon = connect(&fake).await;
        assert_eq!(daemon.api_version(), "1.41");
        let mut response = daemon
            .post_build("version=2", tar_body(b"CONTEXT"))
            .await
            .unwrap();
        let mut body = Vec::new();
        while let Some(chunk) = response.next_chunk().await {
            body.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(body, b"one\ntwo\n");
        let request = fake.events.recv().await.unwrap().to_ascii_lowercase();
        let DockerHost::Tcp { port, .. } = fake.host else {
            unreachable!()
        };
        assert!(
            request.contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n")),
            "{request}"
        );
        assert!(
            request.contains("content-type: application/x-tar"),
            "{request}"
        );
    }
}
