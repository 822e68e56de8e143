//! Messages leaving a queue without an ack, and the outbox that forwards them.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::message::{Message, Offset};

/// Header carrying [`DeadLetterReason::as_str`].
pub const HEADER_DEATH_REASON: &str = "x-death-reason";
/// Header carrying the message's `delivery_count` when it was dead-lettered.
pub const HEADER_DEATH_COUNT: &str = "x-death-count";
/// Header carrying the message's offset in the source queue.
pub const HEADER_DEATH_SOURCE_OFFSET: &str = "x-death-source-offset";
/// Header carrying the source queue's name; added by the server, which knows it.
pub const HEADER_DEATH_QUEUE: &str = "x-death-queue";

/// Why a message was dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadLetterReason {
    /// A consumer rejected it.
    Rejected,
    /// It reached `max_deliveries` deliveries without an ack.
    DeliveryLimit,
    /// It stayed ready longer than `message_ttl_ms`.
    Expired,
    /// `drop-head` overflow pushed it out.
    MaxLength,
}

impl DeadLetterReason {
    /// Value of the `x-death-reason` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::DeliveryLimit => "delivery_limit",
            Self::Expired => "expired",
            Self::MaxLength => "maxlen",
        }
    }
}

/// A message on its way to the dead-letter queue.
///
/// `seq` is contiguous per source queue and never reused, so the target can drop
/// a repeat sent again after a failover by deduplicating on (source, seq).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Per-source-queue sequence, from 1.
    pub seq: u64,
    /// Name of the dead-letter queue.
    pub target: String,
    /// Offset of the message in the source queue.
    pub source_offset: Offset,
    /// Why it left the source queue.
    pub reason: DeadLetterReason,
    /// The original message plus the `x-death-*` headers (except `x-death-queue`).
    pub message: Message,
}

/// Dead letters created but not yet confirmed stored in their target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outbox {
    next_seq: u64,
    pending: VecDeque<DeadLetter>,
}

impl Default for Outbox {
    fn default() -> Self {
        Self {
            next_seq: 1,
            pending: VecDeque::new(),
        }
    }
}

impl Outbox {
    /// Records the dead letter and asks the leader to forward it; without a
    /// target the message is simply dropped.
    pub(crate) fn send(
        &mut self,
        target: Option<&String>,
        source_offset: Offset,
        mut message: Message,
        delivery_count: u32,
        reason: DeadLetterReason,
    ) -> Option<DeadLetter> {
        let target = target?;
        let headers = &mut message.headers;
        headers.insert(HEADER_DEATH_REASON.into(), reason.as_str().into());
        headers.insert(HEADER_DEATH_COUNT.into(), delivery_count.to_string());
        headers.insert(HEADER_DEATH_SOURCE_OFFSET.into(), source_offset.to_string());
        let letter = DeadLetter {
            seq: self.next_seq,
            target: target.clone(),
            source_offset,
            reason,
            message,
        };
        self.next_seq = self.next_seq.saturating_add(1);
        self.pending.push_back(letter.clone());
        Some(letter)
    }

    pub(crate) fn confirm(&mut self, up_to_seq: u64) {
        while self.pending.front().is_some_and(|l| l.seq <= up_to_seq) {
            self.pending.pop_front();
        }
    }

    pub(crate) fn pending(&self) -> impl Iterator<Item = &DeadLetter> {
        self.pending.iter()
    }
}
