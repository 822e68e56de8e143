//! A consumer that survives failovers: when its session ends (leader change,
//! node death) it resubscribes through any node, and the messages it had not
//! settled are redelivered by the cluster with `redelivered = true`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use raftq_proto::v1::{
    consume_request, consume_response, ConsumeRequest, ConsumeResponse, Delivery, Settle,
    SettleConfirm, SettleOutcome, Subscribe,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::{Backoff, Client, Error};

struct Session {
    tx: mpsc::Sender<ConsumeRequest>,
    rx: Streaming<ConsumeResponse>,
    buffered: VecDeque<Delivery>,
}

/// Receives deliveries from one queue; settle each with [`Consumer::ack`],
/// [`Consumer::nack`] or [`Consumer::reject`] after processing it.
///
/// ```no_run
/// # async fn demo(client: raftq_client::Client) -> Result<(), raftq_client::Error> {
/// let mut consumer = client.consumer("orders", 100).await?;
/// while let Some(delivery) = consumer.next_timeout(std::time::Duration::from_secs(5)).await? {
///     match std::str::from_utf8(&delivery.payload) {
///         Ok(text) => {
///             println!("{text}");
///             consumer.ack(vec![delivery.offset]).await?;
///         }
///         // Could not process it: give it back for another try.
///         Err(_) => { consumer.nack(vec![delivery.offset], true).await?; }
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Consumer {
    client: Client,
    queue: String,
    prefetch: u32,
    session: Option<Session>,
    next_tag: u64,
}

impl Consumer {
    pub(crate) async fn subscribe(
        client: Client,
        queue: &str,
        prefetch: u32,
    ) -> Result<Consumer, Error> {
        let mut consumer = Consumer {
            client,
            queue: queue.to_string(),
            prefetch,
            session: None,
            next_tag: 1,
        };
        consumer.ensure_session().await?;
        Ok(consumer)
    }

    async fn open(&self, addr: String) -> Result<Session, Error> {
        let (tx, rx) = mpsc::channel(1024);
        let subscribe = ConsumeRequest {
            kind: Some(consume_request::Kind::Subscribe(Subscribe {
                queue: self.queue.clone(),
                prefetch: self.prefetch,
            })),
        };
        tx.send(subscribe)
            .await
            .map_err(|_| Error::Unavailable("consume channel closed".into()))?;
        let mut rx = self
            .client
            .queue_at(&addr)?
            .consume(ReceiverStream::new(rx))
            .await?
            .into_inner();
        match rx.message().await? {
            Some(ConsumeResponse {
                kind: Some(consume_response::Kind::Subscribed(_)),
            }) => Ok(Session {
                tx,
                rx,
                buffered: VecDeque::new(),
            }),
            _ => Err(Error::Unavailable(
                "consume stream ended before it was subscribed".into(),
            )),
        }
    }

    async fn ensure_session(&mut self) -> Result<(), Error> {
        if self.session.is_none() {
            let session = self
                .client
                .retrying(Some(&self.queue.clone()), |addr| self.open(addr))
                .await?;
            self.session = Some(session);
        }
        Ok(())
    }

    /// The next delivery, waiting as long as it takes (resubscribing on failures
    /// within the client's retry deadline each time).
    pub async fn next(&mut self) -> Result<Delivery, Error> {
        loop {
            if let Some(d) = self.next_timeout(Duration::from_secs(3600)).await? {
                return Ok(d);
            }
        }
    }

    /// The next delivery, or `None` if nothing arrives within `idle`.
    pub async fn next_timeout(&mut self, idle: Duration) -> Result<Option<Delivery>, Error> {
        let deadline = Instant::now() + idle;
        let mut backoff = Backoff::new();
        loop {
            self.ensure_session().await?;
            let Some(session) = self.session.as_mut() else {
                continue;
            };
            if let Some(d) = session.buffered.pop_front() {
                return Ok(Some(d));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, session.rx.message()).await {
                Err(_) => return Ok(None),
                Ok(Ok(Some(ConsumeResponse {
                    kind: Some(consume_response::Kind::Delivery(d)),
                }))) => return Ok(Some(d)),
                Ok(Ok(Some(_))) => continue,
                // Stream ended or failed: the cluster returns what we held.
                Ok(Ok(None)) | Ok(Err(_)) => {
                    self.session = None;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Settles offsets and waits for the commit. An error means the settlement
    /// may not have happened: those messages will be delivered again.
    pub async fn settle(
        &mut self,
        offsets: Vec<u64>,
        outcome: SettleOutcome,
    ) -> Result<SettleConfirm, Error> {
        let tag = self.next_tag;
        self.next_tag += 1;
        let Some(session) = self.session.as_mut() else {
            return Err(Error::Unavailable(
                "consumer session was lost: the settle was not sent, and the messages will be redelivered".into(),
            ));
        };
        let request = ConsumeRequest {
            kind: Some(consume_request::Kind::Settle(Settle {
                offsets,
                outcome: outcome as i32,
                tag,
            })),
        };
        if session.tx.send(request).await.is_err() {
            self.session = None;
            return Err(Error::Unavailable(
                "consumer session was lost: the settle was not sent, and the messages will be redelivered".into(),
            ));
        }
        let timeout = self.client.options().request_timeout;
        loop {
            match tokio::time::timeout(timeout, session.rx.message()).await {
                Ok(Ok(Some(ConsumeResponse {
                    kind: Some(consume_response::Kind::Settled(c)),
                }))) if c.tag == tag => return Ok(c),
                Ok(Ok(Some(ConsumeResponse {
                    kind: Some(consume_response::Kind::Delivery(d)),
                }))) => session.buffered.push_back(d),
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                    self.session = None;
                    return Err(Error::Unavailable(
                        "consumer session was lost before the settle was confirmed: it may or may not have been applied (if not, the messages will be redelivered)"
                            .into(),
                    ));
                }
            }
        }
    }

    pub async fn ack(&mut self, offsets: Vec<u64>) -> Result<SettleConfirm, Error> {
        self.settle(offsets, SettleOutcome::Ack).await
    }

    /// Nack: with `requeue` the messages are delivered again later; without, they
    /// are dead-lettered (or dropped when the queue has no dead-letter queue).
    pub async fn nack(&mut self, offsets: Vec<u64>, requeue: bool) -> Result<SettleConfirm, Error> {
        let outcome = if requeue {
            SettleOutcome::Requeue
        } else {
            SettleOutcome::Reject
        };
        self.settle(offsets, outcome).await
    }

    pub async fn reject(&mut self, offsets: Vec<u64>) -> Result<SettleConfirm, Error> {
        self.settle(offsets, SettleOutcome::Reject).await
    }
}
