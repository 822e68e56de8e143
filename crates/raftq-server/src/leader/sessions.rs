//! Consumer sessions hosted on this node, by consumer id.
//!
//! The queue state machine decides which consumer gets which message; applying a
//! command yields `Deliver` effects, and this registry carries them to the gRPC
//! stream of the consumer if — and only if — that consumer lives here. On
//! followers and during log replay after a restart there is no such session, so
//! effects fall on the floor, which is exactly right.

use parking_lot::Mutex;
use std::collections::HashMap;

use raftq_queue::{ConsumerId, Delivery};
use tokio::sync::mpsc;

use crate::raft::types::GroupId;

struct Session {
    group: GroupId,
    tx: mpsc::UnboundedSender<Delivery>,
}

#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<ConsumerId, Session>>,
}

impl Sessions {
    /// Registers a consumer; deliveries for it arrive on the returned receiver. The
    /// channel is unbounded because the state machine already bounds it: never
    /// more than `2 * prefetch - 1` held messages per consumer
    /// (`api::consume_window`).
    pub fn register(
        &self,
        group: GroupId,
        consumer: ConsumerId,
    ) -> mpsc::UnboundedReceiver<Delivery> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(consumer, Session { group, tx });
        rx
    }

    pub fn remove(&self, consumer: ConsumerId) {
        self.lock().remove(&consumer);
    }

    pub fn deliver(&self, consumer: ConsumerId, delivery: Delivery) {
        if let Some(session) = self.lock().get(&consumer) {
            // A closed receiver means the stream is ending; its Detach returns the message.
            let _ = session.tx.send(delivery);
        }
    }

    /// Ends every session of a group (this node lost its leadership): dropping the
    /// senders makes each session stream finish with UNAVAILABLE.
    pub fn close_group(&self, group: GroupId) {
        self.lock().retain(|_, s| s.group != group);
    }

    pub fn count(&self, group: GroupId) -> usize {
        self.lock().values().filter(|s| s.group == group).count()
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<ConsumerId, Session>> {
        self.inner.lock()
    }
}
