//! Message storage and the ready set.
//!
//! Offsets are dense and consumed roughly in order, so messages live in fixed
//! chunks of `CHUNK` slots rather than one B-tree entry each: about 72 bytes per
//! message instead of ~150, and a chunk is freed as soon as its last message
//! leaves, so a single long-held message pins at most one chunk.
//!
//! The ready set is never materialised for messages that were never delivered:
//! dispatch takes the lowest ready offset, and only ready messages are expired or
//! dropped, always the lowest first. So the never-delivered messages are exactly
//! the dense range `fresh_from..next_offset`, and only messages returned by a
//! consumer need an explicit set. Every returned offset is below `fresh_from`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::message::{Message, Offset};

const CHUNK: u64 = 64;

/// A message with the bookkeeping every replica must agree on.
///
/// Headers are boxed and absent when empty: most messages carry none, and an
/// inline map would cost 16 bytes more per slot (a million-message backlog
/// pays that a million times).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    payload: bytes::Bytes,
    // The box is the point: 8 bytes in the slot instead of the map's 24.
    #[allow(clippy::box_collection)]
    headers: Option<Box<BTreeMap<String, String>>>,
    pub(crate) publish_time_ms: u64,
    pub(crate) delivery_count: u32,
}

impl Stored {
    pub(crate) fn new(message: Message, publish_time_ms: u64) -> Self {
        Self {
            payload: message.payload,
            headers: (!message.headers.is_empty()).then(|| Box::new(message.headers)),
            publish_time_ms,
            delivery_count: 0,
        }
    }

    /// The message as published (a cheap clone of the payload).
    pub(crate) fn message(&self) -> Message {
        Message {
            payload: self.payload.clone(),
            headers: self.headers.as_deref().cloned().unwrap_or_default(),
        }
    }

    pub(crate) fn into_message(self) -> Message {
        Message {
            payload: self.payload,
            headers: self.headers.map(|h| *h).unwrap_or_default(),
        }
    }

    /// Payload length, as [`Message::size`].
    pub(crate) fn size(&self) -> u64 {
        self.payload.len() as u64
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Chunk {
    live: u32,
    /// Slot `i` holds offset `key * CHUNK + i`; grows by push as offsets are assigned.
    slots: Vec<Option<Stored>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Store {
    chunks: BTreeMap<u64, Chunk>,
    next_offset: Offset,
    fresh_from: Offset,
    returned: BTreeSet<Offset>,
    len: u64,
    bytes: u64,
}

fn locate(offset: Offset) -> (u64, usize) {
    // The remainder is below CHUNK, so the cast cannot truncate.
    (offset / CHUNK, (offset % CHUNK) as usize)
}

impl Store {
    pub(crate) fn next_offset(&self) -> Offset {
        self.next_offset
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn ready(&self) -> u64 {
        self.returned.len() as u64 + (self.next_offset - self.fresh_from)
    }

    /// Stores a never-delivered message at the next offset.
    pub(crate) fn append(&mut self, stored: Stored) -> Offset {
        let offset = self.next_offset;
        let (key, slot) = locate(offset);
        self.len += 1;
        self.bytes += stored.size();
        let chunk = self.chunks.entry(key).or_default();
        if chunk.slots.capacity() == 0 {
            chunk.slots.reserve_exact(CHUNK as usize);
        }
        // A chunk emptied and freed while its tail was still being filled comes
        // back with holes for the offsets that already left.
        chunk.slots.resize(slot, None);
        chunk.slots.push(Some(stored));
        chunk.live += 1;
        self.next_offset += 1;
        offset
    }

    pub(crate) fn get(&self, offset: Offset) -> Option<&Stored> {
        let (key, slot) = locate(offset);
        self.chunks.get(&key)?.slots.get(slot)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, offset: Offset) -> Option<&mut Stored> {
        let (key, slot) = locate(offset);
        self.chunks.get_mut(&key)?.slots.get_mut(slot)?.as_mut()
    }

    fn remove(&mut self, offset: Offset) -> Option<Stored> {
        let (key, slot) = locate(offset);
        let chunk = self.chunks.get_mut(&key)?;
        let stored = chunk.slots.get_mut(slot)?.take()?;
        chunk.live -= 1;
        if chunk.live == 0 {
            self.chunks.remove(&key);
        }
        self.len -= 1;
        self.bytes -= stored.size();
        Some(stored)
    }

    /// The ready message dispatch would take next: returned ones first, as they
    /// are older than anything never delivered.
    pub(crate) fn lowest_ready(&self) -> Option<(Offset, &Stored)> {
        let offset = match self.returned.first() {
            Some(&offset) => offset,
            None if self.fresh_from < self.next_offset => self.fresh_from,
            None => return None,
        };
        self.get(offset).map(|stored| (offset, stored))
    }

    /// Marks the lowest ready message as delivered.
    pub(crate) fn take_lowest_ready(&mut self) -> Option<(Offset, &Stored)> {
        let offset = self.pop_lowest_ready()?;
        self.get(offset).map(|stored| (offset, stored))
    }

    /// Removes the lowest ready message (expiry, drop-head).
    pub(crate) fn remove_lowest_ready(&mut self) -> Option<(Offset, Stored)> {
        let offset = self.pop_lowest_ready()?;
        self.remove(offset).map(|stored| (offset, stored))
    }

    fn pop_lowest_ready(&mut self) -> Option<Offset> {
        if let Some(offset) = self.returned.pop_first() {
            return Some(offset);
        }
        if self.fresh_from < self.next_offset {
            self.fresh_from += 1;
            return Some(self.fresh_from - 1);
        }
        None
    }

    /// Removes a delivered (not ready) message: acked or dead-lettered.
    pub(crate) fn remove_held(&mut self, offset: Offset) -> Option<Stored> {
        if offset >= self.fresh_from || self.returned.contains(&offset) {
            return None;
        }
        self.remove(offset)
    }

    /// Makes a delivered message ready again.
    pub(crate) fn return_held(&mut self, offset: Offset) {
        if offset < self.fresh_from && self.get(offset).is_some() {
            self.returned.insert(offset);
        }
    }

    /// Stored messages (ready or held) from `from` on, ascending.
    pub(crate) fn iter_from(&self, from: Offset) -> impl Iterator<Item = (Offset, &Stored)> {
        let (first_key, _) = locate(from);
        self.chunks
            .range(first_key..)
            .flat_map(|(key, chunk)| {
                let base = key * CHUNK;
                chunk
                    .slots
                    .iter()
                    .zip(base..)
                    .filter_map(|(slot, offset)| slot.as_ref().map(|s| (offset, s)))
            })
            .filter(move |(offset, _)| *offset >= from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Stored {
        Stored::new(Message::new("m"), 0)
    }

    #[test]
    fn a_slot_costs_no_more_than_the_message_and_its_counters() {
        assert!(std::mem::size_of::<Option<Stored>>() <= 56);
    }

    #[test]
    fn a_long_held_message_pins_a_single_chunk() {
        let mut store = Store::default();
        for _ in 0..10 * CHUNK {
            store.append(stored());
        }
        while store.take_lowest_ready().is_some() {}
        for offset in 1..10 * CHUNK {
            assert!(store.remove_held(offset).is_some());
        }
        assert_eq!(store.chunks.len(), 1);
        assert_eq!((store.len(), store.ready(), store.bytes()), (1, 0, 1));
    }

    #[test]
    fn an_emptied_tail_chunk_comes_back_with_holes() {
        let mut store = Store::default();
        store.append(stored());
        store.remove_lowest_ready();
        assert!(store.chunks.is_empty());
        assert_eq!(store.append(stored()), 1);
        assert!(store.get(0).is_none());
        assert_eq!(store.lowest_ready().map(|(o, _)| o), Some(1));
        assert_eq!(
            store.iter_from(0).map(|(o, _)| o).collect::<Vec<_>>(),
            vec![1]
        );
    }

    #[test]
    fn returned_messages_are_ready_before_never_delivered_ones() {
        let mut store = Store::default();
        for _ in 0..3 {
            store.append(stored());
        }
        store.take_lowest_ready();
        store.take_lowest_ready();
        store.return_held(1);
        store.return_held(0);
        let order: Vec<Offset> =
            std::iter::from_fn(|| store.take_lowest_ready().map(|(o, _)| o)).collect();
        assert_eq!(order, vec![0, 1, 2]);
        assert!(store.remove_held(5).is_none(), "never stored");
    }
}
