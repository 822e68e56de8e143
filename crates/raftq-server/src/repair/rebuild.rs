//! The damaged replica's side: asks the group's leader to let it go, then
//! discards its data so the group starts afresh here as a learner.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::ids::GroupId;
use crate::node::Node;
use crate::raft::transport::control::{self, ControlRpc};
use crate::raft::transport::wire;

/// A membership change takes two commits; leave it time.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Runs until the damaged replica of `group` is discarded (then the
/// reconciler starts it afresh) or the queue is gone.
pub async fn run(node: Arc<Node>, group: GroupId) {
    let mut told = false;
    loop {
        let def = node.with_catalog(|c| c.by_group(group).cloned()).flatten();
        let Some(def) = def else {
            let deleted = node
                .with_catalog(|c| c.has_seen_group(group))
                .unwrap_or(false);
            if deleted {
                tracing::info!(
                    group,
                    "the queue of a damaged replica was deleted: removing its data"
                );
                discard(&node, group);
                node.damage().repaired(group);
                return;
            }
            tokio::time::sleep(RETRY_EVERY).await;
            continue;
        };
        let others: Vec<_> = def
            .replicas
            .iter()
            .filter(|r| **r != node.id())
            .copied()
            .collect();
        if others.is_empty() {
            if !told {
                tracing::error!(
                    queue = %def.name,
                    group,
                    "the damaged replica is the queue's only one: nothing to rebuild it from; \
                     add a replica elsewhere or delete the queue"
                );
                told = true;
            }
            tokio::time::sleep(RETRY_EVERY * 10).await;
            continue;
        }
        for peer in others {
            let Some(addr) = node.node_addr(peer) else {
                continue;
            };
            let answer = control::call(
                node.pool(),
                &addr,
                ControlRpc::ReleaseDamaged,
                (group, node.id(), peer),
                Bytes::new(),
                RELEASE_TIMEOUT,
            )
            .await;
            match answer.map(|b| wire::decode::<Result<u64, String>>(&b)) {
                Ok(Ok(Ok(released_at))) => {
                    tracing::warn!(
                        queue = %def.name,
                        group,
                        leader = peer,
                        "the group no longer counts this damaged replica: discarding it and \
                         catching up from the leader as a learner"
                    );
                    if discard(&node, group) {
                        node.damage().rebuilding(group, released_at);
                        node.metrics().replicas_rebuilt.inc();
                        return;
                    }
                }
                Ok(Ok(Err(why))) => tracing::debug!(group, peer, "release refused: {why}"),
                Ok(Err(e)) => tracing::debug!(group, peer, "unreadable release answer: {e}"),
                Err(e) => tracing::debug!(group, peer, "no release answer: {}", e.message()),
            }
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// Drops the replica's data, and makes sure this node never initializes the
/// group again (a fresh replica of an existing group only ever joins it).
fn discard(node: &Node, group: GroupId) -> bool {
    let store = node.store();
    match store
        .never_initialize(group)
        .and_then(|()| store.remove_group(group))
    {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(group, "cannot discard the damaged replica's data: {e}");
            false
        }
    }
}
