//! A BuildKit session served to the daemon for a build (feature `session`, Unix): secrets for
//! `RUN --mount=type=secret` and SSH agents for `RUN --mount=type=ssh`.
//!
//! BuildKit asks the client for such things while it builds. The client opens the session
//! first: `POST /session` with `Connection: Upgrade`, `Upgrade: h2c` and headers naming the
//! session (`X-Docker-Expose-Session-Uuid`, `-Name`, `-Sharedkey`) and every gRPC method it
//! serves (one `X-Docker-Expose-Session-Grpc-Method` each). After `101 Switching Protocols` the
//! roles invert: the daemon is the gRPC client on that socket and this crate the HTTP/2 server.
//! The build then names the session (`POST /build?…&session=<id>`), and BuildKit calls:
//!
//! | service | what for |
//! |---|---|
//! | `grpc.health.v1.Health/Check` | every 5 s; two failures end the session |
//! | `moby.buildkit.secrets.v1.Secrets/GetSecret` | a secret's value by id; unknown ids are `NotFound` |
//! | `moby.sshforward.v1.SSH/CheckAgent` | whether an agent id is forwarded |
//! | `moby.sshforward.v1.SSH/ForwardAgent` | one connection to the agent's socket (or to the session's own agent serving key files, `session/agent.rs`), as a byte stream |
//! | `moby.filesync.v1.Auth/Credentials` (and the rest of `Auth`) | registry credentials, from the docker CLI's configuration ([`AuthService`]) |
//! | `moby.filesync.v1.FileSync/DiffCopy` | the build context and the Dockerfile's folder ([`Session::with_context`]; `session/filesync.rs`) |
//! | `moby.filesync.v1.FileSend/DiffCopy` | the build's output ([`Output`](crate::Output)): a tar archive, or files under a folder (`filesend.rs`) |
//!
//! Any other method is answered `Unimplemented`.
//!
//! [`build()`](crate::build) does all this when [`BuildOptions`](crate::BuildOptions) ask for a
//! session (secrets, SSH agents or outputs given, or [`SessionMode::Always`](crate::SessionMode)); the
//! [`BuildStream`](crate::BuildStream) owns it and closes it when the build ends or the stream is
//! dropped. [`Session`] is for those who send `POST /build` themselves.
//!
//! # Lifetime
//!
//! Every task of a session — the HTTP/2 connection, hyper's task per gRPC call, the copies to
//! and from an SSH agent — ends when its [`ActiveSession`] is dropped: the socket to the
//! daemon and every agent connection are closed, and the daemon forgets the session.
//!
//! # Secrets stay secret
//!
//! A secret's value is read when BuildKit asks for it and goes only into the `GetSecret`
//! answer: no `Debug` of this crate prints it ([`Secret`],
//! `GetSecretResponse`), no error message holds it, and nothing here logs. The same holds for
//! SSH private key files: their keys stay in the in-process agent, whose `Debug` shows only
//! fingerprints, and errors name the file, never its contents.
//!
//! ```no_run
//! use docker_build::connection::Daemon;
//! use docker_build::session::Session;
//! use docker_build::{BuildOptions, Secret};
//!
//! # async fn run(context_tar: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! let daemon = Daemon::connect().await?;
//! let session = Session::new(&[Secret::env("token", "API_TOKEN")], &[])?
//!     .start(&daemon)
//!     .await?;
//! let query = BuildOptions::default().query_with_session("Dockerfile", Some(session.id()));
//! let body = http_body_util::BodyDataStream::new(http_body_util::Full::new(bytes::Bytes::from(context_tar)));
//! let mut response = daemon.post_build(&query, body).await?;
//! while let Some(chunk) = response.next_chunk().await {
//!     chunk?;
//! }
//! drop(session); // the build is over
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::FileTypeExt as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use buildkit_proto::session::auth::auth_server::{self, AuthServer};
use buildkit_proto::session::filesend::file_send_server;
use buildkit_proto::session::health::health_server::{self, Health, HealthServer};
use buildkit_proto::session::health::{HealthCheckRequest, HealthCheckResponse, ServingStatus};
use buildkit_proto::session::secrets::secrets_server::{self, Secrets, SecretsServer};
use buildkit_proto::session::secrets::{GetSecretRequest, GetSecretResponse};
use buildkit_proto::session::sshforward::ssh_server::{self, Ssh, SshServer};
use buildkit_proto::session::sshforward::{
    BytesMessage, CheckAgentRequest, CheckAgentResponse, DEFAULT_ID, KEY_SSH_ID,
};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HOST, HeaderValue, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::body::Body;
use tower_service::Service as _;

use crate::connection::{BoxError, Daemon, DockerHost, daemon_message};
use crate::options::{MAX_SECRET_SIZE, Secret, SecretSource, SshAgent};
use crate::registry_auth::{AuthService, DockerConfig};

mod agent;
mod filesync;

use buildkit_proto::session::filesync::file_sync_server::{self, FileSyncServer};
use filesync::{FileSyncService, LocalDirs};
use std::sync::atomic::{AtomicU64, Ordering};
mod filesend;

pub(crate) use filesend::ExportStatus;
use filesend::FileSendService;
pub use filesend::ReceiveError;

/// The session's id header.
const HEADER_ID: &str = "X-Docker-Expose-Session-Uuid";
/// The session's name header.
const HEADER_NAME: &str = "X-Docker-Expose-Session-Name";
/// The shared key header (BuildKit keys caches of local sources by it).
const HEADER_SHARED_KEY: &str = "X-Docker-Expose-Session-Sharedkey";
/// One per gRPC method served: `/package.Service/Method`.
const HEADER_METHOD: &str = "X-Docker-Expose-Session-Grpc-Method";

/// Every gRPC method a session serves, as announced to the daemon.
pub const METHODS: [&str; 10] = [
    "/grpc.health.v1.Health/Check",
    "/moby.buildkit.secrets.v1.Secrets/GetSecret",
    "/moby.sshforward.v1.SSH/CheckAgent",
    "/moby.sshforward.v1.SSH/ForwardAgent",
    "/moby.filesync.v1.Auth/Credentials",
    "/moby.filesync.v1.Auth/FetchToken",
    "/moby.filesync.v1.Auth/GetTokenAuthority",
    "/moby.filesync.v1.Auth/VerifyTokenAuthority",
    "/moby.filesync.v1.FileSync/DiffCopy",
    "/moby.filesync.v1.FileSend/DiffCopy",
];

/// What a session serves, before it is started: secrets, SSH agents, registry credentials, its
/// id.
///
/// `Debug` shows secret ids and sources, never a value.
#[derive(Debug, Clone)]
pub struct Session {
    id: String,
    name: String,
    shared_key: String,
    secrets: HashMap<String, SecretSource>,
    ssh: HashMap<String, AgentSource>,
    /// Where registry credentials come from; `None`: the docker CLI's configuration, read when
    /// the daemon first asks.
    registry_auth: Option<DockerConfig>,
    /// The folders FileSync serves (a directory context).
    dirs: Option<Arc<LocalDirs>>,
    /// Where the build's output goes (the exporter sends it through `FileSend`).
    output: Option<crate::Output>,
}

/// Why a session could not be set up or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A secret's file cannot be read (its metadata, when the session is set up).
    #[error("secret {id:?}: cannot read {}", path.display())]
    SecretFile {
        /// The secret's id.
        id: String,
        /// Its file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A secret's environment variable is not set.
    #[error("secret {id:?}: the environment variable {var} is not set")]
    SecretEnv {
        /// The secret's id.
        id: String,
        /// The variable.
        var: String,
    },
    /// A secret is larger than BuildKit takes ([`MAX_SECRET_SIZE`]).
    #[error("secret {id:?} is {size} bytes; BuildKit takes at most {MAX_SECRET_SIZE}")]
    SecretTooLarge {
        /// The secret's id.
        id: String,
        /// Its size in bytes.
        size: u64,
    },
    /// Two SSH agents with the same id.
    #[error("SSH agent {id:?} is given twice")]
    DuplicateSshId {
        /// The id.
        id: String,
    },
    /// An SSH agent without a path, and `SSH_AUTH_SOCK` is not set.
    #[error("SSH agent {id:?}: SSH_AUTH_SOCK is not set; start an ssh-agent or give ID=SOCKET")]
    NoSshAuthSock {
        /// The agent's id.
        id: String,
    },
    /// An SSH agent's path cannot be used (e.g. it does not exist).
    #[error("SSH agent {id:?}: cannot use {}", path.display())]
    SshPath {
        /// The agent's id.
        id: String,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An SSH agent's private key file cannot be read.
    #[error("SSH agent {id:?}: cannot read the key file {}", path.display())]
    SshKeyRead {
        /// The agent's id.
        id: String,
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An SSH agent's key file is not an OpenSSH private key (the message never holds the
    /// file's contents). The parser's reason is not kept: for a file that is no key at all it
    /// describes PEM details (e.g. "PEM preamble contains invalid data") that mislead.
    #[error("SSH agent {id:?}: {} is not an OpenSSH private key", path.display())]
    SshKeyNotAKey {
        /// The agent's id.
        id: String,
        /// The file.
        path: PathBuf,
    },
    /// An SSH agent's key file is protected by a passphrase: nothing here prompts for it.
    #[error(
        "SSH agent {id:?}: {} is encrypted; load it into an ssh-agent (ssh-add) and give its socket",
        path.display()
    )]
    SshKeyEncrypted {
        /// The agent's id.
        id: String,
        /// The key file.
        path: PathBuf,
    },
    /// An SSH agent's key file holds a key other than Ed25519 (the only kind served from a
    /// file).
    #[error(
        "SSH agent {id:?}: {} is an {algorithm} key; key files must be Ed25519, load other keys into an ssh-agent (ssh-add) and give its socket",
        path.display()
    )]
    SshKeyAlgorithm {
        /// The agent's id.
        id: String,
        /// The key file.
        path: PathBuf,
        /// The key's algorithm (`ssh-rsa`, `ecdsa-sha2-nistp256`, …).
        algorithm: String,
    },
    /// An agent socket among several paths: one id is one agent socket, or key files only.
    #[error(
        "SSH agent {id:?}: {} is an agent socket; give one socket or only private key files",
        path.display()
    )]
    SshSocketAndKeys {
        /// The agent's id.
        id: String,
        /// The socket.
        path: PathBuf,
    },
    /// The connection to the daemon could not be opened.
    #[error("cannot connect to the Docker daemon at {host}")]
    Connect {
        /// The daemon's address.
        host: DockerHost,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange that opens the session failed.
    #[error("opening a BuildKit session with the Docker daemon at {host} failed")]
    Handshake {
        /// The daemon's address.
        host: DockerHost,
        /// What hyper reported.
        #[source]
        source: BoxError,
    },
    /// The daemon answered `POST /session` without switching protocols (e.g. a socket proxy
    /// that blocks it, or a daemon without BuildKit).
    #[error(
        "the Docker daemon at {host} refused a BuildKit session (POST /session answered HTTP {status}: {message})"
    )]
    Refused {
        /// The daemon's address.
        host: DockerHost,
        /// The HTTP status.
        status: u16,
        /// The daemon's message.
        message: String,
    },
}

impl Session {
    /// A session serving `secrets` (a later one with the same id wins, as in buildx) and the
    /// SSH agents `ssh`, with a new random id.
    ///
    /// Checks what can be checked before the build: every secret file exists and is at most
    /// [`MAX_SECRET_SIZE`], every secret variable is set, every SSH agent is one Unix socket
    /// (`$SSH_AUTH_SOCK` for an agent without a path) or private key files, which are parsed
    /// here (unencrypted Ed25519 OpenSSH keys). Secret values are read only when BuildKit asks.
    pub fn new(secrets: &[Secret], ssh: &[SshAgent]) -> Result<Self, SessionError> {
        Self::with_env(secrets, ssh, |var| std::env::var_os(var))
    }

    /// [`Session::new`] with `env` standing for the process environment.
    pub(crate) fn with_env(
        secrets: &[Secret],
        ssh: &[SshAgent],
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, SessionError> {
        let mut served = HashMap::new();
        for secret in secrets {
            let id = secret.id().to_string();
            let size = match secret.source() {
                SecretSource::File(path) => std::fs::metadata(path)
                    .map_err(|source| SessionError::SecretFile {
                        id: id.clone(),
                        path: path.clone(),
                        source,
                    })?
                    .len(),
                SecretSource::Env(var) => match env(var) {
                    Some(value) => value.len() as u64,
                    None => {
                        return Err(SessionError::SecretEnv {
                            id,
                            var: var.clone(),
                        });
                    }
                },
                SecretSource::Bytes(value) => value.len() as u64,
            };
            if size > MAX_SECRET_SIZE {
                return Err(SessionError::SecretTooLarge { id, size });
            }
            served.insert(id, secret.source().clone());
        }
        let mut ids = std::collections::HashSet::new();
        if let Some(twice) = ssh.iter().find(|agent| !ids.insert(agent.id())) {
            return Err(SessionError::DuplicateSshId {
                id: twice.id().to_string(),
            });
        }
        let mut agents = HashMap::new();
        for agent in ssh {
            let id = agent.id().to_string();
            let paths = match agent.paths() {
                [] => match env("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
                    Some(path) => vec![PathBuf::from(path)],
                    None => return Err(SessionError::NoSshAuthSock { id }),
                },
                paths => paths.to_vec(),
            };
            let mut sockets = Vec::new();
            for path in &paths {
                let metadata = std::fs::metadata(path).map_err(|source| SessionError::SshPath {
                    id: id.clone(),
                    path: path.clone(),
                    source,
                })?;
                if metadata.file_type().is_socket() {
                    sockets.push(path.clone());
                }
            }
            let source = match (sockets.as_slice(), paths.len()) {
                ([socket], 1) => AgentSource::Socket(socket.clone()),
                ([], _) => AgentSource::Keys(Arc::new(
                    agent::Keyring::load(&paths).map_err(|e| key_file_error(&id, e))?,
                )),
                ([socket, ..], _) => {
                    return Err(SessionError::SshSocketAndKeys {
                        id,
                        path: socket.clone(),
                    });
                }
            };
            agents.insert(id, source);
        }
        Ok(Session {
            id: new_id(),
            name: "docker-build".to_string(),
            shared_key: String::new(),
            secrets: served,
            ssh: agents,
            registry_auth: None,
            dirs: None,
            output: None,
        })
    }

    /// Serves `context` (a directory context; a tar context changes nothing) to the daemon
    /// through `moby.filesync.v1.FileSync`, as `docker buildx build` does: the build is then
    /// sent with `remote=client-session` and no body
    /// ([`BuildOptions::query_with_session_context`](crate::BuildOptions::query_with_session_context)).
    /// The folder `context` is the context's directory with its ignore rules applied (the
    /// Dockerfile too, when they exclude it); the folder `dockerfile` holds only the
    /// Dockerfile and its own ignore file, from the Dockerfile's folder (which may be outside
    /// the context). Only the files the daemon asks for are read.
    ///
    /// The shared key is derived from the context's directory, so that BuildKit finds the copy
    /// of the last build of the same folder and asks only for what changed.
    pub fn with_context(mut self, context: &docker_context::Context) -> Self {
        if let Some(dirs) = LocalDirs::of(context) {
            self.shared_key = shared_key(&dirs.context);
            self.dirs = Some(Arc::new(dirs));
        }
        self
    }

    /// Whether the session serves a build context ([`Session::with_context`] of a directory
    /// context).
    pub fn serves_context(&self) -> bool {
        self.dirs.is_some()
    }

    /// The session's id, sent as `session=` with the build.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Uses `id` instead of the random one (ids must be unique on the daemon while a session
    /// lives: the daemon refuses a second session with the same id).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Answers the daemon's questions for registry credentials from `config` instead of the
    /// docker CLI's configuration ([`DockerConfig::load`], read when the daemon first asks).
    pub fn with_docker_config(mut self, config: DockerConfig) -> Self {
        self.registry_auth = Some(config);
        self
    }

    /// Receives the build's output (`outputs=` of the build's query) into `output` when the
    /// daemon's exporter sends it; [`ActiveSession::export_finished`] tells when it is written.
    pub fn with_output(mut self, output: crate::Output) -> Self {
        self.output = Some(output);
        self
    }

    /// Opens the session on `daemon` (`POST /session`, upgraded to HTTP/2) and serves it
    /// until the returned [`ActiveSession`] is dropped.
    pub async fn start(self, daemon: &Daemon) -> Result<ActiveSession, SessionError> {
        let io = daemon
            .open_io()
            .await
            .map_err(|source| SessionError::Connect {
                host: daemon.host().clone(),
                source,
            })?;
        self.start_on(io, daemon.api_version(), daemon.host()).await
    }

    /// [`Session::start`] on a byte stream already open to the daemon.
    pub(crate) async fn start_on<T>(
        self,
        io: T,
        api_version: &str,
        host: &DockerHost,
    ) -> Result<ActiveSession, SessionError>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let handshake = |source: BoxError| SessionError::Handshake {
            host: host.clone(),
            source,
        };
        let (closed, closed_rx) = watch::channel(());
        let tasks = Tasks { closed: closed_rx };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| handshake(Box::new(e)))?;
        tasks.spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("/v{api_version}/session"))
            .header(HOST, host.authority())
            .header(CONNECTION, "Upgrade")
            .header(UPGRADE, "h2c")
            .header(HEADER_ID, header_value(&self.id).map_err(&handshake)?)
            .header(HEADER_NAME, header_value(&self.name).map_err(&handshake)?)
            .header(
                HEADER_SHARED_KEY,
                header_value(&self.shared_key).map_err(&handshake)?,
            );
        for method in METHODS {
            request = request.header(HEADER_METHOD, method);
        }
        let request = request
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| handshake(Box::new(e)))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| handshake(Box::new(e)))?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(SessionError::Refused {
                host: host.clone(),
                status,
                message: daemon_message(&body),
            });
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| handshake(Box::new(e)))?;
        let id = self.id.clone();
        let sent = Arc::new(AtomicU64::new(0));
        let export = Arc::new(ExportStatus::default());
        let router = Router::new(self, tasks.clone(), Arc::clone(&sent), &export);
        let connection = hyper::server::conn::http2::Builder::new(tasks.clone()).serve_connection(
            upgraded,
            hyper::service::service_fn(move |request| router.route(request)),
        );
        let connection = tasks.spawn(async move {
            let _ = connection.await;
        });
        Ok(ActiveSession {
            id,
            connection,
            sent,
            export,
            _closed: closed,
        })
    }
}

/// A header value from our own text; ids and names are ASCII, a caller's odd id is an error.
fn header_value(text: &str) -> Result<HeaderValue, BoxError> {
    HeaderValue::from_str(text).map_err(|e| Box::new(e) as BoxError)
}

/// The shared key of a context folder: stable across builds of the same folder (the SHA-256
/// of its absolute path), as buildx derives its own from the path.
fn shared_key(dir: &std::path::Path) -> String {
    let absolute = dir
        .canonicalize()
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf());
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        &[
            b"docker-build:".as_slice(),
            absolute.as_os_str().as_encoded_bytes(),
        ]
        .concat(),
    );
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A new session id: 25 characters of base 36 from 128 random bits, like BuildKit's
/// `identity.NewID` (ring's system randomness; no `rand` crate for one call).
fn new_id() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random number generator works");
    let mut n = u128::from_le_bytes(bytes);
    let mut id = Vec::with_capacity(25);
    for _ in 0..25 {
        id.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    String::from_utf8(id).expect("ASCII")
}

/// A session being served. Dropping it closes the session: every task it runs ends, the
/// socket to the daemon and every SSH agent connection close.
pub struct ActiveSession {
    id: String,
    connection: JoinHandle<()>,
    /// File bytes FileSync sent.
    sent: Arc<AtomicU64>,
    /// Set when the build's output is written.
    export: Arc<ExportStatus>,
    /// Dropped with the session: every task of [`Tasks`] watches it.
    _closed: watch::Sender<()>,
}

impl fmt::Debug for ActiveSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveSession")
            .field("id", &self.id)
            .field("serving", &!self.connection.is_finished())
            .finish()
    }
}

impl ActiveSession {
    /// The session's id, sent as `session=` with the build.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The bytes of file contents sent so far through FileSync (the DATA packets' payloads):
    /// what the daemon asked for of the build context, nothing else.
    pub fn context_bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The counter behind [`ActiveSession::context_bytes_sent`], which outlives the session.
    pub(crate) fn context_bytes_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.sent)
    }

    /// Whether the connection to the daemon has ended (the daemon closed it, or it broke).
    pub fn is_finished(&self) -> bool {
        self.connection.is_finished()
    }

    /// Whether the build's output ([`Session::with_output`]) was written in full: every file
    /// under the folder, or every byte of the archive. Set before the exporter is told the
    /// transfer is over, so before the daemon ends the build's body.
    pub fn export_finished(&self) -> bool {
        self.export.finished()
    }

    /// The flag behind [`ActiveSession::export_finished`], which outlives the session.
    pub(crate) fn export_status(&self) -> Arc<ExportStatus> {
        Arc::clone(&self.export)
    }
}

/// Spawns the session's tasks so that each ends when the session is dropped: the executor of
/// the HTTP/2 server (hyper spawns a task per call) and of our own copies.
#[derive(Clone)]
struct Tasks {
    closed: watch::Receiver<()>,
}

impl Tasks {
    fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut closed = self.closed.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = task => {}
                // Only ever an error: the sender is never used, only dropped.
                _ = closed.changed() => {}
            }
        })
    }
}

impl<F> hyper::rt::Executor<F> for Tasks
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, task: F) {
        self.spawn(async move {
            task.await;
        });
    }
}

/// Dispatches each call by its path's service to the generated tonic server; unknown services
/// are answered `Unimplemented` (hand-routed: tonic's `Router` would bring axum).
#[derive(Clone)]
struct Router {
    health: HealthServer<HealthService>,
    secrets: SecretsServer<SecretStore>,
    ssh: SshServer<SshForwarder>,
    auth: AuthServer<AuthService>,
    filesync: FileSyncServer<FileSyncService>,
    filesend: FileSendService,
}

type CallFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send>>;

impl Router {
    fn new(
        session: Session,
        tasks: Tasks,
        sent: Arc<AtomicU64>,
        export: &Arc<ExportStatus>,
    ) -> Self {
        Router {
            filesync: FileSyncServer::new(FileSyncService {
                dirs: session.dirs.clone(),
                sent,
                tasks: tasks.clone(),
            }),
            filesend: FileSendService::new(session.output.as_ref(), export, &tasks),
            health: HealthServer::new(HealthService),
            secrets: SecretsServer::new(SecretStore {
                secrets: session.secrets,
            }),
            ssh: SshServer::new(SshForwarder {
                agents: session.ssh,
                tasks,
            }),
            auth: AuthServer::new(match session.registry_auth {
                Some(config) => AuthService::new(config),
                None => AuthService::from_env(),
            }),
        }
    }

    fn route(&self, request: Request<Incoming>) -> CallFuture {
        let path = request.uri().path();
        let service = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .map(|(service, _)| service);
        match service {
            Some(health_server::SERVICE_NAME) => self.health.clone().call(request),
            Some(secrets_server::SERVICE_NAME) => self.secrets.clone().call(request),
            Some(ssh_server::SERVICE_NAME) => self.ssh.clone().call(request),
            Some(auth_server::SERVICE_NAME) => self.auth.clone().call(request),
            Some(file_sync_server::SERVICE_NAME) => self.filesync.clone().call(request),
            Some(file_send_server::SERVICE_NAME) => match &self.filesend {
                FileSendService::Tar(tar) => tar.clone().call(request),
                FileSendService::Local(local) => {
                    let local = local.clone();
                    Box::pin(async move { Ok(local.call(request).await) })
                }
                FileSendService::None => {
                    let status = tonic::Status::failed_precondition("this build has no output");
                    Box::pin(std::future::ready(Ok(status.into_http())))
                }
            },
            _ => {
                let status = tonic::Status::unimplemented(format!("{path} is not served"));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// `grpc.health.v1.Health`: the session as a whole is always serving.
struct HealthService;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        let service = &request.get_ref().service;
        // As grpc-go's health server: "" is the server, other names are unknown.
        if !service.is_empty() {
            return Err(tonic::Status::not_found(format!(
                "unknown service {service}"
            )));
        }
        Ok(tonic::Response::new(HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        }))
    }
}

/// `moby.buildkit.secrets.v1.Secrets`: values read when asked.
struct SecretStore {
    secrets: HashMap<String, SecretSource>,
}

#[tonic::async_trait]
impl Secrets for SecretStore {
    async fn get_secret(
        &self,
        request: tonic::Request<GetSecretRequest>,
    ) -> Result<tonic::Response<GetSecretResponse>, tonic::Status> {
        let id = &request.get_ref().id;
        let Some(source) = self.secrets.get(id) else {
            return Err(tonic::Status::not_found(format!("secret {id} not found")));
        };
        // The messages name the id and the source, never the value.
        let data = match source {
            SecretSource::File(path) => {
                tokio::fs::read(path).await.map(Bytes::from).map_err(|e| {
                    tonic::Status::unavailable(format!(
                        "secret {id}: cannot read {}: {e}",
                        path.display()
                    ))
                })?
            }
            SecretSource::Env(var) => match std::env::var_os(var) {
                Some(value) => Bytes::from(value.into_vec()),
                None => {
                    return Err(tonic::Status::not_found(format!(
                        "secret {id}: the environment variable {var} is not set"
                    )));
                }
            },
            SecretSource::Bytes(value) => value.clone(),
        };
        if data.len() as u64 > MAX_SECRET_SIZE {
            return Err(tonic::Status::invalid_argument(format!(
                "secret {id} is {} bytes; BuildKit takes at most {MAX_SECRET_SIZE}",
                data.len()
            )));
        }
        Ok(tonic::Response::new(GetSecretResponse { data }))
    }
}

/// The session's error for a key file `agent::Keyring::load` refused.
fn key_file_error(id: &str, error: agent::KeyFileError) -> SessionError {
    let id = id.to_string();
    match error {
        agent::KeyFileError::Read { path, source } => SessionError::SshKeyRead { id, path, source },
        agent::KeyFileError::NotAKey { path } => SessionError::SshKeyNotAKey { id, path },
        agent::KeyFileError::Encrypted { path } => SessionError::SshKeyEncrypted { id, path },
        agent::KeyFileError::Algorithm { path, algorithm } => SessionError::SshKeyAlgorithm {
            id,
            path,
            algorithm,
        },
    }
}

/// Where an SSH agent id's answers come from.
#[derive(Debug, Clone)]
enum AgentSource {
    /// An agent listening on this Unix socket (`ssh-agent`).
    Socket(PathBuf),
    /// The session's own agent serving these private keys (`--ssh ID=KEY_FILE`).
    Keys(Arc<agent::Keyring>),
}

/// `moby.sshforward.v1.SSH`: each `ForwardAgent` call is one new connection to the agent's
/// socket (or to the in-process agent, through a socket pair), its bytes copied both ways until
/// either side ends or the session closes.
struct SshForwarder {
    agents: HashMap<String, AgentSource>,
    tasks: Tasks,
}

impl SshForwarder {
    fn agent(&self, id: &str) -> Result<&AgentSource, tonic::Status> {
        let id = if id.is_empty() { DEFAULT_ID } else { id };
        self.agents
            .get(id)
            .ok_or_else(|| tonic::Status::not_found(format!("unset ssh forward key {id}")))
    }
}

#[tonic::async_trait]
impl Ssh for SshForwarder {
    async fn check_agent(
        &self,
        request: tonic::Request<CheckAgentRequest>,
    ) -> Result<tonic::Response<CheckAgentResponse>, tonic::Status> {
        self.agent(&request.get_ref().id)?;
        Ok(tonic::Response::new(CheckAgentResponse {}))
    }

    type ForwardAgentStream = AgentReader;

    async fn forward_agent(
        &self,
        request: tonic::Request<tonic::Streaming<BytesMessage>>,
    ) -> Result<tonic::Response<AgentReader>, tonic::Status> {
        let id = request
            .metadata()
            .get(KEY_SSH_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let socket = match self.agent(&id)? {
            AgentSource::Socket(path) => UnixStream::connect(path).await.map_err(|e| {
                tonic::Status::unavailable(format!(
                    "cannot connect to the SSH agent at {}: {e}",
                    path.display()
                ))
            })?,
            AgentSource::Keys(keyring) => {
                let (ours, agent_end) = UnixStream::pair().map_err(|e| {
                    tonic::Status::unavailable(format!("cannot start the SSH agent: {e}"))
                })?;
                self.tasks.spawn(agent::serve(keyring.clone(), agent_end));
                ours
            }
        };
        let (read, mut write) = socket.into_split();
        let mut incoming = request.into_inner();
        self.tasks.spawn(async move {
            while let Ok(Some(message)) = incoming.message().await {
                if write.write_all(&message.data).await.is_err() {
                    return;
                }
            }
            // The daemon's side is done sending; the agent may still answer.
            let _ = write.shutdown().await;
        });
        Ok(tonic::Response::new(AgentReader {
            read,
            buf: BytesMut::new(),
            done: false,
        }))
    }
}

/// The agent's answers as the `ForwardAgent` response stream; ends at the agent's EOF.
struct AgentReader {
    read: tokio::net::unix::OwnedReadHalf,
    buf: BytesMut,
    done: bool,
}

impl fmt::Debug for AgentReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentReader").finish_non_exhaustive()
    }
}

/// How much of the agent's output one message carries (BuildKit copies 32 KiB at a time).
const AGENT_CHUNK: usize = 32 * 1024;

impl futures_core::Stream for AgentReader {
    type Item = Result<BytesMessage, tonic::Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        this.buf.resize(AGENT_CHUNK, 0);
        let mut buf = ReadBuf::new(&mut this.buf);
        match Pin::new(&mut this.read).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                if n == 0 {
                    this.done = true;
                    return Poll::Ready(None);
                }
                let data = this.buf.split_to(n).freeze();
                Poll::Ready(Some(Ok(BytesMessage { data })))
            }
            Poll::Ready(Err(e)) => {
                this.done = true;
                Poll::Ready(Some(Err(tonic::Status::unavailable(format!(
                    "reading from the SSH agent failed: {e}"
                )))))
            }
        }
    }
}

#[cfg(test)]
mod tests;
