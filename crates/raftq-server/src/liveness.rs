//! When this node last heard from each peer: the "up/down" of cluster status.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::raft::types::NodeId;

/// A peer is reported down after this long without any Raft traffic either way.
pub const DOWN_AFTER: Duration = Duration::from_secs(3);

#[derive(Default)]
pub struct Liveness {
    last_seen: Mutex<HashMap<NodeId, Instant>>,
}

impl Liveness {
    pub fn saw(&self, node: NodeId) {
        self.last_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node, Instant::now());
    }

    /// Time since we last heard from `node`, `None` if never.
    pub fn since(&self, node: NodeId) -> Option<Duration> {
        self.last_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node)
            .map(|t| t.elapsed())
    }
}
