//! The stream state machine: an append-only log read by offset, trimmed from
//! the head by retention limits, with committed offsets of named consumers.

use serde::{Deserialize, Serialize};

use crate::admit::Admission;
use crate::command::{Command, Outcome};
use crate::message::{Offset, StoredView};
use crate::options::QueueOptions;

mod consumers;
mod log;
mod publish;

pub use consumers::MAX_STREAM_CONSUMERS;

use consumers::Committed;
use log::Log;

/// A stream's complete replicated state. A snapshot is this value serialized;
/// restoring it gives an equal value that behaves identically.
///
/// After every `apply` the retained messages are the longest run of newest
/// messages within `max_length`, `max_bytes` and `max_age_ms`: removal is
/// always from the head, so retained offsets are `first_offset..next_offset`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamLog {
    options: QueueOptions,
    /// Latest leader time applied; never moves back, so publish times ascend
    /// with offsets (age retention looks at the head only, and
    /// `offset_at_time` can binary search).
    clock_ms: u64,
    log: Log,
    admission: Admission,
    committed: Committed,
}

impl StreamLog {
    /// An empty stream.
    pub fn new(options: QueueOptions) -> Self {
        Self {
            options,
            clock_ms: 0,
            log: Log::default(),
            admission: Admission::default(),
            committed: Committed::default(),
        }
    }

    /// The stream's policy (see [`QueueOptions`] for which options streams use).
    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    /// Applies one committed command. Publish, Tick, CommitOffset are meaningful;
    /// ResetConsumers and DeadLettered are no-ops answering `Outcome::Done`;
    /// Attach/Detach/Settle answer `Outcome::Invalid` and change nothing except time.
    ///
    /// Every command carrying a time first advances the clock; every command
    /// ends with retention (age, length, bytes), removing the oldest messages.
    pub fn apply(&mut self, cmd: Command) -> Outcome {
        if let Some(now_ms) = cmd.now_ms() {
            self.clock_ms = self.clock_ms.max(now_ms);
        }
        let outcome = match cmd {
            Command::Publish {
                producer,
                key,
                messages,
                ..
            } => self.publish(producer, key, messages),
            Command::Tick { .. } => {
                self.admission.keys.forget_before(self.clock_ms);
                Outcome::Done
            }
            Command::ResetConsumers { .. } | Command::DeadLettered { .. } => Outcome::Done,
            Command::CommitOffset {
                consumer, offset, ..
            } => match self
                .committed
                .commit(consumer, offset, self.log.next_offset())
            {
                Ok(()) => Outcome::Done,
                Err(reason) => Outcome::Invalid(reason),
            },
            Command::Attach { .. } => not_for_streams("Attach"),
            Command::Detach { .. } => not_for_streams("Detach"),
            Command::Settle { .. } => not_for_streams("Settle"),
        };
        self.retain();
        outcome
    }

    /// Oldest retained offset; equals `next_offset()` when empty.
    pub fn first_offset(&self) -> Offset {
        self.log.first_offset()
    }

    /// Offset the next published message gets.
    pub fn next_offset(&self) -> Offset {
        self.log.next_offset()
    }

    /// Retained messages.
    pub fn len(&self) -> u64 {
        self.log.len()
    }

    /// No message retained.
    pub fn is_empty(&self) -> bool {
        self.log.len() == 0
    }

    /// Sum of payload lengths of retained messages.
    pub fn bytes(&self) -> u64 {
        self.log.bytes()
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

    /// Up to `count` retained messages with offset >= `from`, ascending.
    /// `from` below `first_offset()` starts at `first_offset()`; at or after
    /// `next_offset()` gives nothing. `delivery_count` is always 0.
    pub fn read(&self, from: Offset, count: usize) -> Vec<StoredView> {
        self.log.read(from, count)
    }

    /// First retained offset whose `publish_time_ms >= time_ms`; `next_offset()` if none.
    pub fn offset_at_time(&self, time_ms: u64) -> Offset {
        self.log.offset_at_time(time_ms)
    }

    /// Committed offset of a named consumer: the next offset it wants to read.
    pub fn committed(&self, consumer: &str) -> Option<Offset> {
        self.committed.get(consumer)
    }

    /// All named consumers and their committed offsets, by name.
    pub fn committed_offsets(&self) -> impl Iterator<Item = (&str, Offset)> + '_ {
        self.committed.iter()
    }

    /// Earliest leader time at which a Tick would remove something (`max_age_ms`),
    /// None if nothing pending.
    pub fn next_deadline(&self) -> Option<u64> {
        let max_age = self.options.max_age_ms?;
        self.log
            .oldest_time()
            .map(|time| time.saturating_add(max_age))
    }

    /// Removes the oldest messages while any retention limit is exceeded.
    fn retain(&mut self) {
        while self.over_retention() && self.log.pop_oldest() {}
    }

    fn over_retention(&self) -> bool {
        let o = &self.options;
        let too_long = o.max_length.is_some_and(|max| self.log.len() > max);
        let too_big = o.max_bytes.is_some_and(|max| self.log.bytes() > max);
        let too_old = o.max_age_ms.is_some_and(|age| {
            self.log
                .oldest_time()
                .is_some_and(|time| time.saturating_add(age) <= self.clock_ms)
        });
        too_long || too_big || too_old
    }
}

fn not_for_streams(command: &str) -> Outcome {
    Outcome::Invalid(format!(
        "queue is a stream: {command} is only for work queues; streams are read by offset"
    ))
}

#[cfg(test)]
mod tests;
