//! Stream publish: the work-queue validation minus the queue-full check.

use super::StreamLog;
use crate::admit::admit;
use crate::command::{Outcome, ProducerSeq};
use crate::message::Message;

impl StreamLog {
    pub(super) fn publish(
        &mut self,
        producer: Option<ProducerSeq>,
        messages: Vec<Message>,
    ) -> Outcome {
        if let Err(answer) = admit(
            &mut self.producers,
            &self.options,
            producer.as_ref(),
            &messages,
        ) {
            return answer;
        }
        let count = messages.len() as u64;
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
