//! A [`Context`] as the body of `POST /build`: its tar chunks, written on a blocking thread and
//! handed to hyper through a bounded channel.

use std::pin::Pin;
use std::task::{self, Poll};

use bytes::Bytes;
use docker_context::{CHANNEL_CAPACITY, Context, ContextError, Disconnected};
use futures_core::Stream;
use tokio::sync::mpsc;

/// The tar stream of a [`Context`]: at most [`CHANNEL_CAPACITY`] chunks wait for the
/// consumer, so the writer pauses while the consumer is slow; dropping the stream stops the
/// writer. An `Err` is always the last item.
#[derive(Debug)]
pub(crate) struct ContextStream {
    receiver: mpsc::Receiver<Message>,
    done: bool,
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
    pub(crate) fn spawn(context: Context) -> Self {
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
            Poll::Ready(Some(Message::Data(chunk))) => Poll::Ready(Some(Ok(chunk))),
            Poll::Ready(Some(Message::Failed(error))) => {
                this.done = true;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(Some(Message::Finished)) => {
                this.done = true;
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
        let mut stream = ContextStream::spawn(Context::from_tar(tar.clone()));
        assert_send_static(&stream);
        let mut got = Vec::new();
        while let Some(chunk) = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await
        {
            got.push(chunk.unwrap());
        }
        assert_eq!(got, [tar]);
    }
}
