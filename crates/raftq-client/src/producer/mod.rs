//! Idempotent, pipelined producer.
//!
//! Every message gets a sequence number under a random producer id; batches
//! go out several at a time and are retried with the same id and sequence
//! after a failover, so each message is stored exactly once (the ordering
//! rules are in `pipeline.rs`).

mod pipeline;
mod task;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use raftq_proto::v1::PublishMessage;
use tokio::sync::{mpsc, oneshot};

use crate::message::IntoMessage;
use crate::{Client, Error};
use pipeline::{Pipeline, Settings};
use task::Command;

/// Batching and pipelining of a [`Producer`].
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// Publish requests in flight at once. 1 means strictly one at a time.
    pub max_in_flight_batches: usize,
    /// Most messages in one publish request.
    pub max_batch_messages: usize,
    /// Most payload + header bytes in one publish request (a larger single
    /// message still goes, alone).
    pub max_batch_bytes: usize,
    /// How long a message may wait for others to share its request. Zero sends
    /// at once whenever the window has room; batches then form by themselves
    /// while the window is full.
    pub linger: Duration,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        Self {
            max_in_flight_batches: 8,
            max_batch_messages: 512,
            max_batch_bytes: 1 << 20,
            linger: Duration::ZERO,
        }
    }
}

/// Publishes to one queue, exactly once per message, confirmed after commit.
///
/// [`send`](Producer::send) queues a message at once and returns a future that
/// resolves to its offset when the batch holding it is committed on a majority
/// of the queue's replicas. Keep many such futures alive to pipeline; each
/// one resolves within the client's retry deadline. Messages are stored in the
/// order `send` was called.
///
/// A failed confirmation means the message may or may not be stored
/// ([`Error::Timeout`]) or was refused ([`Error::ResourceExhausted`] for a
/// full queue, [`Error::InvalidArgument`], [`Error::NotFound`]); either way
/// the producer carries on with later messages.
///
/// Dropping the producer lets already-sent messages finish.
///
/// ```no_run
/// # async fn demo(client: raftq_client::Client) -> Result<(), raftq_client::Error> {
/// use futures::future::try_join_all;
///
/// let producer = client.producer("orders");
/// // Pipelined: all 1000 are queued at once and go out in a few batches.
/// let confirms: Vec<_> = (0..1000).map(|i| producer.send(format!("order {i}"))).collect();
/// let offsets = try_join_all(confirms).await?;
/// println!("stored at offsets {}..={}", offsets[0], offsets[999]);
///
/// // One at a time: the offset of each message before sending the next.
/// let offset = producer.send("last one").await?;
/// # let _ = offset;
/// # Ok(()) }
/// ```
pub struct Producer {
    queue: String,
    producer_id: String,
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("queue", &self.queue)
            .field("producer_id", &self.producer_id)
            .finish()
    }
}

fn random_producer_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Producer {
    /// Must be called inside a tokio runtime: it spawns the producer's task.
    pub(crate) fn new(client: Client, queue: &str, options: ProducerOptions) -> Self {
        let settings = Settings {
            max_in_flight: options.max_in_flight_batches.max(1),
            max_batch_messages: options.max_batch_messages.max(1),
            max_batch_bytes: options.max_batch_bytes.max(1),
            linger: options.linger,
            retry_deadline: client.options().retry_deadline,
            backoff_initial: client.options().backoff_initial,
            backoff_max: client.options().backoff_max,
        };
        let pipeline = Pipeline::new(queue.to_string(), settings, Box::new(random_producer_id));
        let producer_id = pipeline.producer_id().to_string();
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(task::run(client, pipeline, rx));
        Self {
            queue: queue.to_string(),
            producer_id,
            commands,
        }
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The producer id the first messages go out under (a fresh one is taken
    /// after a batch fails for good, so later messages are not held up by it).
    pub fn producer_id(&self) -> &str {
        &self.producer_id
    }

    /// Queues `message` now and returns its confirmation: the offset, once
    /// committed. The future need not be polled for the message to be sent.
    pub fn send(&self, message: impl IntoMessage) -> Confirm {
        let (tx, rx) = oneshot::channel();
        // If the task is gone the waiter is dropped and the confirm says so.
        let _ = self
            .commands
            .send(Command::Send(message.into_message(), tx));
        Confirm { rx }
    }

    /// Sends payloads and waits for all of them: offsets in order, or the
    /// first failure.
    pub async fn send_batch(&mut self, payloads: Vec<Bytes>) -> Result<Vec<u64>, Error> {
        let confirms: Vec<Confirm> = payloads.into_iter().map(|p| self.send(p)).collect();
        self.flush_nowait();
        futures::future::try_join_all(confirms).await
    }

    /// Like [`send_batch`](Producer::send_batch), with headers.
    pub async fn send_messages(
        &mut self,
        messages: Vec<PublishMessage>,
    ) -> Result<Vec<u64>, Error> {
        let confirms: Vec<Confirm> = messages.into_iter().map(|m| self.send(m)).collect();
        self.flush_nowait();
        futures::future::try_join_all(confirms).await
    }

    /// Sends what is queued without lingering, and waits until every message
    /// sent before this call is confirmed or failed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    fn flush_nowait(&self) {
        let (tx, _rx) = oneshot::channel();
        let _ = self.commands.send(Command::Flush(tx));
    }
}

/// The confirmation of one sent message: its offset once committed.
#[must_use = "a Confirm tells whether the message was stored"]
#[derive(Debug)]
pub struct Confirm {
    rx: oneshot::Receiver<Result<u64, Error>>,
}

impl Future for Confirm {
    type Output = Result<u64, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::Closed(
                "the producer stopped before confirming this message".into(),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}
