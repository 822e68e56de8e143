//! The leader's side: takes a damaged replica out of the group's voters.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;

use crate::ids::{GroupId, NodeId, METADATA_GROUP};
use crate::node::Node;

/// A node rebuilding its metadata replica is starting and sends no node
/// heartbeats: one heard more recently than this is running normally.
const REBUILDING_METADATA_QUIET: Duration = Duration::from_secs(2);

/// Ok once no committed configuration of `group` counts `damaged` as a
/// voter: from then on its data can be discarded without weakening any
/// quorum, and nothing it voted or acknowledged before counts. The answer is
/// the log index of that configuration: only a later one can make the
/// rebuilt replica a voter again.
pub async fn release(node: &Node, group_id: GroupId, damaged: NodeId) -> Result<u64, String> {
    let me = node.id();
    let group = node
        .group(group_id)
        .ok_or_else(|| format!("group {group_id} is not running on node {me}"))?;
    if !group.is_leader() {
        return Err(format!("node {me} does not lead group {group_id}"));
    }
    // The claim must match what the node itself shows everyone, so a stray
    // or forged request (a plaintext cluster authenticates no peer) cannot
    // take a healthy replica out of its group.
    if damaged == me {
        return Err("the leader's own replica is not released".into());
    }
    if group_id == METADATA_GROUP {
        let running = node
            .failover()
            .silence(damaged)
            .is_some_and(|quiet| quiet < REBUILDING_METADATA_QUIET);
        if running {
            return Err(format!(
                "node {damaged} is running normally (heard within {REBUILDING_METADATA_QUIET:?})"
            ));
        }
    } else {
        let reported = node
            .damage()
            .of_peer(damaged)
            .iter()
            .any(|d| d.group == group_id && !d.rebuilding);
        if !reported {
            return Err(format!(
                "node {damaged} has not reported group {group_id} damaged in its heartbeats (yet)"
            ));
        }
    }
    let (voters, committed, at) = {
        let metrics = group.raft.metrics();
        let m = metrics.borrow();
        let config = &m.membership_config;
        // Every configuration of a joint one: a node still voting in the old
        // half still counts.
        let voters: BTreeSet<NodeId> = config
            .membership()
            .get_joint_config()
            .iter()
            .flatten()
            .copied()
            .collect();
        let committed = match (config.log_id(), m.last_applied) {
            (Some(at), Some(applied)) => at.index <= applied.index,
            (None, _) => true,
            _ => false,
        };
        (voters, committed, config.log_id().map_or(0, |l| l.index))
    };
    if !voters.contains(&damaged) {
        return if committed {
            Ok(at)
        } else {
            Err("a membership change is being committed; ask again".into())
        };
    }
    if voters.len() <= 1 {
        return Err(format!(
            "node {damaged} holds the only voting replica of group {group_id}: nothing to rebuild it from"
        ));
    }
    let queue = node
        .with_catalog(|c| c.by_group(group_id).map(|d| d.name.clone()))
        .flatten()
        .unwrap_or_default();
    tracing::warn!(
        %queue,
        group = group_id,
        node = damaged,
        "taking a damaged replica out of the group's voters; it will be caught up afresh as a learner"
    );
    group
        .raft
        .change_membership(
            ChangeMembers::RemoveVoters(BTreeSet::from([damaged])),
            false,
        )
        .await
        .map(|written| written.log_id.index)
        .map_err(|e| format!("removing node {damaged} from group {group_id}: {e}"))
}
