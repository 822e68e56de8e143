//! Idempotent producers: a retried publish is stored once and answers with the
//! original offsets.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::command::ProducerSeq;
use crate::message::Offset;

/// Batches remembered per producer. A batch below the producer's last sequence
/// that is not among them is refused as out of order rather than answered as a
/// duplicate: it may never have been stored (a later batch of a pipelining
/// producer can arrive first), and "confirmed" must never be said of a message
/// that is not stored. A well-behaved producer has one batch in flight, so its
/// retries are always of the last batch.
pub const BATCHES_PER_PRODUCER: usize = 4096;

/// What a producer's publish is, judged against what was stored before.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Next in sequence (or a producer we do not remember): store it.
    New,
    /// Already stored, with its original offsets.
    Duplicate(Vec<Offset>),
    /// Neither next nor a complete retry: refuse so the producer resends in order.
    Gap { expected: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Batch {
    first_seq: u64,
    len: u64,
    first_offset: Offset,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Producer {
    last_seq: u64,
    /// Ascending by `first_seq`, because only in-order batches are recorded.
    batches: VecDeque<Batch>,
    last_use: u64,
}

/// The producer table, bounded to `dedup_window` producers.
///
/// Recency is a use counter bumped by every accepted publish (new or duplicate),
/// not wall time, so every replica evicts the same producer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Producers {
    by_id: BTreeMap<String, Producer>,
    by_last_use: BTreeMap<u64, String>,
    uses: u64,
}

impl Producers {
    /// Judges a batch of `len >= 1` messages without changing anything, so a
    /// publish refused later (queue full) leaves the table as it was.
    pub(crate) fn judge(&self, seq: &ProducerSeq, len: u64) -> Verdict {
        let first = seq.sequence;
        let known = self.by_id.get(&seq.producer_id);
        let Some(last) = first.checked_add(len.saturating_sub(1)) else {
            // The batch would run past u64::MAX: no start can be valid for it
            // beyond this one.
            let expected = known.map_or(u64::MAX - len.saturating_sub(1), |p| {
                p.last_seq.saturating_add(1)
            });
            return Verdict::Gap { expected };
        };
        let Some(producer) = known else {
            return Verdict::New;
        };
        if last <= producer.last_seq {
            let remembered = producer
                .batches
                .binary_search_by_key(&first, |b| b.first_seq)
                .ok()
                .and_then(|i| producer.batches.get(i))
                .filter(|b| b.len == len)
                .map(|b| (b.first_offset..b.first_offset.saturating_add(b.len)).collect());
            return match remembered {
                Some(offsets) => Verdict::Duplicate(offsets),
                None => Verdict::Gap {
                    expected: producer.last_seq.saturating_add(1),
                },
            };
        }
        match producer.last_seq.checked_add(1) {
            Some(next) if next == first => Verdict::New,
            next => Verdict::Gap {
                expected: next.unwrap_or(u64::MAX),
            },
        }
    }

    /// Records a batch judged `New` and stored at `first_offset`.
    pub(crate) fn record(
        &mut self,
        seq: &ProducerSeq,
        len: u64,
        first_offset: Offset,
        window: u32,
    ) {
        let batch = Batch {
            first_seq: seq.sequence,
            len,
            first_offset,
        };
        let last_seq = seq.sequence.saturating_add(len.saturating_sub(1));
        match self.by_id.get_mut(&seq.producer_id) {
            Some(producer) => {
                producer.last_seq = last_seq;
                producer.batches.push_back(batch);
                if producer.batches.len() > BATCHES_PER_PRODUCER {
                    producer.batches.pop_front();
                }
            }
            None => {
                self.by_id.insert(
                    seq.producer_id.clone(),
                    Producer {
                        last_seq,
                        batches: VecDeque::from([batch]),
                        last_use: 0,
                    },
                );
            }
        }
        self.touch(&seq.producer_id, window);
    }

    /// Marks the producer as just used (a duplicate keeps it alive too).
    pub(crate) fn touch(&mut self, producer_id: &str, window: u32) {
        let Some(producer) = self.by_id.get_mut(producer_id) else {
            return;
        };
        self.by_last_use.remove(&producer.last_use);
        self.uses += 1;
        producer.last_use = self.uses;
        self.by_last_use.insert(self.uses, producer_id.to_string());
        while self.by_id.len() > window as usize {
            let Some((_, evicted)) = self.by_last_use.pop_first() else {
                break;
            };
            self.by_id.remove(&evicted);
        }
    }

    /// Number of remembered producers.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(id: &str, sequence: u64) -> ProducerSeq {
        ProducerSeq {
            producer_id: id.into(),
            sequence,
        }
    }

    #[test]
    fn unknown_producer_may_start_anywhere() {
        assert_eq!(Producers::default().judge(&seq("p", 77), 3), Verdict::New);
    }

    #[test]
    fn exact_retry_gets_original_offsets_and_other_shapes_are_refused() {
        let mut t = Producers::default();
        t.record(&seq("p", 0), 3, 10, 8);
        t.record(&seq("p", 3), 2, 20, 8);
        assert_eq!(
            t.judge(&seq("p", 0), 3),
            Verdict::Duplicate(vec![10, 11, 12])
        );
        assert_eq!(t.judge(&seq("p", 3), 2), Verdict::Duplicate(vec![20, 21]));
        assert_eq!(t.judge(&seq("p", 1), 2), Verdict::Gap { expected: 5 });
        assert_eq!(t.judge(&seq("p", 5), 1), Verdict::New);
        assert_eq!(t.judge(&seq("p", 4), 2), Verdict::Gap { expected: 5 });
        assert_eq!(t.judge(&seq("p", 6), 1), Verdict::Gap { expected: 5 });
    }

    #[test]
    fn batches_older_than_the_window_are_refused_not_confirmed() {
        let mut t = Producers::default();
        for i in 0..=BATCHES_PER_PRODUCER as u64 {
            t.record(&seq("p", i), 1, i, 8);
        }
        let expected = BATCHES_PER_PRODUCER as u64 + 1;
        assert_eq!(t.judge(&seq("p", 0), 1), Verdict::Gap { expected });
        assert_eq!(t.judge(&seq("p", 1), 1), Verdict::Duplicate(vec![1]));
    }

    #[test]
    fn least_recently_used_producer_is_evicted() {
        let mut t = Producers::default();
        t.record(&seq("a", 0), 1, 0, 2);
        t.record(&seq("b", 0), 1, 1, 2);
        t.touch("a", 2);
        t.record(&seq("c", 0), 1, 2, 2);
        assert_eq!(t.len(), 2);
        // "b" was forgotten, so any sequence is accepted from it again.
        assert_eq!(t.judge(&seq("b", 0), 1), Verdict::New);
        assert_eq!(t.judge(&seq("a", 0), 1), Verdict::Duplicate(vec![0]));
    }

    #[test]
    fn sequences_near_the_end_of_u64_never_overflow() {
        let mut t = Producers::default();
        assert!(matches!(
            t.judge(&seq("p", u64::MAX), 2),
            Verdict::Gap { .. }
        ));
        t.record(&seq("p", u64::MAX), 1, 0, 8);
        assert_eq!(t.judge(&seq("p", u64::MAX), 1), Verdict::Duplicate(vec![0]));
        assert_eq!(
            t.judge(&seq("p", 0), 1),
            Verdict::Gap { expected: u64::MAX }
        );
    }
}
