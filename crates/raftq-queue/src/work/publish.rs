//! Publish: validation, idempotent producers, length limits.

use super::WorkQueue;
use crate::admit::Identity;
use crate::command::{Effect, Outcome, ProducerSeq, PublishError};
use crate::dead_letter::DeadLetterReason;
use crate::message::Message;
use crate::options::Overflow;
use crate::publish_keys::PublishKey;
use crate::store::Stored;

impl WorkQueue {
    pub(super) fn publish(
        &mut self,
        producer: Option<ProducerSeq>,
        key: Option<PublishKey>,
        messages: Vec<Message>,
        effects: &mut Vec<Effect>,
    ) -> Outcome {
        let who = Identity {
            producer: producer.as_ref(),
            key,
        };
        if let Err(answer) = self.admission.admit(&self.options, who, &messages) {
            return answer;
        }
        let count = messages.len() as u64;
        let rejected = Outcome::PublishRejected;
        let batch_bytes = messages
            .iter()
            .fold(0u64, |sum, m| sum.saturating_add(m.size()));
        if self.options.overflow == Overflow::RejectPublish && self.over_limits(count, batch_bytes)
        {
            return rejected(PublishError::QueueFull {
                max_length: self.options.max_length,
                max_bytes: self.options.max_bytes,
            });
        }
        let first = self.store.next_offset();
        for message in messages {
            self.store.append(Stored::new(message, self.clock_ms));
        }
        self.admission
            .record(&self.options, who, count, first, self.clock_ms);
        if self.options.overflow == Overflow::DropHead {
            // Held messages are never dropped: a consumer may be processing them.
            while self.over_limits(0, 0) {
                let Some((offset, stored)) = self.store.remove_lowest_ready() else {
                    break;
                };
                self.dead_letter(offset, stored, DeadLetterReason::MaxLength, effects);
            }
        }
        Outcome::Published {
            offsets: (first..self.store.next_offset()).collect(),
            duplicate: false,
        }
    }

    /// Whether adding `count` messages of `bytes` would exceed a limit.
    fn over_limits(&self, count: u64, bytes: u64) -> bool {
        let too_long = self
            .options
            .max_length
            .is_some_and(|max| self.store.len().saturating_add(count) > max);
        let too_big = self
            .options
            .max_bytes
            .is_some_and(|max| self.store.bytes().saturating_add(bytes) > max);
        too_long || too_big
    }
}
