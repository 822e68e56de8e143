//! Per-queue policy, fixed when the queue is created.

use serde::{Deserialize, Serialize};

/// What a publish does when it would take the queue over `max_length` or `max_bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Overflow {
    /// Refuse the whole publish; nothing is stored.
    #[default]
    RejectPublish,
    /// Store the publish, then drop (dead-letter with reason `maxlen`) the oldest
    /// ready messages until the queue is within its limits again.
    DropHead,
}

/// Default for [`QueueOptions::max_message_bytes`]: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1_048_576;

/// Default for [`QueueOptions::dedup_window`].
pub const DEFAULT_DEDUP_WINDOW: u32 = 1024;

/// Policy of a queue. `None` means "no limit" / "feature off".
///
/// For a [`crate::StreamLog`], `max_length`, `max_bytes` and `max_age_ms` are
/// retention limits: the oldest messages are removed to stay within them and a
/// publish is never refused for size. `max_message_bytes` and `dedup_window`
/// apply as for work queues. The work-queue-only options (`max_deliveries`,
/// `dead_letter_queue`, `message_ttl_ms`, `overflow`, `ack_timeout_ms`,
/// `single_active_consumer`) are ignored by streams (the server refuses them
/// when a stream is created). A [`crate::WorkQueue`] ignores `max_age_ms`.
///
/// `Some(0)` is taken literally (a TTL or ack timeout of zero expires at once), so
/// the API layer should map a zero it receives to `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueOptions {
    /// A message whose deliveries ended without an ack this many times is
    /// dead-lettered (reason `delivery_limit`) instead of being requeued.
    pub max_deliveries: Option<u32>,
    /// Queue that receives dead letters; without one they are dropped.
    pub dead_letter_queue: Option<String>,
    /// Ready messages older than this (since publish) are dead-lettered (reason `expired`).
    pub message_ttl_ms: Option<u64>,
    /// Maximum stored messages (ready + unacked).
    pub max_length: Option<u64>,
    /// Maximum sum of payload lengths of stored messages.
    pub max_bytes: Option<u64>,
    /// What happens when a publish would exceed `max_length` or `max_bytes`.
    pub overflow: Overflow,
    /// A delivery not settled within this time is returned to the queue.
    pub ack_timeout_ms: Option<u64>,
    /// Largest accepted payload; a batch holding a larger one is refused whole.
    pub max_message_bytes: u64,
    /// How many idempotent producer ids are remembered (least recently used evicted).
    pub dedup_window: u32,
    /// Deliver only to the earliest-attached consumer still attached.
    pub single_active_consumer: bool,
    /// Streams only: messages are removed once `publish_time_ms + max_age_ms <=`
    /// the stream's clock. Ignored by work queues.
    pub max_age_ms: Option<u64>,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            max_deliveries: None,
            dead_letter_queue: None,
            message_ttl_ms: None,
            max_length: None,
            max_bytes: None,
            overflow: Overflow::RejectPublish,
            ack_timeout_ms: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            dedup_window: DEFAULT_DEDUP_WINDOW,
            single_active_consumer: false,
            max_age_ms: None,
        }
    }
}
