//! Graceful shutdown: hand every group this node leads to an up-to-date follower
//! before exiting, so a rolling restart costs one election per group, not a
//! failure-detection timeout on top of it.
//!
//! openraft 0.9 has no leadership transfer, and its leader lease makes followers
//! refuse votes while they still hear from the leader. So the leader stops
//! proposing and heartbeating, and asks the follower with the most log to
//! campaign right when the lease has run out, instead of waiting for a random
//! election timeout (which can also split the vote).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raftq_proto::internal::raft_peer_client::RaftPeerClient;
use raftq_proto::internal::RaftRequest;

use crate::network::pool::Lane;
use crate::network::wire;
use crate::node::{Group, Node};

pub async fn hand_off_leadership(node: &Arc<Node>) {
    node.draining.store(true, Ordering::SeqCst);
    // Sessions hosted here end now, so their consumers resubscribe elsewhere.
    for group in node.groups() {
        node.sessions.close_group(group.id);
    }
    let lease = Duration::from_millis(node.config.election_timeout_max_ms + 50);
    let mut handed = Vec::new();
    for group in node.groups().into_iter().filter(|g| g.is_leader()) {
        group.raft.runtime_config().heartbeat(false);
        group.raft.runtime_config().elect(false);
        match best_follower(node, &group) {
            Some((follower, addr)) => {
                if let Err(e) = ask_to_campaign(node, &group, &addr, lease).await {
                    tracing::warn!(group = group.id, follower, "hand-off request failed: {e}");
                }
                handed.push(group);
            }
            None => tracing::warn!(group = group.id, "no follower to hand leadership to"),
        }
    }
    // Bounded: a follower that cannot win (say, no quorum) must not keep us alive.
    let deadline = Instant::now() + lease * 3;
    while Instant::now() < deadline && handed.iter().any(|g| g.current_leader() == Some(node.id)) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let moved = handed
        .iter()
        .filter(|g| g.current_leader() != Some(node.id))
        .count();
    tracing::info!(groups = handed.len(), moved, "leadership handed off");
}

/// The follower whose log matches ours furthest (ties: lowest id).
fn best_follower(node: &Node, group: &Group) -> Option<(u64, String)> {
    let metrics = group.raft.metrics().borrow().clone();
    let replication = metrics.replication?;
    let (id, _) = replication
        .iter()
        .filter(|(id, _)| **id != node.id)
        .max_by_key(|(id, matched)| (matched.map(|l| l.index), std::cmp::Reverse(**id)))?;
    Some((*id, group.member_addr(*id)?))
}

async fn ask_to_campaign(
    node: &Node,
    group: &Group,
    addr: &str,
    wait: Duration,
) -> Result<(), String> {
    let channel = node
        .pool
        .get(addr, Lane::Control)
        .map_err(|e| e.to_string())?;
    let payload = wire::encode(&(wait.as_millis() as u64)).map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(RaftRequest {
        group: group.id,
        from: node.id,
        payload,
        data: Default::default(),
    });
    request.set_timeout(Duration::from_secs(1));
    RaftPeerClient::new(channel)
        .campaign(request)
        .await
        .map(|_| ())
        .map_err(|s| s.message().to_string())
}
