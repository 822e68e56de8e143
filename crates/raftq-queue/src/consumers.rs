//! Attached consumers, what each holds, and who gets the next delivery.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::message::{ConsumerId, Offset};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Consumer {
    id: ConsumerId,
    /// Position in attach order; never reused, so the round-robin cursor stays
    /// meaningful when the consumer it points at detaches.
    attach_seq: u64,
    prefetch: u32,
    /// Held offset -> leader time of the delivery.
    held: BTreeMap<Offset, u64>,
}

impl Consumer {
    fn has_credit(&self) -> bool {
        self.held.len() < self.prefetch as usize
    }
}

/// Consumers in attach order. Their number is small (sessions), so lookups by id
/// scan a vector; holds are bounded by the sum of prefetches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Consumers {
    list: Vec<Consumer>,
    next_attach_seq: u64,
    /// `attach_seq` of the consumer that got the last delivery.
    last_served: u64,
    /// Every hold by (delivery time, offset), so ack timeouts are found oldest
    /// first without scanning.
    by_delivery: BTreeMap<(u64, Offset), ConsumerId>,
}

impl Consumers {
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn ids(&self) -> Vec<ConsumerId> {
        self.list.iter().map(|c| c.id).collect()
    }

    /// Attaches a consumer, or updates its prefetch if already attached (it
    /// keeps its place and what it holds).
    pub(crate) fn attach(&mut self, id: ConsumerId, prefetch: u32) {
        let prefetch = prefetch.max(1);
        if let Some(consumer) = self.list.iter_mut().find(|c| c.id == id) {
            consumer.prefetch = prefetch;
            return;
        }
        self.next_attach_seq += 1;
        self.list.push(Consumer {
            id,
            attach_seq: self.next_attach_seq,
            prefetch,
            held: BTreeMap::new(),
        });
    }

    /// Removes a consumer; returns what it held, ascending, or `None` if unknown.
    pub(crate) fn detach(&mut self, id: ConsumerId) -> Option<Vec<Offset>> {
        let index = self.list.iter().position(|c| c.id == id)?;
        let consumer = self.list.remove(index);
        for (offset, delivered_at) in &consumer.held {
            self.by_delivery.remove(&(*delivered_at, *offset));
        }
        Some(consumer.held.into_keys().collect())
    }

    /// Removes every consumer; returns everything held, ascending.
    pub(crate) fn reset(&mut self) -> Vec<Offset> {
        self.list.clear();
        let mut held: Vec<Offset> = std::mem::take(&mut self.by_delivery)
            .into_keys()
            .map(|(_, offset)| offset)
            .collect();
        held.sort_unstable();
        held
    }

    /// Ends the hold of `offset` by `id`; false if that consumer does not hold it.
    pub(crate) fn release(&mut self, id: ConsumerId, offset: Offset) -> bool {
        let Some(consumer) = self.list.iter_mut().find(|c| c.id == id) else {
            return false;
        };
        let Some(delivered_at) = consumer.held.remove(&offset) else {
            return false;
        };
        self.by_delivery.remove(&(delivered_at, offset));
        true
    }

    /// Ends every hold delivered at or before `limit`; returns them ascending.
    pub(crate) fn release_delivered_until(&mut self, limit: u64) -> Vec<Offset> {
        let mut expired = Vec::new();
        while let Some(entry) = self.by_delivery.first_entry() {
            if entry.key().0 > limit {
                break;
            }
            let ((_, offset), id) = entry.remove_entry();
            if let Some(consumer) = self.list.iter_mut().find(|c| c.id == id) {
                consumer.held.remove(&offset);
            }
            expired.push(offset);
        }
        expired.sort_unstable();
        expired
    }

    /// The consumer the next delivery goes to, if any has credit: round-robin
    /// in attach order after the last one served, or only the earliest-attached
    /// consumer under single-active-consumer.
    pub(crate) fn pick(&self, single_active: bool) -> Option<usize> {
        if single_active {
            return self.list.first().filter(|c| c.has_credit()).map(|_| 0);
        }
        let start = self
            .list
            .partition_point(|c| c.attach_seq <= self.last_served);
        (start..self.list.len())
            .chain(0..start)
            .find(|&i| self.list.get(i).is_some_and(Consumer::has_credit))
    }

    /// Records a delivery to the consumer at `index` (from `pick`).
    pub(crate) fn hold(&mut self, index: usize, offset: Offset, now_ms: u64) -> Option<ConsumerId> {
        let consumer = self.list.get_mut(index)?;
        consumer.held.insert(offset, now_ms);
        self.last_served = consumer.attach_seq;
        self.by_delivery.insert((now_ms, offset), consumer.id);
        Some(consumer.id)
    }

    /// Delivery time of the oldest hold.
    pub(crate) fn oldest_delivery(&self) -> Option<u64> {
        self.by_delivery.keys().next().map(|(at, _)| *at)
    }

    pub(crate) fn held_by(&self, id: ConsumerId) -> Vec<Offset> {
        self.list
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.held.keys().copied().collect())
            .unwrap_or_default()
    }

    pub(crate) fn held(&self) -> u64 {
        self.by_delivery.len() as u64
    }
}
