//! Publish keys: a batch without producer id, re-sent by the node that accepted
//! it after its forward to the leader failed, is stored once.
//!
//! The accepting node names each such request `(source, counter)`: `source` is
//! drawn at random when the node starts, `counter` counts its requests. Keys are
//! remembered in a table of their own, bounded in count and in (leader) time, so
//! one-shot keys never evict the idempotent producers of the producer table.
//! Below a source's forgotten keys nothing can be judged any more: such a
//! re-send is refused as "may have been stored" rather than stored again.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::message::Offset;

/// Keys remembered per queue, over all sources.
pub const REMEMBERED_KEYS: usize = 131_072;

/// How long (leader time) a key is remembered. A node re-sends a request
/// only during one election's worth of retries, far less than this.
pub const KEY_MEMORY_MS: u64 = 60_000;

/// Sources remembered per queue: the raftq nodes that accepted requests in the
/// last [`KEY_MEMORY_MS`], one per node start, so a handful in practice. Only
/// a flood of forged sources reaches it, and then the least recently seen is
/// forgotten whole.
pub const REMEMBERED_SOURCES: usize = 1024;

/// Names one publish request, chosen by the node that accepted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PublishKey {
    /// Random per start of the accepting node.
    pub source: u64,
    /// The accepting node's count of keyed requests since it started.
    pub counter: u64,
}

/// What a keyed publish is, judged against the keys remembered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeyVerdict {
    /// Not seen: store it.
    New,
    /// Stored before, at these offsets.
    Duplicate(Vec<Offset>),
    /// The key was seen with a batch of another length: refuse it.
    Conflict,
    /// Older than anything this queue still remembers of its source: it may
    /// have been stored, so it must be neither stored again nor confirmed.
    Forgotten,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct KeyedBatch {
    first_offset: Offset,
    len: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Source {
    /// Counters below this were forgotten.
    floor: u64,
    batches: BTreeMap<u64, KeyedBatch>,
    last_seen_ms: u64,
}

/// The key table of one queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PublishKeys {
    sources: BTreeMap<u64, Source>,
    /// Keys in the order they were recorded, with the time they were: the
    /// order of forgetting.
    recorded: VecDeque<(PublishKey, u64)>,
}

impl PublishKeys {
    pub(crate) fn judge(&self, key: &PublishKey, len: u64) -> KeyVerdict {
        let Some(source) = self.sources.get(&key.source) else {
            return KeyVerdict::New;
        };
        if let Some(batch) = source.batches.get(&key.counter) {
            return if batch.len == len {
                let end = batch.first_offset.saturating_add(batch.len);
                KeyVerdict::Duplicate((batch.first_offset..end).collect())
            } else {
                KeyVerdict::Conflict
            };
        }
        if key.counter < source.floor {
            KeyVerdict::Forgotten
        } else {
            KeyVerdict::New
        }
    }

    /// Records a batch judged `New`, stored at `first_offset` at time `now_ms`.
    pub(crate) fn record(&mut self, key: PublishKey, len: u64, first_offset: Offset, now_ms: u64) {
        self.forget_before(now_ms);
        let source = self.sources.entry(key.source).or_default();
        source
            .batches
            .insert(key.counter, KeyedBatch { first_offset, len });
        source.last_seen_ms = source.last_seen_ms.max(now_ms);
        self.recorded.push_back((key, now_ms));
        while self.recorded.len() > REMEMBERED_KEYS {
            self.forget_oldest();
        }
        while self.sources.len() > REMEMBERED_SOURCES {
            self.forget_least_recent_source();
        }
    }

    /// Forgets what is older than [`KEY_MEMORY_MS`] at `now_ms`: keys, and
    /// sources none of whose keys is remembered.
    pub(crate) fn forget_before(&mut self, now_ms: u64) {
        let expired = |at: u64| at.saturating_add(KEY_MEMORY_MS) <= now_ms;
        while self.recorded.front().is_some_and(|(_, at)| expired(*at)) {
            self.forget_oldest();
        }
        self.sources
            .retain(|_, s| !s.batches.is_empty() || !expired(s.last_seen_ms));
    }

    fn forget_oldest(&mut self) {
        let Some((key, _)) = self.recorded.pop_front() else {
            return;
        };
        if let Some(source) = self.sources.get_mut(&key.source) {
            source.batches.remove(&key.counter);
            source.floor = source.floor.max(key.counter.saturating_add(1));
        }
    }

    fn forget_least_recent_source(&mut self) {
        let Some(oldest) = self
            .sources
            .iter()
            .min_by_key(|(id, s)| (s.last_seen_ms, **id))
            .map(|(id, _)| *id)
        else {
            return;
        };
        // Its entries in `recorded` go when their turn comes; should the
        // source come back meanwhile, they only forget its keys early, which
        // refuses a re-send rather than storing it twice.
        self.sources.remove(&oldest);
    }

    /// Keys remembered.
    pub(crate) fn len(&self) -> usize {
        self.recorded.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(source: u64, counter: u64) -> PublishKey {
        PublishKey { source, counter }
    }

    #[test]
    fn a_recorded_key_is_a_duplicate_with_its_offsets_and_other_lengths_conflict() {
        let mut t = PublishKeys::default();
        assert_eq!(t.judge(&key(7, 0), 2), KeyVerdict::New);
        t.record(key(7, 0), 2, 40, 1_000);
        assert_eq!(t.judge(&key(7, 0), 2), KeyVerdict::Duplicate(vec![40, 41]));
        assert_eq!(t.judge(&key(7, 0), 3), KeyVerdict::Conflict);
        assert_eq!(t.judge(&key(7, 1), 2), KeyVerdict::New);
        assert_eq!(t.judge(&key(8, 0), 2), KeyVerdict::New);
    }

    #[test]
    fn keys_forgotten_by_count_refuse_their_resend() {
        let mut t = PublishKeys::default();
        for counter in 0..=REMEMBERED_KEYS as u64 {
            t.record(key(1, counter), 1, counter, 5);
        }
        assert_eq!(t.len(), REMEMBERED_KEYS);
        assert_eq!(t.judge(&key(1, 0), 1), KeyVerdict::Forgotten);
        assert_eq!(t.judge(&key(1, 1), 1), KeyVerdict::Duplicate(vec![1]));
        // Counters of the source's future are still new.
        assert_eq!(
            t.judge(&key(1, REMEMBERED_KEYS as u64 + 1), 1),
            KeyVerdict::New
        );
    }

    #[test]
    fn keys_are_forgotten_after_their_time_and_idle_sources_with_them() {
        let mut t = PublishKeys::default();
        t.record(key(1, 0), 1, 0, 1_000);
        t.record(key(1, 1), 1, 1, 1_000 + KEY_MEMORY_MS / 2);
        t.forget_before(1_000 + KEY_MEMORY_MS);
        assert_eq!(t.len(), 1);
        // The source is still seen: its forgotten key cannot be judged.
        assert_eq!(t.judge(&key(1, 0), 1), KeyVerdict::Forgotten);
        assert_eq!(t.judge(&key(1, 1), 1), KeyVerdict::Duplicate(vec![1]));
        t.forget_before(1_000 + 2 * KEY_MEMORY_MS);
        assert_eq!(t.len(), 0);
        assert!(t.sources.is_empty());
    }

    #[test]
    fn a_flood_of_sources_forgets_the_least_recently_seen_one() {
        let mut t = PublishKeys::default();
        for source in 0..=REMEMBERED_SOURCES as u64 {
            t.record(key(source, 0), 1, source, source);
        }
        assert_eq!(t.sources.len(), REMEMBERED_SOURCES);
        assert!(!t.sources.contains_key(&0));
        assert_eq!(t.judge(&key(1, 0), 1), KeyVerdict::Duplicate(vec![1]));
    }
}
