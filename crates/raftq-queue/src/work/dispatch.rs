//! Handing ready messages to consumers with credit.

use super::WorkQueue;
use crate::command::Effect;
use crate::message::Delivery;

impl WorkQueue {
    pub(super) fn dispatch(&mut self, effects: &mut Vec<Effect>) {
        let single_active = self.options.single_active_consumer;
        while self.store.ready() > 0 {
            let Some(index) = self.consumers.pick(single_active) else {
                break;
            };
            let Some((offset, stored)) = self.store.take_lowest_ready() else {
                break;
            };
            let delivery = Delivery {
                offset,
                message: stored.message(),
                delivery_count: stored.delivery_count,
                redelivered: stored.delivery_count > 0,
                publish_time_ms: stored.publish_time_ms,
            };
            if let Some(consumer) = self.consumers.hold(index, offset, self.clock_ms) {
                effects.push(Effect::Deliver { consumer, delivery });
            }
        }
    }
}
