//! Stream publish: the work-queue validation minus the queue-full check.

use super::StreamLog;
use crate::admit::Identity;
use crate::command::{Outcome, ProducerSeq};
use crate::message::Message;
use crate::publish_keys::PublishKey;

impl StreamLog {
    pub(super) fn publish(
        &mut self,
        producer: Option<ProducerSeq>,
        key: Option<PublishKey>,
        messages: Vec<Message>,
    ) -> Outcome {
        let who = Identity {
            producer: producer.as_ref(),
            key,
        };
        if let Err(answer) = self.admission.admit(&self.options, who, &messages) {
            return answer;
        }
        let count = messages.len() as u64;
        let first = self.log.next_offset();
        for message in messages {
            self.log.push(message, self.clock_ms);
        }
        self.admission
            .record(&self.options, who, count, first, self.clock_ms);
        Outcome::Published {
            offsets: (first..self.log.next_offset()).collect(),
            duplicate: false,
        }
    }
}
