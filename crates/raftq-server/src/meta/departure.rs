//! Whether a replica the catalog moved off this node may be deleted.
//!
//! Its data counts for the group's quorum until the group has committed a
//! membership without it. A replica that was up during the move sees that in
//! its own log. One that was down never does (nobody replicates to a
//! non-member), so it asks the queue's current replicas.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::meta::catalog::QueueDef;
use crate::node::{Group, Node};
use crate::raft::transport::control::{self, ControlRpc};
use crate::raft::transport::wire;
use crate::raft::types::NodeId;

const ASK_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Counted {
    /// The group's membership, as this replica knows it, lists the node.
    Member,
    /// A committed membership of the group leaves the node out: membership
    /// only moves forward from there, so the node is out for good.
    Gone,
    /// This replica cannot tell (not running the group, or its latest
    /// membership is not committed yet).
    Unknown,
}

/// What `group`'s replica here knows of `node`'s place in the group.
pub fn counted(group: &Group, node: NodeId) -> Counted {
    let metrics = group.raft.metrics();
    let m = metrics.borrow();
    let config = &m.membership_config;
    if config.membership().nodes().any(|(id, _)| *id == node) {
        return Counted::Member;
    }
    // Applied implies committed.
    let committed = match (config.log_id(), m.last_applied) {
        (Some(at), Some(applied)) => at.index <= applied.index,
        _ => false,
    };
    if committed {
        Counted::Gone
    } else {
        Counted::Unknown
    }
}

/// True once this node's replica of `def`'s group may be deleted.
pub async fn has_left(node: &Node, group: &Group, def: &QueueDef) -> bool {
    if counted(group, node.id()) == Counted::Gone {
        return true;
    }
    for &peer in def.replicas.iter().filter(|r| **r != node.id()) {
        let Some(addr) = node.node_addr(peer) else {
            continue;
        };
        let reply = control::call(
            node.pool(),
            &addr,
            ControlRpc::GroupMembership,
            (def.group, node.id(), peer),
            Bytes::new(),
            ASK_TIMEOUT,
        )
        .await;
        match reply.map(|r| wire::decode::<Counted>(&r)) {
            Ok(Ok(Counted::Gone)) => return true,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(peer, "unreadable group membership answer: {e}"),
            Err(e) => tracing::debug!(peer, "no group membership answer: {}", e.message()),
        }
    }
    false
}
