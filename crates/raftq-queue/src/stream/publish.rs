//! Stream publish: the work-queue validation minus the queue-full check.

use super::StreamLog;
use crate::command::{Outcome, ProducerSeq, PublishError};
use crate::dedup::Verdict;
use crate::message::Message;

impl StreamLog {
    pub(super) fn publish(
        &mut self,
        producer: Option<ProducerSeq>,
        messages: Vec<Message>,
    ) -> Outcome {
        let rejected = Outcome::PublishRejected;
        if messages.is_empty() {
            return rejected(PublishError::EmptyBatch);
        }
        let max = self.options.max_message_bytes;
        if let Some(m) = messages.iter().find(|m| m.size() > max) {
            return rejected(PublishError::MessageTooLarge {
                size: m.size(),
                max,
            });
        }
        let count = messages.len() as u64;
        if let Some(p) = &producer {
            match self.producers.judge(p, count) {
                Verdict::New => {}
                Verdict::Duplicate(offsets) => {
                    self.producers
                        .touch(&p.producer_id, self.options.dedup_window);
                    return Outcome::Published {
                        offsets,
                        duplicate: true,
                    };
                }
                Verdict::Gap { expected } => {
                    return rejected(PublishError::SequenceGap {
                        producer_id: p.producer_id.clone(),
                        expected,
                        got: p.sequence,
                    })
                }
            }
        }
        let first = self.log.next_offset();
        for message in messages {
            self.log.push(message, self.clock_ms);
        }
        if let Some(p) = &producer {
            self.producers
                .record(p, count, first, self.options.dedup_window);
        }
        Outcome::Published {
            offsets: (first..self.log.next_offset()).collect(),
            duplicate: false,
        }
    }
}
