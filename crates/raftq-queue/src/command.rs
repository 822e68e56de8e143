//! The queue's Raft log vocabulary: commands in, outcomes and effects out.

use serde::{Deserialize, Serialize};

use crate::dead_letter::DeadLetter;
use crate::message::{ConsumerId, Delivery, Message, Offset};
use crate::publish_keys::PublishKey;

/// Identifies a publish of an idempotent producer: the batch covers sequences
/// `sequence ..= sequence + len - 1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerSeq {
    /// Stable id the producer keeps across retries and reconnects.
    pub producer_id: String,
    /// Sequence of the first message of the batch.
    pub sequence: u64,
}

/// How a consumer ends a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Settlement {
    /// Processed: the message is removed for good.
    Ack,
    /// Not processed: back to the queue (counts as a delivery without ack).
    Requeue,
    /// Never processable: dead-lettered at once (reason `rejected`).
    Reject,
}

/// One entry of a queue's Raft log. Every time in it was chosen by the leader
/// when proposing, so every replica applies exactly the same thing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Store a batch; offsets are contiguous in batch order.
    Publish {
        /// Leader time; becomes each message's publish time.
        now_ms: u64,
        /// Set by idempotent producers so that retries are stored once.
        producer: Option<ProducerSeq>,
        /// Without a producer: the key the accepting node gave the request,
        /// so that its re-send after a failed forward is stored once.
        key: Option<PublishKey>,
        /// The batch, stored all or nothing.
        #[serde(with = "crate::batch_codec")]
        messages: Vec<Message>,
    },
    /// Add a consumer (or change the prefetch of an attached one).
    Attach {
        /// Leader time.
        now_ms: u64,
        /// Server-chosen id.
        consumer: ConsumerId,
        /// Most unsettled deliveries the consumer may hold; 0 is taken as 1.
        prefetch: u32,
    },
    /// Remove a consumer; everything it held goes back to the queue.
    Detach {
        /// Leader time.
        now_ms: u64,
        /// The consumer leaving.
        consumer: ConsumerId,
    },
    /// Settle deliveries held by one consumer.
    Settle {
        /// Leader time.
        now_ms: u64,
        /// The consumer settling; only what it holds is settled.
        consumer: ConsumerId,
        /// Offsets to settle, in the order given.
        offsets: Vec<Offset>,
        /// How they are settled.
        outcome: Settlement,
    },
    /// Lets time pass: TTL expiry and ack timeouts up to `now_ms`.
    Tick {
        /// Leader time.
        now_ms: u64,
    },
    /// Proposed by a new leader: the old leader's consumer sessions are gone, so
    /// every consumer is detached and everything held goes back to the queue.
    ResetConsumers {
        /// Leader time.
        now_ms: u64,
    },
    /// The leader stored every pending dead letter with `seq <= up_to_seq` in its
    /// target queue; they can be forgotten.
    DeadLettered {
        /// Highest confirmed dead-letter sequence.
        up_to_seq: u64,
    },
    /// Streams only: records the committed offset of a named consumer, the next
    /// offset it will read. It may move backwards (a consumer may rewind).
    CommitOffset {
        /// Leader time.
        now_ms: u64,
        /// The consumer's name: 1 to 255 bytes.
        consumer: String,
        /// Next offset the consumer will read; at most the stream's next offset.
        offset: Offset,
    },
}

/// Why a publish stored nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PublishError {
    /// The queue is at its limits and its overflow policy is `RejectPublish`.
    #[error(
        "queue is full (max_length {}, max_bytes {})",
        limit(max_length),
        limit(max_bytes)
    )]
    QueueFull {
        /// The queue's `max_length`.
        max_length: Option<u64>,
        /// The queue's `max_bytes`.
        max_bytes: Option<u64>,
    },
    /// An idempotent producer skipped sequences or sent a batch overlapping
    /// its last one only partly.
    #[error("producer '{producer_id}' sent sequence {got} but {expected} was expected")]
    SequenceGap {
        /// The producer.
        producer_id: String,
        /// The only sequence that would be stored next.
        expected: u64,
        /// The sequence received.
        got: u64,
    },
    /// A payload is larger than the queue's `max_message_bytes`.
    #[error("message of {size} bytes is larger than the queue's max_message_bytes ({max})")]
    MessageTooLarge {
        /// Size of the first oversize payload.
        size: u64,
        /// The queue's `max_message_bytes`.
        max: u64,
    },
    /// A publish without messages.
    #[error("publish carries no messages")]
    EmptyBatch,
    /// A keyed request re-sent with another batch than the one stored under
    /// its key.
    #[error("publish key was used before for a batch of another length")]
    KeyConflict,
    /// A keyed request re-sent after the queue forgot the keys of its time:
    /// it may have been stored, so it is neither stored again nor confirmed.
    #[error("publish key is older than the queue remembers: the batch may have been stored")]
    KeyForgotten,
}

fn limit(value: &Option<u64>) -> String {
    value.map_or_else(|| "none".to_string(), |v| v.to_string())
}

/// What applying a command answers to the proposer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The batch is stored (or was already: `duplicate`). For a duplicate whose
    /// original batch is no longer remembered, `offsets` is empty.
    Published {
        /// One offset per message, in batch order.
        offsets: Vec<Offset>,
        /// A retry of an already stored batch: nothing new was stored.
        duplicate: bool,
    },
    /// Nothing was stored.
    PublishRejected(PublishError),
    /// Result of a `Settle`.
    Settled {
        /// Offsets the consumer held, now settled.
        settled: Vec<Offset>,
        /// Offsets the consumer did not hold (returned meanwhile, settled twice,
        /// unknown consumer): nothing happened to them.
        unknown: Vec<Offset>,
    },
    /// Every other command.
    Done,
    /// The command is not valid for this queue or its state: nothing changed
    /// (time aside). The string says why.
    Invalid(String),
}

/// Work for the leader, derived deterministically from the state change.
/// Followers compute the same effects and drop them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Push this delivery to the consumer's session.
    Deliver {
        /// The consumer now holding the message.
        consumer: ConsumerId,
        /// What to send it.
        delivery: Delivery,
    },
    /// Publish this to the dead-letter queue (it also stays in
    /// `pending_dead_letters` until confirmed by `Command::DeadLettered`).
    DeadLetter(DeadLetter),
}

impl Command {
    /// The leader time the command carries, if any.
    pub fn now_ms(&self) -> Option<u64> {
        match self {
            Self::Publish { now_ms, .. }
            | Self::Attach { now_ms, .. }
            | Self::Detach { now_ms, .. }
            | Self::Settle { now_ms, .. }
            | Self::Tick { now_ms }
            | Self::ResetConsumers { now_ms }
            | Self::CommitOffset { now_ms, .. } => Some(*now_ms),
            Self::DeadLettered { .. } => None,
        }
    }

    /// About how many bytes this command takes in the Raft log: what the
    /// snapshot trigger counts. Exact sizes would mean encoding every entry a
    /// second time; payloads and offsets dominate, the rest is a flat charge.
    pub fn approx_log_bytes(&self) -> u64 {
        const FIXED: u64 = 32;
        match self {
            Self::Publish { messages, .. } => {
                let per_message: u64 = messages
                    .iter()
                    .map(|m| {
                        let headers: usize =
                            m.headers.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
                        m.payload.len() as u64 + headers as u64 + 4
                    })
                    .sum();
                FIXED + per_message
            }
            Self::Settle { offsets, .. } => FIXED + 8 * offsets.len() as u64,
            Self::CommitOffset { consumer, .. } => FIXED + consumer.len() as u64,
            _ => FIXED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_size_estimate_grows_with_payloads_headers_and_offsets() {
        let publish = |payloads: &[usize], header: Option<(&str, &str)>| Command::Publish {
            now_ms: 0,
            producer: None,
            key: None,
            messages: payloads
                .iter()
                .map(|n| Message {
                    payload: vec![0u8; *n].into(),
                    headers: header
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                })
                .collect(),
        };
        let small = publish(&[10], None).approx_log_bytes();
        let large = publish(&[10, 1000], None).approx_log_bytes();
        assert!(large >= small + 1000);
        assert!(publish(&[10], Some(("key", "value"))).approx_log_bytes() >= small + 8);
        let settle = |n: u64| Command::Settle {
            now_ms: 0,
            consumer: 1,
            offsets: (0..n).collect(),
            outcome: Settlement::Ack,
        };
        assert_eq!(
            settle(100).approx_log_bytes() - settle(0).approx_log_bytes(),
            800
        );
        assert!(Command::Tick { now_ms: 0 }.approx_log_bytes() > 0);
    }
}
