//! Committed offsets of named stream consumers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::message::Offset;

/// Most named consumers a stream remembers; a commit by a new name beyond it is refused.
pub const MAX_STREAM_CONSUMERS: usize = 10_000;

/// Longest consumer name, in bytes.
pub(super) const MAX_CONSUMER_NAME_BYTES: usize = 255;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Committed {
    by_name: BTreeMap<String, Offset>,
}

impl Committed {
    /// Stores `offset` for `consumer` if valid against a stream whose next
    /// offset is `next_offset`; otherwise says why and changes nothing.
    pub(super) fn commit(
        &mut self,
        consumer: String,
        offset: Offset,
        next_offset: Offset,
    ) -> Result<(), String> {
        if consumer.is_empty() {
            return Err("consumer name is empty".to_string());
        }
        if consumer.len() > MAX_CONSUMER_NAME_BYTES {
            return Err(format!(
                "consumer name is {} bytes, more than {MAX_CONSUMER_NAME_BYTES}",
                consumer.len()
            ));
        }
        if offset > next_offset {
            return Err(format!(
                "offset {offset} is past the stream's next offset {next_offset}"
            ));
        }
        let full = self.by_name.len() >= MAX_STREAM_CONSUMERS;
        match self.by_name.get_mut(&consumer) {
            Some(committed) => *committed = offset,
            None if full => {
                return Err(format!(
                    "stream already has {MAX_STREAM_CONSUMERS} named consumers"
                ));
            }
            None => {
                self.by_name.insert(consumer, offset);
            }
        }
        Ok(())
    }

    pub(super) fn get(&self, consumer: &str) -> Option<Offset> {
        self.by_name.get(consumer).copied()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, Offset)> + '_ {
        self.by_name
            .iter()
            .map(|(name, &offset)| (name.as_str(), offset))
    }
}
