//! Live builds: `POST /build` on a daemon, the body decoded into [`BuildEvent`]s as it arrives.
//!
//! Needs the `daemon` feature and a Unix platform (build contexts come from [`docker_context`],
//! which is Unix-only).

use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::SystemTime;

use buildkit_events::Time;
use bytes::Bytes;
use futures_core::{FusedStream, Stream};

use crate::connection::{BodyError, BuildRequestError, BuildResponse, Daemon};
use docker_context::{Context, ContextError};

use crate::decode::{BuildDecoder, BuildEvent, DecoderConfig};
use crate::options::BuildOptions;
use crate::upload::ContextStream;
pub use crate::upload::UploadProgress;

/// Why a build could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The daemon could not be reached or refused the request before any output.
    #[error(transparent)]
    Request(#[from] BuildRequestError),
    /// The build has secrets or SSH agents, which need a BuildKit session, and none is served:
    /// `reason` says why (the classic builder, [`SessionMode::Never`](crate::SessionMode), or
    /// docker-build built without its `session` feature).
    #[error("secrets and SSH agents need a BuildKit session, but {reason}")]
    NoSession {
        /// Why no session is served.
        reason: &'static str,
    },
    /// The build has an output ([`BuildOptions::outputs`]), which the daemon sends through a
    /// BuildKit session, and none is served: `reason` says why.
    #[error("build outputs need a BuildKit session, but {reason}")]
    OutputWithoutSession {
        /// Why no session is served.
        reason: &'static str,
    },
    /// More than one output: the Docker daemon takes one.
    #[error("the Docker daemon takes one build output, not {count}")]
    MultipleOutputs {
        /// How many were given.
        count: usize,
    },
    /// The build's BuildKit session could not be set up or started (e.g. a secret's file is
    /// missing, or the daemon refused `POST /session`).
    #[cfg(feature = "session")]
    #[cfg_attr(docsrs, doc(cfg(feature = "session")))]
    #[error("cannot serve the build's BuildKit session")]
    Session(#[source] crate::session::SessionError),
    /// [`ContextTransport::Session`](crate::ContextTransport) was asked for and the context
    /// cannot go through a session: `reason` says why.
    #[error("the build context cannot be sent through a BuildKit session: {reason}")]
    NoSessionContext {
        /// Why not.
        reason: &'static str,
    },
}

/// Why a running build's event stream ended early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildStreamError {
    /// The connection to the daemon broke before the build ended. Every event decoded before
    /// the break was delivered first.
    #[error("the connection to the Docker daemon was lost mid-build{}", running_list(.running))]
    ConnectionLost {
        /// Names of the vertices that had started and not completed.
        running: Vec<String>,
        /// What the connection said.
        #[source]
        source: BodyError,
    },
    /// Reading the build context failed while it was being sent; the daemon saw a cut context.
    #[error("sending the build context failed")]
    Context(#[source] ContextError),
    /// Writing the recording of the raw body failed.
    #[error("writing the build recording failed")]
    Record(#[source] std::io::Error),
}

fn running_list(running: &[String]) -> String {
    if running.is_empty() {
        String::new()
    } else {
        format!("; still running: {}", running.join(", "))
    }
}

/// Starts a build of `context` on `daemon`; its events arrive through the returned stream as
/// the daemon sends them, decoded with `options.decoder`. Dropping the stream closes the
/// connection and the daemon cancels the build.
///
/// When the options ask for a BuildKit session ([`BuildOptions::wants_session`]: secrets or SSH
/// agents given, or [`SessionMode::Always`](crate::SessionMode) or
/// [`Prefer`](crate::SessionMode::Prefer); feature `session`), it is opened first and served
/// until the build ends or the stream is dropped; it always answers the daemon's questions for
/// registry credentials from the docker CLI's configuration
/// ([`registry_auth`](crate::registry_auth)). A daemon that refuses it fails the build with
/// `BuildError::Session`, except with `Prefer` for a build that needs no session.
///
/// ```no_run
/// use docker_build::connection::Daemon;
/// use docker_build::{BuildEvent, BuildOptions, Context, build};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let daemon = Daemon::connect().await?;
/// let context = Context::from_dir("./app")?;
/// let mut events = build(&daemon, context, &BuildOptions::default()).await?;
/// while let Some(event) = events.next_event().await {
///     match event? {
///         BuildEvent::ImageBuilt { id } => println!("built {id}"),
///         BuildEvent::Failed(f) => eprintln!("failed: {}", f.message),
///         other => println!("{other:?}"),
///     }
/// }
/// # Ok(()) }
/// ```
pub async fn build(
    daemon: &Daemon,
    context: Context,
    options: &BuildOptions,
) -> Result<BuildStream, BuildError> {
    build_with_progress(daemon, context, options, UploadProgress::new()).await
}

/// [`build`], counting the context's bytes in `progress` as they are handed to the
/// connection, so that the caller can show the upload ([`UploadProgress::update`] gives
/// [`ContextUpload`](crate::ContextUpload)s for [`BuildEvent::ContextUpload`]) while this
/// future runs (the classic builder answers only once the whole context is in) and after.
pub async fn build_with_progress(
    daemon: &Daemon,
    context: Context,
    options: &BuildOptions,
    progress: UploadProgress,
) -> Result<BuildStream, BuildError> {
    progress.set_builder(options.builder);
    let files = session_context(&context, options)?;
    #[cfg(feature = "session")]
    let (session, session_refused) =
        start_session(daemon, options, files.then_some(&context)).await?;
    #[cfg(feature = "session")]
    let session_id = session.as_ref().map(|s| s.id());
    #[cfg(not(feature = "session"))]
    let session_id: Option<&str> = match no_session_reason(options) {
        Some(reason) => return Err(no_session(options, reason)),
        None => None,
    };
    #[cfg(feature = "session")]
    let sent = session
        .as_ref()
        .filter(|_| files)
        .map(|s| s.context_bytes_counter());
    let query = match session_id {
        // The session serves the Dockerfile's own folder: the Dockerfile is named by its file
        // name there.
        Some(id) if files => options.query_with_session_context(
            context
                .dockerfile_file()
                .and_then(Path::file_name)
                .and_then(|n| n.to_str())
                .unwrap_or(context.dockerfile_path_in_context()),
            id,
        ),
        _ => options.query_with_session(context.dockerfile_path_in_context(), session_id),
    };
    // A context the session serves goes with no body (and no upload to show: BuildKit reports
    // the transfer itself, on its `[internal] load build context` step).
    let (context, progress) = match session_id {
        Some(_) if files => (Context::from_tar(Bytes::new()), UploadProgress::new()),
        _ => (context, progress),
    };
    let context_error = Arc::new(Mutex::new(None));
    let body = RememberError {
        inner: Box::pin(ContextStream::spawn(context, progress)),
        slot: Arc::clone(&context_error),
    };
    let response = daemon.post_build(&query, body).await?;
    let stream = BuildStream::new(response, options.decoder.clone(), context_error);
    #[cfg(feature = "session")]
    let stream = BuildStream {
        export: session
            .as_ref()
            .filter(|_| !options.outputs.is_empty())
            .map(|s| s.export_status()),
        session,
        session_refused,
        context_sent: sent,
        ..stream
    };
    Ok(stream)
}

/// Whether the context should go through the session (a refused session may still send it
/// as the tar body, see [`start_session`]).
fn session_context(context: &Context, options: &BuildOptions) -> Result<bool, BuildError> {
    use crate::ContextTransport;
    let impossible = if options.builder == crate::Builder::Classic {
        Some("the classic builder takes only the tar body")
    } else if context.root().is_none() {
        Some("it is a tar archive, not a directory")
    } else if options.session == crate::SessionMode::Never {
        Some("the options say SessionMode::Never")
    } else if !cfg!(feature = "session") {
        Some("docker-build was built without its `session` feature")
    } else {
        None
    };
    match (options.context_transport, impossible) {
        (ContextTransport::Tar, _) => Ok(false),
        (ContextTransport::Auto, Some(_)) => Ok(false),
        (ContextTransport::Session, Some(reason)) => Err(BuildError::NoSessionContext { reason }),
        (_, None) => Ok(true),
    }
}

/// The error for a build that needs a session and gets none.
fn no_session(options: &BuildOptions, reason: &'static str) -> BuildError {
    if options.secrets.is_empty() && options.ssh.is_empty() {
        BuildError::OutputWithoutSession { reason }
    } else {
        BuildError::NoSession { reason }
    }
}

/// Why a build that needs a session gets none, if it does not.
fn no_session_reason(options: &BuildOptions) -> Option<&'static str> {
    if !options.needs_session() {
        return None;
    }
    if options.builder == crate::Builder::Classic {
        return Some("the classic builder serves none");
    }
    if options.session == crate::SessionMode::Never {
        return Some("the options say SessionMode::Never");
    }
    if !cfg!(feature = "session") {
        return Some("docker-build was built without its `session` feature");
    }
    None
}

/// The session the options ask for, started on `daemon`; or none, with the daemon's refusal
/// when [`SessionMode::Prefer`](crate::SessionMode::Prefer) lets the build go on without.
#[cfg(feature = "session")]
async fn start_session(
    daemon: &Daemon,
    options: &BuildOptions,
    context: Option<&Context>,
) -> Result<
    (
        Option<crate::session::ActiveSession>,
        Option<crate::session::SessionError>,
    ),
    BuildError,
> {
    if let Some(reason) = no_session_reason(options) {
        return Err(no_session(options, reason));
    }
    if !options.wants_session() && context.is_none() {
        return Ok((None, None));
    }
    let mut session = crate::session::Session::new(&options.secrets, &options.ssh)
        .map_err(BuildError::Session)?;
    if let Some(context) = context {
        session = session.with_context(context);
    }
    // Without one, the context goes as the tar body, and registry credentials are not offered.
    let may_go_without = !options.needs_session()
        && options.session != crate::SessionMode::Always
        && options.context_transport != crate::ContextTransport::Session
        && (options.session == crate::SessionMode::Prefer || context.is_some());
    match options.outputs.as_slice() {
        [] => {}
        [output] => session = session.with_output(output.clone()),
        outputs => {
            return Err(BuildError::MultipleOutputs {
                count: outputs.len(),
            });
        }
    }
    match session.start(daemon).await {
        Ok(active) => Ok((Some(active), None)),
        Err(error) if may_go_without => Ok((None, Some(error))),
        Err(error) => Err(BuildError::Session(error)),
    }
}

/// Passes the context stream through, keeping its first error: hyper only says that the
/// request body failed, and the caller deserves to know which file.
struct RememberError<S> {
    inner: Pin<Box<S>>,
    slot: Arc<Mutex<Option<ContextError>>>,
}

impl<S: Stream<Item = Result<Bytes, ContextError>>> Stream for RememberError<S> {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Err(e))) => {
                let message = e.to_string();
                *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Poll::Ready(Some(Err(std::io::Error::other(message))))
            }
            Poll::Ready(Some(Ok(chunk))) => Poll::Ready(Some(Ok(chunk))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The events of a running build. Implements [`Stream`] and [`FusedStream`];
/// [`BuildStream::next_event`] does the same without futures-util.
///
/// Ends after [`BuildEvent::Finished`], or after one `Err` when the build could not finish;
/// once it has ended, it keeps returning `None`.
pub struct BuildStream {
    response: BuildResponse,
    decoder: BuildDecoder,
    record: Option<Box<dyn Write + Send>>,
    context_error: Arc<Mutex<Option<ContextError>>>,
    state: State,
    /// `poll_next` returned `None`.
    terminated: bool,
    /// The build's BuildKit session, served until the body ends (or this stream is dropped).
    #[cfg(feature = "session")]
    session: Option<crate::session::ActiveSession>,
    /// Why the daemon gave no session to a build that preferred one.
    #[cfg(feature = "session")]
    session_refused: Option<crate::session::SessionError>,
    /// The bytes of file contents the session sent, when it serves the context.
    #[cfg(feature = "session")]
    context_sent: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// For a build with an output: whether the session's receiver wrote it in full (read when
    /// the summary comes out, after the session is closed).
    #[cfg(feature = "session")]
    export: Option<std::sync::Arc<crate::session::ExportStatus>>,
}

enum State {
    Streaming,
    Failing(BuildStreamError),
    Done,
}

impl std::fmt::Debug for BuildStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildStream")
            .field("decoder", &self.decoder)
            .field("recording", &self.record.is_some())
            .field("session", &self.session_id())
            .finish_non_exhaustive()
    }
}

/// The wall-clock time, as the decoder's arrival times and the upload's times take it.
pub(crate) fn now() -> Time {
    let nanos = match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    Time(nanos)
}

impl BuildStream {
    fn new(
        response: BuildResponse,
        config: DecoderConfig,
        context_error: Arc<Mutex<Option<ContextError>>>,
    ) -> Self {
        Self {
            response,
            decoder: BuildDecoder::with_config(config),
            record: None,
            context_error,
            state: State::Streaming,
            terminated: false,
            #[cfg(feature = "session")]
            session: None,
            #[cfg(feature = "session")]
            session_refused: None,
            #[cfg(feature = "session")]
            context_sent: None,
            #[cfg(feature = "session")]
            export: None,
        }
    }

    /// Whether the build's context goes through its BuildKit session (FileSync), not as the
    /// tar body.
    pub fn context_through_session(&self) -> bool {
        #[cfg(feature = "session")]
        return self.context_sent.is_some();
        #[cfg(not(feature = "session"))]
        false
    }

    /// The bytes of file contents sent so far through the session for the build context (the
    /// payloads of FileSync's DATA packets: only the files BuildKit asked for, so a rebuild
    /// sends about what changed); also after the build ended. `None` when the context goes as
    /// the tar body.
    pub fn context_bytes_sent(&self) -> Option<u64> {
        #[cfg(feature = "session")]
        return self
            .context_sent
            .as_ref()
            .map(|sent| sent.load(std::sync::atomic::Ordering::Relaxed));
        #[cfg(not(feature = "session"))]
        None
    }

    /// The event as the caller gets it: the summary of a build with an output says whether
    /// the output was written ([`BuildSummary::exported`](crate::BuildSummary)).
    #[cfg_attr(not(feature = "session"), allow(unused_mut))]
    fn deliver(&self, mut event: BuildEvent) -> BuildEvent {
        #[cfg(feature = "session")]
        if let (BuildEvent::Finished(summary), Some(export)) = (&mut event, &self.export) {
            summary.exported = export.finished();
        }
        event
    }

    /// The id of the BuildKit session served for this build, while it is served (until the
    /// build's body ends); `None` without a session.
    pub fn session_id(&self) -> Option<&str> {
        #[cfg(feature = "session")]
        return self.session.as_ref().map(|s| s.id());
        #[cfg(not(feature = "session"))]
        None
    }

    /// Why the daemon refused the session a build with
    /// [`SessionMode::Prefer`](crate::SessionMode::Prefer) asked for, which then runs without
    /// one (no registry credentials offered; the context goes as the tar body): say so to
    /// the user. `None` when the build has its session or asked for none.
    #[cfg(feature = "session")]
    pub fn session_refused(&self) -> Option<&crate::session::SessionError> {
        self.session_refused.as_ref()
    }

    /// Ends the build's session, if any: the build is over.
    fn close_session(&mut self) {
        #[cfg(feature = "session")]
        {
            self.session = None;
        }
    }

    /// Also writes every raw body chunk, unchanged, to `writer` (for `bktrace replay`, golden
    /// files and bug reports), flushing it after each chunk, so that a process interrupted
    /// mid-build leaves what it received. A write error ends the stream with
    /// [`BuildStreamError::Record`].
    pub fn record_to(mut self, writer: impl Write + Send + 'static) -> Self {
        self.record = Some(Box::new(writer));
        self
    }

    /// Ends the build here, as on Ctrl-C: closes its session and the connection (the daemon
    /// cancels the build when the client goes away) and finishes decoding what was received,
    /// so every step still running comes out [`Outcome::Canceled`](crate::Outcome), as BuildKit
    /// reports the steps of a canceled build
    /// ([`BuildDecoder::cancel`](crate::decode::BuildDecoder::cancel)), and
    /// [`BuildEvent::Finished`] (not a success) is last. Returns the events not yet taken,
    /// in order; nothing more comes from the daemon (it tells a client that left nothing).
    pub fn cancel(mut self) -> Vec<BuildEvent> {
        self.close_session();
        let mut events = Vec::new();
        if !matches!(self.state, State::Done) {
            if let Some(w) = &mut self.record {
                // Best effort: the chunks were flushed as they came.
                let _ = w.flush();
            }
            self.decoder.cancel(now());
            self.state = State::Done;
        }
        events.extend(std::iter::from_fn(|| self.decoder.poll_event()));
        events
    }

    /// The next event; `None` once the stream has ended.
    pub async fn next_event(&mut self) -> Option<Result<BuildEvent, BuildStreamError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The decoder, e.g. to look up vertex names by digest.
    pub fn decoder(&self) -> &BuildDecoder {
        &self.decoder
    }

    fn fail(&mut self, error: BuildStreamError) {
        self.state = State::Failing(error);
    }
}

impl Stream for BuildStream {
    type Item = Result<BuildEvent, BuildStreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.decoder.poll_event() {
                return Poll::Ready(Some(Ok(this.deliver(event))));
            }
            match std::mem::replace(&mut this.state, State::Done) {
                State::Done => {
                    this.terminated = true;
                    return Poll::Ready(None);
                }
                State::Failing(error) => return Poll::Ready(Some(Err(error))),
                State::Streaming => this.state = State::Streaming,
            }
            match Pin::new(&mut this.response).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Some(w) = &mut this.record {
                        // Written through: a build interrupted (Ctrl-C, SIGTERM, a crash)
                        // leaves every chunk it received in the recording.
                        if let Err(e) = w.write_all(&chunk).and_then(|()| w.flush()) {
                            this.fail(BuildStreamError::Record(e));
                            continue;
                        }
                    }
                    this.decoder.push(chunk, now());
                }
                Poll::Ready(Some(Err(source))) => {
                    let context = this
                        .context_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take();
                    let error = match context {
                        Some(e) => BuildStreamError::Context(e),
                        None => BuildStreamError::ConnectionLost {
                            running: this
                                .decoder
                                .running()
                                .into_iter()
                                .map(|(_, name)| name)
                                .collect(),
                            source,
                        },
                    };
                    this.close_session();
                    this.fail(error);
                }
                Poll::Ready(None) => {
                    this.close_session();
                    if let Some(w) = &mut this.record {
                        if let Err(e) = w.flush() {
                            this.fail(BuildStreamError::Record(e));
                            continue;
                        }
                    }
                    this.decoder.finish(now());
                    this.state = State::Done;
                }
            }
        }
    }
}

impl FusedStream for BuildStream {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}
