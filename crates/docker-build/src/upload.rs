//! A [`Context`] as the body of `POST /build`: its tar chunks, written on a blocking thread and
//! handed to hyper through a bounded channel.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{self, Poll};

use buildkit_events::Time;
use bytes::Bytes;
use docker_context::{CHANNEL_CAPACITY, Context, ContextError, Disconnected};
use futures_core::Stream;
use tokio::sync::mpsc;

use crate::decode::ContextUpload;
use crate::options::Builder;

/// A handle on the upload of a build's context: how many bytes of the tar body have been
/// handed to the HTTP connection, since when, and whether all of them have. Clones share
/// the count; give one to [`build_with_progress`](crate::stream::build_with_progress) and
/// read it from another task while the build starts (the classic builder answers only once
/// the whole context is in, so `build` returns only then) and runs.
#[derive(Debug, Clone, Default)]
pub struct UploadProgress {
    state: Arc<Mutex<UploadState>>,
}

#[derive(Debug, Default)]
struct UploadState {
    sent: u64,
    started: Option<Time>,
    at: Option<Time>,
    done: bool,
    /// What [`UploadProgress::update`] last returned: `(sent, done)`.
    reported: Option<(u64, bool)>,
    builder: Builder,
}

impl UploadProgress {
    /// A handle on an upload that has not started.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes handed to the connection so far.
    pub fn sent(&self) -> u64 {
        self.lock().sent
    }

    /// Whether the whole context has been handed to the connection.
    pub fn is_done(&self) -> bool {
        self.lock().done
    }

    /// The upload's state, `None` before its first bytes.
    pub fn snapshot(&self) -> Option<ContextUpload> {
        Self::of(&self.lock())
    }

    /// The upload's state if it changed since the last `update` (more bytes, or the end):
    /// what a caller rendering the transfer shows on each tick.
    pub fn update(&self) -> Option<ContextUpload> {
        let mut state = self.lock();
        let now = (state.sent, state.done);
        if state.started.is_none() || state.reported == Some(now) {
            return None;
        }
        state.reported = Some(now);
        Self::of(&state)
    }

    fn of(state: &UploadState) -> Option<ContextUpload> {
        Some(ContextUpload {
            sent: state.sent,
            started: state.started?,
            at: state.at?,
            done: state.done,
            builder: state.builder,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, UploadState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The builder the context goes to (for [`ContextUpload::builder`]).
    pub(crate) fn set_builder(&self, builder: Builder) {
        self.lock().builder = builder;
    }

    /// `n` more bytes were handed over at `at`.
    fn add(&self, n: usize, at: Time) {
        let mut state = self.lock();
        state.started.get_or_insert(at);
        state.at = Some(at);
        state.sent += n as u64;
    }

    /// The body ended at `at`.
    fn finish(&self, at: Time) {
        let mut state = self.lock();
        state.started.get_or_insert(at);
        state.at = Some(at);
        state.done = true;
    }
}

/// The tar stream of a [`Context`]: at most [`CHANNEL_CAPACITY`] chunks wait for the
/// consumer, so the writer pauses while the consumer is slow; dropping the stream stops the
/// writer. An `Err` is always the last item.
#[derive(Debug)]
pub(crate) struct ContextStream {
    receiver: mpsc::Receiver<Message>,
    done: bool,
    /// Counts the bytes as they are handed to hyper.
    progress: UploadProgress,
}

/// What the writer sends.
#[derive(Debug)]
enum Message {
    Data(Bytes),
    Failed(ContextError),
    Finished,
}

impl ContextStream {
    /// Starts writing `context` on a blocking thread of the current Tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (every caller is an `async fn` of this crate).
    pub(crate) fn spawn(context: Context, progress: UploadProgress) -> Self {
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::task::spawn_blocking(move || {
            let result = context.write_chunks(|chunk| {
                sender
                    .blocking_send(Message::Data(chunk))
                    .map_err(|_| Disconnected)
            });
            // If the consumer is gone, there is nobody to tell.
            let _ = sender.blocking_send(match result {
                Ok(()) => Message::Finished,
                Err(error) => Message::Failed(error),
            });
        });
        Self {
            receiver,
            done: false,
            progress,
        }
    }
}

impl Stream for ContextStream {
    type Item = Result<Bytes, ContextError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.receiver.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Message::Data(chunk))) => {
                this.progress.add(chunk.len(), crate::stream::now());
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Message::Failed(error))) => {
                this.done = true;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(Some(Message::Finished)) => {
                this.done = true;
                this.progress.finish(crate::stream::now());
                Poll::Ready(None)
            }
            // The writer stopped without a word: it panicked, or the runtime shut down.
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(Some(Err(ContextError::Interrupted)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_arrive_in_order_and_the_stream_is_send() {
        fn assert_send_static<T: Send + 'static>(_: &T) {}
        let tar = Bytes::from(vec![5u8; 1024]);
        let progress = UploadProgress::new();
        let mut stream = ContextStream::spawn(Context::from_tar(tar.clone()), progress.clone());
        assert_send_static(&stream);
        assert_eq!((progress.snapshot(), progress.update()), (None, None));
        let mut got = Vec::new();
        while let Some(chunk) = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await
        {
            got.push(chunk.unwrap());
            assert_eq!((progress.sent(), progress.is_done()), (1024, false));
        }
        assert_eq!(got, [tar]);
        let done = progress.update().unwrap();
        assert_eq!((done.sent, done.done), (1024, true));
        assert!(done.started <= done.at);
        // Nothing changed since.
        assert_eq!(progress.update(), None);
        assert_eq!(progress.snapshot(), Some(done));
    }

    #[test]
    fn updates_come_when_the_count_or_the_end_changes() {
        let progress = UploadProgress::new();
        progress.add(100, Time(10));
        let first = progress.update().unwrap();
        assert_eq!(
            (first.sent, first.started, first.at),
            (100, Time(10), Time(10))
        );
        assert_eq!(progress.update(), None);
        progress.add(50, Time(20));
        progress.add(50, Time(30));
        let second = progress.update().unwrap();
        assert_eq!(
            (second.sent, second.started, second.at),
            (200, Time(10), Time(30))
        );
        progress.finish(Time(40));
        let last = progress.update().unwrap();
        assert_eq!((last.sent, last.at, last.done), (200, Time(40), true));
        assert_eq!(progress.update(), None);
    }
}
