//! A consumer that survives failovers: settle what you receive by offset; when
//! the session ends it resubscribes through any node by itself.

mod session;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use raftq_proto::v1::{Delivery, SettleOutcome};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{Client, Error};
use session::{Channels, Event, SettleCommand};

/// The outcome of a settle (ack, nack, reject).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settlement {
    /// Offsets whose settlement is committed.
    pub settled: Vec<u64>,
    /// Offsets this consumer no longer held (its session ended and the cluster
    /// took them back): the settle had no effect and they will be redelivered.
    pub unknown: Vec<u64>,
}

impl Settlement {
    /// Every offset was settled.
    pub fn is_settled(&self) -> bool {
        self.unknown.is_empty()
    }
}

/// One offset or several, for settle calls: `consumer.ack(7)`,
/// `consumer.ack(vec![7, 8])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offsets(pub Vec<u64>);

impl From<u64> for Offsets {
    fn from(o: u64) -> Self {
        Offsets(vec![o])
    }
}

impl From<Vec<u64>> for Offsets {
    fn from(v: Vec<u64>) -> Self {
        Offsets(v)
    }
}

impl From<&[u64]> for Offsets {
    fn from(v: &[u64]) -> Self {
        Offsets(v.to_vec())
    }
}

impl<const N: usize> From<[u64; N]> for Offsets {
    fn from(v: [u64; N]) -> Self {
        Offsets(v.to_vec())
    }
}

/// Receives deliveries from one queue. Settle each after processing it, with
/// [`ack`](Consumer::ack), [`nack`](Consumer::nack) or
/// [`reject`](Consumer::reject); unsettled messages are redelivered when the
/// session ends. Also a [`Stream`] of deliveries.
///
/// After a disconnect or a leader change the consumer resubscribes by itself,
/// and the messages it held come again with `redelivered = true` (to it or to
/// another consumer). If the cluster stays unreachable for the whole retry
/// deadline, `next` yields that error once and keeps trying; an unknown or
/// deleted queue ends the consumer (`next` yields the error, then `None`).
///
/// ```no_run
/// # async fn demo(client: raftq_client::Client) -> Result<(), raftq_client::Error> {
/// let mut consumer = client.consumer("orders", 100).await?;
/// while let Some(delivery) = consumer.next().await {
///     let delivery = delivery?;
///     match std::str::from_utf8(&delivery.payload) {
///         Ok(text) => {
///             println!("{text}");
///             let outcome = consumer.ack(delivery.offset).await?;
///             if !outcome.is_settled() {
///                 eprintln!("offset {} will be redelivered", delivery.offset);
///             }
///         }
///         // Could not process it: give it back for another try.
///         Err(_) => {
///             consumer.nack(delivery.offset, true).await?;
///         }
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Consumer {
    queue: String,
    events: mpsc::UnboundedReceiver<Event>,
    session: Arc<AtomicU64>,
    connected: watch::Receiver<bool>,
    settler: Settler,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.queue)
            .finish()
    }
}

impl Consumer {
    /// Subscribes (retrying until the client's deadline), so a bad queue name
    /// fails here.
    pub(crate) async fn subscribe(
        client: Client,
        queue: &str,
        prefetch: u32,
    ) -> Result<Consumer, Error> {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (settles_tx, settles) = mpsc::unbounded_channel();
        let session = Arc::new(AtomicU64::new(0));
        let (first_tx, first_rx) = oneshot::channel();
        let (connected_tx, connected) = watch::channel(false);
        let channels = Channels {
            events: events_tx,
            settles,
            session: session.clone(),
            connected: connected_tx,
        };
        tokio::spawn(session::run(
            client,
            queue.to_string(),
            prefetch,
            channels,
            first_tx,
        ));
        match first_rx.await {
            Ok(Ok(())) => Ok(Consumer {
                queue: queue.to_string(),
                events,
                session,
                connected,
                settler: Settler { tx: settles_tx },
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Closed("consumer task stopped".into())),
        }
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The next delivery; `None` once the consumer has ended for good.
    pub async fn next(&mut self) -> Option<Result<Delivery, Error>> {
        std::future::poll_fn(|cx| poll_events(&mut self.events, &self.session, cx)).await
    }

    /// The next delivery, or `Ok(None)` once the consumer has been subscribed
    /// for `idle` without receiving anything. Time spent resubscribing after a
    /// failover does not count as idle (it is bounded by the retry deadline,
    /// after which the error is returned).
    pub async fn next_timeout(&mut self, idle: Duration) -> Result<Option<Delivery>, Error> {
        let mut deadline = tokio::time::Instant::now() + idle;
        let mut watching = true;
        loop {
            let connected = *self.connected.borrow_and_update();
            let next = std::future::poll_fn(|cx| poll_events(&mut self.events, &self.session, cx));
            tokio::select! {
                biased;
                item = next => return match item {
                    Some(result) => result.map(Some),
                    None => Err(Error::Closed(format!(
                        "consumer of queue '{}' has ended",
                        self.queue
                    ))),
                },
                changed = self.connected.changed(), if watching => {
                    watching = changed.is_ok();
                    if *self.connected.borrow() {
                        // Subscribed again: the idle clock starts over.
                        deadline = tokio::time::Instant::now() + idle;
                    }
                }
                _ = tokio::time::sleep_until(deadline), if connected || !watching => return Ok(None),
            }
        }
    }

    /// Acknowledges: done with these messages, remove them from the queue.
    pub fn ack(&self, offsets: impl Into<Offsets>) -> SettleFuture {
        self.settler.ack(offsets)
    }

    /// Negative acknowledgement: with `requeue` the messages are delivered
    /// again later (`delivery_count` + 1); without, they are dead-lettered (or
    /// dropped when the queue has no dead-letter queue).
    pub fn nack(&self, offsets: impl Into<Offsets>, requeue: bool) -> SettleFuture {
        self.settler.nack(offsets, requeue)
    }

    /// Rejects: dead-letter (or drop) without redelivery.
    pub fn reject(&self, offsets: impl Into<Offsets>) -> SettleFuture {
        self.settler.reject(offsets)
    }

    pub fn settle(&self, offsets: impl Into<Offsets>, outcome: SettleOutcome) -> SettleFuture {
        self.settler.settle(offsets, outcome)
    }

    /// A handle to settle from other tasks (e.g. workers processing
    /// deliveries concurrently). Settles fail once the consumer is dropped.
    pub fn settler(&self) -> Settler {
        self.settler.clone()
    }
}

impl Stream for Consumer {
    type Item = Result<Delivery, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        poll_events(&mut this.events, &this.session, cx)
    }
}

/// The next delivery of a live session, skipping those of ended sessions:
/// the cluster took them back and will deliver them again, so processing them
/// now would only duplicate work.
fn poll_events(
    events: &mut mpsc::UnboundedReceiver<Event>,
    session: &AtomicU64,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Delivery, Error>>> {
    loop {
        match events.poll_recv(cx) {
            Poll::Ready(Some(Event::Delivery {
                session: s,
                delivery,
            })) => {
                if s < session.load(Ordering::SeqCst) {
                    continue;
                }
                return Poll::Ready(Some(Ok(delivery)));
            }
            Poll::Ready(Some(Event::Error(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// Settles deliveries of one [`Consumer`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Settler {
    tx: mpsc::UnboundedSender<SettleCommand>,
}

impl Settler {
    pub fn ack(&self, offsets: impl Into<Offsets>) -> SettleFuture {
        self.settle(offsets, SettleOutcome::Ack)
    }

    pub fn nack(&self, offsets: impl Into<Offsets>, requeue: bool) -> SettleFuture {
        let outcome = if requeue {
            SettleOutcome::Requeue
        } else {
            SettleOutcome::Reject
        };
        self.settle(offsets, outcome)
    }

    pub fn reject(&self, offsets: impl Into<Offsets>) -> SettleFuture {
        self.settle(offsets, SettleOutcome::Reject)
    }

    /// Sends the settle at once; the future resolves when the cluster has
    /// committed it (or says the offsets were no longer held).
    pub fn settle(&self, offsets: impl Into<Offsets>, outcome: SettleOutcome) -> SettleFuture {
        let (reply, rx) = oneshot::channel();
        let command = SettleCommand {
            offsets: offsets.into().0,
            outcome,
            reply,
        };
        let _ = self.tx.send(command);
        SettleFuture { rx }
    }
}

/// Resolves to the [`Settlement`] of one settle call. An error means the
/// settle may or may not have taken effect; if it did not, the messages are
/// redelivered.
#[must_use = "a SettleFuture tells whether the settle took effect"]
#[derive(Debug)]
pub struct SettleFuture {
    rx: oneshot::Receiver<Result<Settlement, Error>>,
}

impl Future for SettleFuture {
    type Output = Result<Settlement, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::Closed(
                "the consumer has ended: settle not sent (unsettled messages are redelivered)"
                    .into(),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_from_one_or_many() {
        assert_eq!(Offsets::from(7), Offsets(vec![7]));
        assert_eq!(Offsets::from(vec![1, 2]), Offsets(vec![1, 2]));
        assert_eq!(Offsets::from([3, 4]), Offsets(vec![3, 4]));
        assert_eq!(Offsets::from(&[5u64][..]), Offsets(vec![5]));
    }

    #[test]
    fn a_settlement_with_unknown_offsets_is_not_settled() {
        let s = Settlement {
            settled: vec![1],
            unknown: vec![2],
        };
        assert!(!s.is_settled());
        assert!(Settlement::default().is_settled());
    }

    #[tokio::test]
    async fn settles_after_the_consumer_ended_say_so() {
        let (tx, rx) = mpsc::unbounded_channel();
        drop(rx);
        let settler = Settler { tx };
        assert!(matches!(settler.ack(1).await, Err(Error::Closed(_))));
    }
}
