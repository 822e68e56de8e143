//! The leader of a queue group moves its Raft membership to the replica set
//! the catalog asks for, learner first: a new replica is added as a learner,
//! and only once it has caught up does the voter set change (openraft's joint
//! consensus), so the group never counts a replica that lacks the log and a
//! change never leaves fewer caught-up voters than a majority.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openraft::{BasicNode, ChangeMembers};
use tokio::task::JoinHandle;

use crate::ids::NodeId;
use crate::leader::joint::finish_joint_config;
use crate::node::{Group, Node};

/// A learner this close to the leader's last index is caught up: the rest
/// arrives within a heartbeat or two.
const CAUGHT_UP_WITHIN: u64 = 64;

/// One leader term's view of the moves of one group.
#[derive(Default)]
pub struct ReplicaMoves {
    /// The catalog's applied index when the group was last compared with it.
    seen_catalog: u64,
    /// Where the group's membership was then: a change made outside the
    /// catalog (a damaged replica let go, see `repair`) needs a step too.
    seen_membership: Option<u64>,
    in_progress: bool,
    running: Option<JoinHandle<bool>>,
}

impl ReplicaMoves {
    /// Compares the group with the catalog when the catalog changed or a move
    /// is under way, and takes the next step in its own task (a membership
    /// change waits for a quorum, which must not hold up the leader's upkeep).
    pub async fn step(&mut self, node: &Arc<Node>, group: &Arc<Group>) {
        if let Some(task) = &self.running {
            if !task.is_finished() {
                return;
            }
            if let Some(task) = self.running.take() {
                self.in_progress = task.await.unwrap_or(true);
            }
        }
        let applied = node
            .meta()
            .map(|m| m.shared.last_applied_index())
            .unwrap_or(0);
        let membership = group
            .raft
            .metrics()
            .borrow()
            .membership_config
            .log_id()
            .map(|l| l.index);
        if applied == self.seen_catalog && membership == self.seen_membership && !self.in_progress {
            return;
        }
        self.seen_catalog = applied;
        self.seen_membership = membership;
        let (node, group) = (node.clone(), group.clone());
        self.running = Some(tokio::spawn(async move { next_move(&node, &group).await }));
    }
}

/// One step towards the catalog's replica set; true while more steps remain.
async fn next_move(node: &Node, group: &Group) -> bool {
    let Some(def) = node
        .with_catalog(|c| c.by_group(group.id).cloned())
        .flatten()
    else {
        return false;
    };
    if finish_joint_config(group, &def.name).await {
        return true;
    }
    let desired: BTreeSet<NodeId> = def.replicas.iter().copied().collect();
    let (voters, members, last, matched) = {
        let metrics = group.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
        let matched: BTreeMap<NodeId, u64> = m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .filter_map(|(id, l)| Some((*id, l.as_ref()?.index)))
                    .collect()
            })
            .unwrap_or_default();
        (voters, members, m.last_log_index.unwrap_or(0), matched)
    };
    if voters == desired && members == desired {
        return false;
    }
    let queue = &def.name;
    let stale: BTreeSet<NodeId> = members
        .iter()
        .filter(|n| !voters.contains(n) && !desired.contains(n))
        .copied()
        .collect();
    if !stale.is_empty() {
        tracing::info!(%queue, ?stale, "dropping learners the catalog no longer wants");
        if let Err(e) = group
            .raft
            .change_membership(ChangeMembers::RemoveNodes(stale), false)
            .await
        {
            tracing::warn!(%queue, "dropping learners: {e}");
        }
        return true;
    }
    for new in desired.difference(&members) {
        let Some(addr) = node.node_addr(*new) else {
            tracing::warn!(%queue, node = new, "no address for the new replica yet");
            return true;
        };
        tracing::info!(%queue, node = new, "adding a replica: catching it up as a learner");
        if let Err(e) = group
            .raft
            .add_learner(*new, BasicNode::new(addr), false)
            .await
        {
            tracing::warn!(%queue, node = new, "adding a learner: {e}");
        }
    }
    let behind = desired
        .difference(&voters)
        .any(|n| matched.get(n).is_none_or(|m| m + CAUGHT_UP_WITHIN < last));
    if behind || !desired.is_subset(&members) {
        return true;
    }
    tracing::info!(%queue, ?desired, was = ?voters, "changing the group's voters");
    if let Err(e) = group
        .raft
        .change_membership(ChangeMembers::ReplaceAllVoters(desired), false)
        .await
    {
        tracing::warn!(%queue, "changing voters: {e}");
    }
    true
}
