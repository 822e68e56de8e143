//! An idempotent producer over the raw Publish RPC: every batch carries
//! (producer_id, sequence), so retrying it after a timeout or a failover stores
//! it once (README guarantee 5) and the test's idea of "confirmed" is exact.

use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_proto::v1::queue_service_client::QueueServiceClient;
use raftq_proto::v1::{PublishMessage, PublishRequest};
use tonic::transport::Channel;
use tonic::Status;

use crate::client;

/// Messages per Publish call: one Raft entry carries the whole batch.
pub const BATCH: usize = 100;

pub struct Producer {
    pub id: String,
    /// Sequence of the next message.
    next_sequence: u64,
    /// Longest a single batch may keep failing with retryable errors.
    pub batch_deadline: Duration,
    /// One attempt; a slow attempt is retried with the same sequence.
    pub attempt_timeout: Duration,
    /// Client of the last address used; dropped after an error so the next
    /// attempt connects afresh.
    cached: Option<(String, QueueServiceClient<Channel>)>,
}

impl Producer {
    /// A producer with a fresh id (`prefix` plus something unique).
    pub fn new(prefix: &str) -> Producer {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Producer {
            id: format!("{prefix}-{}-{n}", std::process::id()),
            next_sequence: 1,
            batch_deadline: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(5),
            cached: None,
        }
    }

    /// Publishes one batch through `addr`, retrying retryable errors until
    /// confirmed or `batch_deadline`. Returns the offsets.
    pub async fn publish(
        &mut self,
        addr: &str,
        queue: &str,
        payloads: &[Bytes],
    ) -> Result<Vec<u64>, Status> {
        let request = PublishRequest {
            key: None,
            queue: queue.into(),
            messages: payloads
                .iter()
                .map(|p| PublishMessage {
                    payload: p.clone(),
                    headers: Default::default(),
                })
                .collect(),
            producer_id: self.id.clone(),
            sequence: self.next_sequence,
        };
        let deadline = Instant::now() + self.batch_deadline;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let cached = self.cached.take().filter(|(a, _)| a == addr);
            let result = tokio::time::timeout(self.attempt_timeout, async {
                let mut c = match cached {
                    Some((_, c)) => c,
                    None => client::queue(addr).await?,
                };
                let resp = c.publish(request.clone()).await?.into_inner();
                Ok::<_, Status>((c, resp))
            })
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("publish attempt timed out")));
            let result = result.map(|(c, resp)| {
                self.cached = Some((addr.to_string(), c));
                resp
            });
            match result {
                Ok(resp) => {
                    if resp.offsets.len() != payloads.len() {
                        return Err(Status::internal(format!(
                            "{} offsets for a batch of {}",
                            resp.offsets.len(),
                            payloads.len()
                        )));
                    }
                    self.next_sequence += payloads.len() as u64;
                    return Ok(resp.offsets);
                }
                Err(s) if client::retryable(&s) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(s) => {
                    return Err(Status::new(
                        s.code(),
                        format!("{} (after {attempts} attempts)", s.message()),
                    ))
                }
            }
        }
    }

    /// Publishes `messages` in batches of `BATCH`; returns (offset, payload) per
    /// message, in order. Panics when a batch cannot be confirmed.
    pub async fn publish_all(
        &mut self,
        addr: &str,
        queue: &str,
        messages: &[Bytes],
    ) -> Vec<(u64, Bytes)> {
        let mut confirmed = Vec::with_capacity(messages.len());
        for (i, batch) in messages.chunks(BATCH).enumerate() {
            let offsets = self.publish(addr, queue, batch).await.unwrap_or_else(|e| {
                panic!(
                    "batch {i} ({} messages from sequence {}) to {queue} via {addr} \
                     not confirmed: {e}",
                    batch.len(),
                    self.next_sequence
                )
            });
            confirmed.extend(offsets.into_iter().zip(batch.iter().cloned()));
        }
        confirmed
    }
}

/// `prefix0`, `prefix1`, ...: distinct payloads a test can trace.
pub fn bodies(prefix: &str, range: std::ops::Range<u64>) -> Vec<Bytes> {
    range.map(|i| Bytes::from(format!("{prefix}{i}"))).collect()
}
