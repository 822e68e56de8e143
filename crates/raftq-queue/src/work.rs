//! The work queue state machine: competing consumers, acks, redelivery, limits.

use serde::{Deserialize, Serialize};

use crate::admit::Admission;
use crate::command::{Command, Effect, Outcome};
use crate::consumers::Consumers;
use crate::dead_letter::{DeadLetter, Outbox};
use crate::message::{ConsumerId, Offset, StoredView};
use crate::options::QueueOptions;
use crate::store::Store;

mod dispatch;
mod publish;
mod returns;

/// A work queue's complete replicated state. A snapshot is this value
/// serialized; restoring it gives an equal value that behaves identically.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkQueue {
    options: QueueOptions,
    /// Latest leader time applied. Times only move forward, so a new leader
    /// whose clock is behind cannot make publish times go back, which keeps
    /// publish times ascending with offsets (expiry then only looks at the
    /// head) and deliveries never dated before earlier ones.
    clock_ms: u64,
    store: Store,
    consumers: Consumers,
    admission: Admission,
    outbox: Outbox,
}

impl WorkQueue {
    /// An empty queue.
    pub fn new(options: QueueOptions) -> Self {
        Self {
            options,
            clock_ms: 0,
            store: Store::default(),
            consumers: Consumers::default(),
            admission: Admission::default(),
            outbox: Outbox::default(),
        }
    }

    /// The queue's policy.
    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    /// Applies one committed command. Effects are appended to `effects` (the
    /// leader executes them; followers drop them).
    ///
    /// Every command carrying a time first lets time pass (ack timeouts, then
    /// TTL expiry); every command ends with expiry of messages it returned and
    /// dispatch, so after `apply` no ready message is expired and no consumer
    /// with free credit waits while a message is ready.
    pub fn apply(&mut self, cmd: Command, effects: &mut Vec<Effect>) -> Outcome {
        if let Some(now_ms) = cmd.now_ms() {
            self.advance(now_ms, effects);
        }
        let outcome = match cmd {
            Command::Publish {
                producer,
                key,
                messages,
                ..
            } => self.publish(producer, key, messages, effects),
            Command::Attach {
                consumer, prefetch, ..
            } => {
                self.consumers.attach(consumer, prefetch);
                Outcome::Done
            }
            Command::Detach { consumer, .. } => {
                let held = self.consumers.detach(consumer).unwrap_or_default();
                self.end_deliveries(held, effects);
                Outcome::Done
            }
            Command::Settle {
                consumer,
                offsets,
                outcome,
                ..
            } => self.settle(consumer, offsets, outcome, effects),
            Command::Tick { .. } => {
                self.admission.keys.forget_before(self.clock_ms);
                Outcome::Done
            }
            Command::ResetConsumers { .. } => {
                let held = self.consumers.reset();
                self.end_deliveries(held, effects);
                Outcome::Done
            }
            Command::DeadLettered { up_to_seq } => {
                self.outbox.confirm(up_to_seq);
                Outcome::Done
            }
            Command::CommitOffset { .. } => Outcome::Invalid(
                "queue is a work queue: CommitOffset is only for streams".to_string(),
            ),
        };
        self.expire(effects);
        self.dispatch(effects);
        outcome
    }

    /// Stored messages not yet acked, dead-lettered or dropped (ready + unacked).
    pub fn depth(&self) -> u64 {
        self.store.len()
    }

    /// Stored messages waiting for a consumer.
    pub fn ready(&self) -> u64 {
        self.store.ready()
    }

    /// Messages delivered and not yet settled.
    pub fn unacked(&self) -> u64 {
        self.consumers.held()
    }

    /// Sum of payload lengths of stored messages.
    pub fn bytes(&self) -> u64 {
        self.store.bytes()
    }

    /// Attached consumers.
    pub fn consumers(&self) -> usize {
        self.consumers.len()
    }

    /// Attached consumer ids in attach order (the round-robin order).
    pub fn consumer_ids(&self) -> Vec<ConsumerId> {
        self.consumers.ids()
    }

    /// Offset the next published message gets.
    pub fn next_offset(&self) -> Offset {
        self.store.next_offset()
    }

    /// Latest leader time applied (times from commands never move it back).
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Idempotent producers currently remembered.
    pub fn remembered_producers(&self) -> usize {
        self.admission.producers.len()
    }

    /// Publish keys currently remembered.
    pub fn remembered_publish_keys(&self) -> usize {
        self.admission.keys.len()
    }

    /// Earliest leader time at which a Tick would change state (TTL expiry of a
    /// ready message or an ack timeout), None if nothing pending.
    pub fn next_deadline(&self) -> Option<u64> {
        // Publish times ascend with offsets, so the lowest ready offset expires first.
        let expiry = self.options.message_ttl_ms.and_then(|ttl| {
            self.store
                .lowest_ready()
                .map(|(_, s)| s.publish_time_ms.saturating_add(ttl))
        });
        let timeout = self.options.ack_timeout_ms.and_then(|t| {
            self.consumers
                .oldest_delivery()
                .map(|at| at.saturating_add(t))
        });
        match (expiry, timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Browse stored messages (ready or unacked) with offset >= from, ascending,
    /// at most `count`, without consuming.
    pub fn browse(&self, from: Offset, count: usize) -> Vec<StoredView> {
        self.store
            .iter_from(from)
            .take(count)
            .map(|(offset, s)| StoredView {
                offset,
                message: s.message(),
                delivery_count: s.delivery_count,
                publish_time_ms: s.publish_time_ms,
            })
            .collect()
    }

    /// Dead letters not yet confirmed by DeadLettered, ascending by seq: a new
    /// leader re-sends these (at-least-once, dedup on the target by (source, seq)).
    pub fn pending_dead_letters(&self) -> impl Iterator<Item = &DeadLetter> {
        self.outbox.pending()
    }

    /// What a consumer currently holds, ascending (empty if unknown).
    pub fn held_by(&self, consumer: ConsumerId) -> Vec<Offset> {
        self.consumers.held_by(consumer)
    }

    fn advance(&mut self, now_ms: u64, effects: &mut Vec<Effect>) {
        self.clock_ms = self.clock_ms.max(now_ms);
        if let Some(limit) = self
            .options
            .ack_timeout_ms
            .and_then(|t| self.clock_ms.checked_sub(t))
        {
            let timed_out = self.consumers.release_delivered_until(limit);
            self.end_deliveries(timed_out, effects);
        }
        self.expire(effects);
    }
}
