//! A membership change is two entries in the log (openraft's joint
//! consensus): the joint configuration, old and new voters together, and then
//! the new voters alone. A leader that dies between the two leaves the group
//! joint, and openraft does not finish the change by itself: every later
//! leader needs a majority of the old voters *and* of the new ones. That is
//! safe but brittle. A soak found the cost: a group stuck joint for minutes
//! lost one of its old voters to a damaged disk, no leader could be elected to
//! let the damaged replica go, and the queue stayed unavailable for good. So a
//! leader that finds its group joint finishes the change.

use openraft::ChangeMembers;

use crate::node::Group;

/// Finishes a joint configuration left by an earlier leader, towards its
/// newest voter set; true when the group was joint (a step was taken).
pub async fn finish_joint_config(group: &Group, what: &str) -> bool {
    let goal = {
        let metrics = group.raft.metrics();
        let m = metrics.borrow();
        let configs = m.membership_config.membership().get_joint_config();
        if configs.len() < 2 {
            return false;
        }
        configs.last().cloned().unwrap_or_default()
    };
    if goal.is_empty() || !group.is_leader() {
        return false;
    }
    tracing::warn!(
        group = group.id,
        %what,
        voters = ?goal,
        "the group is still in a joint configuration left by an earlier leader: finishing it"
    );
    if let Err(e) = group
        .raft
        .change_membership(ChangeMembers::ReplaceAllVoters(goal), false)
        .await
    {
        // Most often the change is not committed yet: the next step retries.
        tracing::info!(group = group.id, %what, "finishing a joint configuration: {e}");
    }
    true
}
