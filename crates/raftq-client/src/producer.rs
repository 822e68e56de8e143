//! Idempotent producer: every message gets a sequence number under a random
//! producer id, so a batch retried after a timeout or failover is stored once.

use bytes::Bytes;
use raftq_proto::v1::PublishMessage;

use crate::{Client, Error};

/// Publishes to one queue, one batch at a time.
///
/// Why not several batches of one producer in flight: concurrent requests can
/// reach the leader in any order, and the queue must refuse a sequence gap (a
/// batch whose predecessor is missing) to keep its exactly-once promise. For
/// throughput use large batches, and several producers in parallel.
pub struct Producer {
    client: Client,
    queue: String,
    producer_id: String,
    next_sequence: u64,
}

impl Producer {
    pub(crate) fn new(client: Client, queue: &str) -> Self {
        let producer_id = format!("{:032x}", rand::random::<u128>());
        Self {
            client,
            queue: queue.to_string(),
            producer_id,
            next_sequence: 1,
        }
    }

    pub fn producer_id(&self) -> &str {
        &self.producer_id
    }

    /// Sends payloads as one batch and waits for the commit: offsets in order.
    pub async fn send_batch(&mut self, payloads: Vec<Bytes>) -> Result<Vec<u64>, Error> {
        let messages = payloads
            .into_iter()
            .map(|payload| PublishMessage {
                payload,
                headers: Default::default(),
            })
            .collect();
        self.send(messages).await
    }

    /// Sends one batch (with headers) and waits for the commit, retrying across
    /// failovers with the same sequence numbers so the batch is stored once. On
    /// error the batch may or may not be stored; sending the same messages again
    /// through this producer is always safe: the sequence numbers stay reserved
    /// for them until a send succeeds.
    pub async fn send(&mut self, messages: Vec<PublishMessage>) -> Result<Vec<u64>, Error> {
        let n = messages.len() as u64;
        let producer = Some((self.producer_id.clone(), self.next_sequence));
        let resp = self.client.publish(&self.queue, messages, producer).await?;
        self.next_sequence += n;
        Ok(resp.offsets)
    }
}
