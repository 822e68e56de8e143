//! Deliveries ending: settles, returns to the queue, expiry, dead-lettering.

use super::WorkQueue;
use crate::command::{Effect, Outcome, Settlement};
use crate::dead_letter::DeadLetterReason;
use crate::message::{ConsumerId, Offset};
use crate::store::Stored;

impl WorkQueue {
    pub(super) fn settle(
        &mut self,
        consumer: ConsumerId,
        offsets: Vec<Offset>,
        outcome: Settlement,
        effects: &mut Vec<Effect>,
    ) -> Outcome {
        let mut settled = Vec::with_capacity(offsets.len());
        let mut unknown = Vec::new();
        for offset in offsets {
            if !self.consumers.release(consumer, offset) {
                unknown.push(offset);
                continue;
            }
            settled.push(offset);
            match outcome {
                Settlement::Ack => {
                    self.store.remove_held(offset);
                }
                Settlement::Requeue => self.end_delivery(offset, false, effects),
                Settlement::Reject => self.end_delivery(offset, true, effects),
            }
        }
        Outcome::Settled { settled, unknown }
    }

    pub(super) fn end_deliveries(&mut self, offsets: Vec<Offset>, effects: &mut Vec<Effect>) {
        for offset in offsets {
            self.end_delivery(offset, false, effects);
        }
    }

    /// A delivery of a released message ended without an ack: count it, then
    /// dead-letter the message or make it ready again.
    fn end_delivery(&mut self, offset: Offset, reject: bool, effects: &mut Vec<Effect>) {
        let Some(stored) = self.store.get_mut(offset) else {
            return;
        };
        stored.delivery_count = stored.delivery_count.saturating_add(1);
        let count = stored.delivery_count;
        let reason = if reject {
            Some(DeadLetterReason::Rejected)
        } else if self.options.max_deliveries.is_some_and(|max| count >= max) {
            Some(DeadLetterReason::DeliveryLimit)
        } else {
            None
        };
        match reason {
            Some(reason) => {
                if let Some(stored) = self.store.remove_held(offset) {
                    self.dead_letter(offset, stored, reason, effects);
                }
            }
            None => self.store.return_held(offset),
        }
    }

    /// Removes expired ready messages, oldest first.
    pub(super) fn expire(&mut self, effects: &mut Vec<Effect>) {
        let Some(ttl) = self.options.message_ttl_ms else {
            return;
        };
        let now = self.clock_ms;
        let expired = |s: &Stored| s.publish_time_ms.checked_add(ttl).is_some_and(|t| t <= now);
        while self.store.lowest_ready().is_some_and(|(_, s)| expired(s)) {
            let Some((offset, stored)) = self.store.remove_lowest_ready() else {
                break;
            };
            self.dead_letter(offset, stored, DeadLetterReason::Expired, effects);
        }
    }

    pub(super) fn dead_letter(
        &mut self,
        offset: Offset,
        stored: Stored,
        reason: DeadLetterReason,
        effects: &mut Vec<Effect>,
    ) {
        let target = self.options.dead_letter_queue.as_ref();
        let delivery_count = stored.delivery_count;
        if let Some(letter) = self.outbox.send(
            target,
            offset,
            stored.into_message(),
            delivery_count,
            reason,
        ) {
            effects.push(Effect::DeadLetter(letter));
        }
    }
}
