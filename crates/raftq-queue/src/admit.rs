//! The checks every queue kind makes of a publish before its own limits:
//! empty batch, oversize message, idempotent-producer duplicate or gap.

use crate::command::{Outcome, ProducerSeq, PublishError};
use crate::dedup::{Producers, Verdict};
use crate::message::Message;
use crate::options::QueueOptions;

/// `Ok` when the batch is new and may be stored; otherwise the outcome to
/// answer at once (a refusal, or a duplicate with its original offsets, which
/// keeps the producer recently used).
pub(crate) fn admit(
    producers: &mut Producers,
    options: &QueueOptions,
    producer: Option<&ProducerSeq>,
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
    let Some(p) = producer else {
        return Ok(());
    };
    match producers.judge(p, messages.len() as u64) {
        Verdict::New => Ok(()),
        Verdict::Duplicate(offsets) => {
            producers.touch(&p.producer_id, options.dedup_window);
            Err(Outcome::Published {
                offsets,
                duplicate: true,
            })
        }
        Verdict::Gap { expected } => Err(rejected(PublishError::SequenceGap {
            producer_id: p.producer_id.clone(),
            expected,
            got: p.sequence,
        })),
    }
}
