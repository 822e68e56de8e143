//! The checks every queue kind makes of a publish before its own limits:
//! empty batch, oversize message, then the duplicate or gap of an idempotent
//! producer, or the duplicate of a keyed request.

use serde::{Deserialize, Serialize};

use crate::command::{Outcome, ProducerSeq, PublishError};
use crate::dedup::{Producers, Verdict};
use crate::message::{Message, Offset};
use crate::options::QueueOptions;
use crate::publish_keys::{KeyVerdict, PublishKey, PublishKeys};

/// Who a publish says it is: an idempotent producer's sequence, else the key
/// the accepting node gave it, else nobody (stored as often as it arrives).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Identity<'a> {
    pub(crate) producer: Option<&'a ProducerSeq>,
    pub(crate) key: Option<PublishKey>,
}

/// What a queue remembers of past publishes to answer their retries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Admission {
    pub(crate) producers: Producers,
    pub(crate) keys: PublishKeys,
}

impl Admission {
    /// `Ok` when the batch is new and may be stored; otherwise the outcome to
    /// answer at once (a refusal, or a duplicate with its original offsets,
    /// which keeps the producer recently used).
    pub(crate) fn admit(
        &mut self,
        options: &QueueOptions,
        who: Identity<'_>,
        messages: &[Message],
    ) -> Result<(), Outcome> {
        let rejected = Outcome::PublishRejected;
        if messages.is_empty() {
            return Err(rejected(PublishError::EmptyBatch));
        }
        let max = options.max_message_bytes;
        if let Some(m) = messages.iter().find(|m| m.size() > max) {
            return Err(rejected(PublishError::MessageTooLarge {
                size: m.size(),
                max,
            }));
        }
        let len = messages.len() as u64;
        let duplicate = |offsets| Outcome::Published {
            offsets,
            duplicate: true,
        };
        if let Some(p) = who.producer {
            return match self.producers.judge(p, len) {
                Verdict::New => Ok(()),
                Verdict::Duplicate(offsets) => {
                    self.producers.touch(&p.producer_id, options.dedup_window);
                    Err(duplicate(offsets))
                }
                Verdict::Gap { expected } => Err(rejected(PublishError::SequenceGap {
                    producer_id: p.producer_id.clone(),
                    expected,
                    got: p.sequence,
                })),
            };
        }
        let Some(key) = who.key else {
            return Ok(());
        };
        match self.keys.judge(&key, len) {
            KeyVerdict::New => Ok(()),
            KeyVerdict::Duplicate(offsets) => Err(duplicate(offsets)),
            KeyVerdict::Conflict => Err(rejected(PublishError::KeyConflict)),
            KeyVerdict::Forgotten => Err(rejected(PublishError::KeyForgotten)),
        }
    }

    /// Records a batch `admit` let through, stored from `first` at `now_ms`.
    pub(crate) fn record(
        &mut self,
        options: &QueueOptions,
        who: Identity<'_>,
        len: u64,
        first: Offset,
        now_ms: u64,
    ) {
        if let Some(p) = who.producer {
            self.producers.record(p, len, first, options.dedup_window);
        } else if let Some(key) = who.key {
            self.keys.record(key, len, first, now_ms);
        }
    }
}
