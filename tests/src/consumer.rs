//! A consumer session over the raw bidi stream, and a drain loop that survives
//! failovers by resubscribing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use raftq_proto::v1::{
    consume_request, consume_response, ConsumeRequest, Delivery, Settle, SettleConfirm,
    SettleOutcome, Subscribe,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

pub struct TestConsumer {
    tx: mpsc::Sender<ConsumeRequest>,
    rx: Streaming<raftq_proto::v1::ConsumeResponse>,
    next_tag: u64,
    buffered: VecDeque<Delivery>,
    /// Node that hosts the session (the queue leader).
    pub host: u64,
}

impl TestConsumer {
    pub async fn subscribe(addr: &str, queue: &str, prefetch: u32) -> Result<Self, Status> {
        let mut client = crate::client::queue(addr).await?;
        let (tx, rx) = mpsc::channel(1024);
        tx.send(ConsumeRequest {
            kind: Some(consume_request::Kind::Subscribe(Subscribe {
                queue: queue.into(),
                prefetch,
            })),
        })
        .await
        .map_err(|_| Status::internal("request channel closed"))?;
        let mut rx = client.consume(ReceiverStream::new(rx)).await?.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), rx.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Subscribed within 10 s"))??;
        match first.and_then(|r| r.kind) {
            Some(consume_response::Kind::Subscribed(s)) => Ok(TestConsumer {
                tx,
                rx,
                next_tag: 1,
                buffered: VecDeque::new(),
                host: s.node_id,
            }),
            other => Err(Status::internal(format!(
                "expected Subscribed, got {other:?}"
            ))),
        }
    }

    /// Next delivery, or `Ok(None)` when nothing arrives within `idle`.
    pub async fn next_delivery(&mut self, idle: Duration) -> Result<Option<Delivery>, Status> {
        if let Some(d) = self.buffered.pop_front() {
            return Ok(Some(d));
        }
        loop {
            let msg = match tokio::time::timeout(idle, self.rx.message()).await {
                Err(_) => return Ok(None),
                Ok(r) => r?,
            };
            match msg.and_then(|m| m.kind) {
                Some(consume_response::Kind::Delivery(d)) => return Ok(Some(d)),
                Some(_) => continue,
                None => return Err(Status::unavailable("consume stream ended")),
            }
        }
    }

    /// Settles and waits for the confirm (deliveries arriving meanwhile are kept).
    pub async fn settle(
        &mut self,
        offsets: Vec<u64>,
        outcome: SettleOutcome,
    ) -> Result<SettleConfirm, Status> {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.tx
            .send(ConsumeRequest {
                kind: Some(consume_request::Kind::Settle(Settle {
                    offsets,
                    outcome: outcome as i32,
                    tag,
                })),
            })
            .await
            .map_err(|_| Status::unavailable("consume stream closed"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, self.rx.message())
                .await
                .map_err(|_| Status::deadline_exceeded("no settle confirm within 10 s"))??;
            match msg.and_then(|m| m.kind) {
                Some(consume_response::Kind::Settled(c)) if c.tag == tag => return Ok(c),
                Some(consume_response::Kind::Delivery(d)) => self.buffered.push_back(d),
                Some(_) => continue,
                None => return Err(Status::unavailable("consume stream ended")),
            }
        }
    }

    pub async fn ack(&mut self, offset: u64) -> Result<bool, Status> {
        let confirm = self.settle(vec![offset], SettleOutcome::Ack).await?;
        Ok(confirm.settled.contains(&offset))
    }
}

/// What a drain saw: acked messages by offset, and every delivery in order.
#[derive(Default, Debug)]
pub struct Drained {
    pub acked: BTreeMap<u64, Vec<u8>>,
    pub deliveries: Vec<Delivery>,
}

impl Drained {
    /// (offset, payload) of every message whose ack was confirmed.
    pub fn acked_set(&self) -> BTreeSet<(u64, Vec<u8>)> {
        self.acked.iter().map(|(o, p)| (*o, p.clone())).collect()
    }

    /// (offset, payload) of every message delivered at least once. This, not
    /// `acked_set`, is what a loss check compares with the confirmed set: an ack
    /// sent just before a leader change may be applied although its confirm
    /// never arrived (the session ended first), and then the message is rightly
    /// not delivered again.
    pub fn delivered_set(&self) -> BTreeSet<(u64, Vec<u8>)> {
        self.deliveries
            .iter()
            .map(|d| (d.offset, d.payload.to_vec()))
            .collect()
    }

    /// Deliveries whose (offset, payload) is not in `expected`: a message nobody
    /// confirmed, or one served at the wrong offset.
    pub fn unexpected<'a>(&'a self, expected: &'a BTreeSet<(u64, Vec<u8>)>) -> Vec<&'a Delivery> {
        self.deliveries
            .iter()
            .filter(|d| !expected.contains(&(d.offset, d.payload.to_vec())))
            .collect()
    }
}

/// Consumes and acks until `expect` distinct messages were delivered
/// (resubscribing across failovers through any of `addrs`), then idles 0.7 s
/// more to take redeliveries and catch any unexpected extra delivery.
pub async fn drain(addrs: &[String], queue: &str, expect: usize, timeout: Duration) -> Drained {
    let deadline = Instant::now() + timeout;
    let mut out = Drained::default();
    let mut attempt = 0;
    // Offsets delivered at least once: the drain is done when `expect` of them
    // came (see `Drained::delivered_set`), then idles briefly to take any
    // redelivery of a message whose ack was not applied.
    let mut seen: BTreeSet<u64> = BTreeSet::new();
    'sessions: while Instant::now() < deadline {
        let addr = &addrs[attempt % addrs.len()];
        attempt += 1;
        let Ok(mut consumer) = TestConsumer::subscribe(addr, queue, 256).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        loop {
            // Also bounds a session that never goes idle (endless redelivery).
            if Instant::now() >= deadline {
                break 'sessions;
            }
            let idle = if seen.len() >= expect {
                Duration::from_millis(700)
            } else {
                Duration::from_secs(2)
            };
            match consumer.next_delivery(idle).await {
                Ok(Some(d)) => {
                    // Ack whatever else is already here in one settle: one commit
                    // for many messages, as a real consumer would.
                    let mut batch = vec![d];
                    while batch.len() < 256 {
                        match consumer.next_delivery(Duration::from_millis(2)).await {
                            Ok(Some(more)) => batch.push(more),
                            _ => break,
                        }
                    }
                    seen.extend(batch.iter().map(|d| d.offset));
                    out.deliveries.extend(batch.iter().cloned());
                    let offsets: Vec<u64> = batch.iter().map(|d| d.offset).collect();
                    match consumer.settle(offsets, SettleOutcome::Ack).await {
                        Ok(confirm) => {
                            for d in batch
                                .into_iter()
                                .filter(|d| confirm.settled.contains(&d.offset))
                            {
                                out.acked.insert(d.offset, d.payload.to_vec());
                            }
                        }
                        Err(e) => {
                            eprintln!("drain {queue}: settle through {addr} failed: {e}");
                            continue 'sessions;
                        }
                    }
                }
                Ok(None) if seen.len() >= expect => break 'sessions,
                Ok(None) if Instant::now() >= deadline => break 'sessions,
                Ok(None) => {}
                Err(_) => continue 'sessions,
            }
        }
    }
    out
}
