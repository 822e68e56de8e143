//! Fast failover when a leader's process dies. Its peers learn at once (their
//! own Raft traffic to it is refused), but openraft 0.9 would still wait for
//! the leader lease plus a full election timeout before any follower stands.
//! Here a follower of each group the dead node led stands as soon as the lease
//! has run out, and only one does at a time (ranked by node id), so the vote
//! is not split. Safety does not depend on any of this: it only moves an
//! election earlier, and a wrong guess costs one election.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use crate::node::Node;
use crate::raft::types::NodeId;

/// Between the followers' turns to stand, in rank order: long enough for the
/// first one's election (a vote round trip and an fsync) to be heard, so the
/// next does not depose it with a needless term.
const STAGGER: Duration = Duration::from_millis(150);
/// Past the lease, for clock jitter between our view and the voters'.
const LEASE_SLACK: Duration = Duration::from_millis(20);

pub async fn run(node: Arc<Node>) {
    let handling: Arc<Mutex<HashSet<NodeId>>> = Arc::default();
    loop {
        for dead in node.liveness.next_refused().await {
            let first = handling.lock().insert(dead);
            if first {
                let (node, handling) = (node.clone(), handling.clone());
                tokio::spawn(async move {
                    stand_for_groups_led_by(&node, dead).await;
                    handling.lock().remove(&dead);
                });
            }
        }
    }
}

/// Our rank among the voters that remain when `dead` is gone, lowest id first.
pub fn rank_among_survivors(voters: &[NodeId], me: NodeId, dead: NodeId) -> Option<usize> {
    let mut alive: Vec<NodeId> = voters.iter().copied().filter(|v| *v != dead).collect();
    alive.sort_unstable();
    alive.iter().position(|v| *v == me)
}

async fn stand_for_groups_led_by(node: &Arc<Node>, dead: NodeId) {
    if node.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let lease = Duration::from_millis(node.config.election_timeout_max_ms);
    let heard = node.liveness.since(dead).unwrap_or(lease);
    tokio::time::sleep(lease.saturating_sub(heard) + LEASE_SLACK).await;
    // Heard from it since: it was a blip (or it restarted), not a death.
    if node.liveness.since(dead).is_some_and(|d| d < heard) {
        return;
    }
    let mut tasks = Vec::new();
    for group in node.groups() {
        if group.current_leader() != Some(dead) {
            continue;
        }
        let Some(rank) = rank_among_survivors(&group.voter_ids(), node.id, dead) else {
            continue;
        };
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(STAGGER * rank as u32).await;
            if group.current_leader() == Some(dead) {
                tracing::info!(
                    group = group.id,
                    "leader {dead} refuses connections: standing for election"
                );
                group.raft.runtime_config().tick(true);
                group.raft.runtime_config().elect(true);
                let _ = group.raft.trigger().elect().await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survivors_stand_in_id_order() {
        assert_eq!(rank_among_survivors(&[3, 1, 2], 2, 1), Some(0));
        assert_eq!(rank_among_survivors(&[3, 1, 2], 3, 1), Some(1));
        assert_eq!(rank_among_survivors(&[1, 2, 3], 1, 1), None);
        assert_eq!(rank_among_survivors(&[1, 2], 5, 1), None, "not a voter");
    }
}
