//! When this node last heard from each peer: the "up/down" of cluster status.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::raft::types::NodeId;

/// A peer is reported down after this long without any Raft traffic either way.
pub const DOWN_AFTER: Duration = Duration::from_secs(3);

#[derive(Default)]
pub struct Liveness {
    last_seen: Mutex<HashMap<NodeId, Instant>>,
    /// Peers whose connection was refused or reset since last taken: their
    /// process is gone (a paused or cut-off one would time out instead).
    refused: Mutex<HashSet<NodeId>>,
    refusals: tokio::sync::Notify,
}

impl Liveness {
    pub fn saw(&self, node: NodeId) {
        self.last_seen.lock().insert(node, Instant::now());
    }

    /// Records that `node` refused a connection (or reset one).
    pub fn refused(&self, node: NodeId) {
        let new = self.refused.lock().insert(node);
        if new {
            self.refusals.notify_one();
        }
    }

    /// Waits until some peer refused a connection, and takes those peers.
    pub async fn next_refused(&self) -> Vec<NodeId> {
        loop {
            let taken: Vec<NodeId> = self.refused.lock().drain().collect();
            if !taken.is_empty() {
                return taken;
            }
            self.refusals.notified().await;
        }
    }

    /// Time since we last heard from `node`, `None` if never.
    pub fn since(&self, node: NodeId) -> Option<Duration> {
        self.last_seen.lock().get(&node).map(|t| t.elapsed())
    }
}
