//! Keys this node gives the publish requests it accepts without producer id,
//! so that re-sending one (after its forward failed) stores it once.

use std::sync::atomic::{AtomicU64, Ordering};

use raftq_proto::v1::PublishKey;

/// Random per start: a restarted node counts from 0 again under a new source,
/// so its keys never meet those of its previous life.
pub struct KeySource {
    source: u64,
    next: AtomicU64,
}

impl KeySource {
    pub fn new() -> Self {
        Self {
            source: rand::random(),
            next: AtomicU64::new(0),
        }
    }

    pub fn next_key(&self) -> PublishKey {
        PublishKey {
            source: self.source,
            counter: self.next.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl Default for KeySource {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_start_are_distinct_and_starts_differ() {
        let a = KeySource::new();
        let (first, second) = (a.next_key(), a.next_key());
        assert_eq!(first.source, second.source);
        assert_ne!(first.counter, second.counter);
        assert_ne!(KeySource::new().source, a.source);
    }
}
