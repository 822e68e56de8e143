//! The retained messages: a dense offset range kept in a `VecDeque`.
//!
//! Messages are only ever appended at the tail and removed at the head, so the
//! retained offsets are always `first_offset..next_offset` and a message's slot
//! is `offset - first_offset`: no per-message map, one `(Message, time)` pair
//! each (the payload is a shared `Bytes`).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::message::{Message, Offset, StoredView};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    message: Message,
    publish_time_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Log {
    entries: VecDeque<Entry>,
    first_offset: Offset,
    bytes: u64,
}

impl Log {
    pub(super) fn first_offset(&self) -> Offset {
        self.first_offset
    }

    pub(super) fn next_offset(&self) -> Offset {
        self.first_offset + self.len()
    }

    pub(super) fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends at `next_offset()`. Times must not decrease (the caller's clock
    /// never moves back).
    pub(super) fn push(&mut self, message: Message, publish_time_ms: u64) {
        self.bytes += message.size();
        self.entries.push_back(Entry {
            message,
            publish_time_ms,
        });
    }

    /// Publish time of the oldest retained message.
    pub(super) fn oldest_time(&self) -> Option<u64> {
        self.entries.front().map(|e| e.publish_time_ms)
    }

    /// Removes the oldest retained message, if any.
    pub(super) fn pop_oldest(&mut self) -> bool {
        let Some(entry) = self.entries.pop_front() else {
            return false;
        };
        self.bytes -= entry.message.size();
        self.first_offset += 1;
        true
    }

    /// Up to `count` retained messages from `from` (clamped to the head), ascending.
    pub(super) fn read(&self, from: Offset, count: usize) -> Vec<StoredView> {
        let start = from.max(self.first_offset);
        let Ok(skip) = usize::try_from(start - self.first_offset) else {
            return Vec::new();
        };
        if skip >= self.entries.len() {
            return Vec::new();
        }
        self.entries
            .range(skip..)
            .take(count)
            .zip(start..)
            .map(|(e, offset)| StoredView {
                offset,
                message: e.message.clone(),
                delivery_count: 0,
                publish_time_ms: e.publish_time_ms,
            })
            .collect()
    }

    /// First retained offset published at or after `time_ms`, else `next_offset()`.
    pub(super) fn offset_at_time(&self, time_ms: u64) -> Offset {
        let index = self
            .entries
            .partition_point(|e| e.publish_time_ms < time_ms);
        self.first_offset + index as u64
    }
}
