//! Live builds: `POST /build` on a daemon, the body decoded into [`BuildEvent`]s as it arrives.
//!
//! Needs the `daemon` feature and a Unix platform (build contexts come from [`docker_context`],
//! which is Unix-only).

use std::io::Write;
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
    /// The build's BuildKit session could not be set up or started (e.g. a secret's file is
    /// missing, or the daemon refused `POST /session`).
    #[cfg(feature = "session")]
    #[cfg_attr(docsrs, doc(cfg(feature = "session")))]
    #[error("cannot serve the build's BuildKit session")]
    Session(#[source] crate::session::SessionError),
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
    #[cfg(feature = "session")]
    let (session, session_refused) = start_session(daemon, options).await?;
    #[cfg(feature = "session")]
    let session_id = session.as_ref().map(|s| s.id());
    #[cfg(not(feature = "session"))]
    let session_id = match no_session_reason(options) {
        Some(reason) => return Err(BuildError::NoSession { reason }),
        None => None,
    };
    let query = options.query_with_session(context.dockerfile_path_in_context(), session_id);
    let context_error = Arc::new(Mutex::new(None));
    let body = RememberError {
        inner: Box::pin(ContextStream::spawn(context)),
        slot: Arc::clone(&context_error),
    };
    let response = daemon.post_build(&query, body).await?;
    let stream = BuildStream::new(response, options.decoder.clone(), context_error);
    #[cfg(feature = "session")]
    let stream = BuildStream {
        session,
        session_refused,
        ..stream
    };
    Ok(stream)
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
) -> Result<
    (
        Option<crate::session::ActiveSession>,
        Option<crate::session::SessionError>,
    ),
    BuildError,
> {
    if let Some(reason) = no_session_reason(options) {
        return Err(BuildError::NoSession { reason });
    }
    if !options.wants_session() {
        return Ok((None, None));
    }
    let session = crate::session::Session::new(&options.secrets, &options.ssh)
        .map_err(BuildError::Session)?;
    match session.start(daemon).await {
        Ok(active) => Ok((Some(active), None)),
        // Served only for registry credentials: the build goes on without.
        Err(error) if options.session == crate::SessionMode::Prefer && !options.needs_session() => {
            Ok((None, Some(error)))
        }
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

fn now() -> Time {
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
        }
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
                return Poll::Ready(Some(Ok(event)));
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
