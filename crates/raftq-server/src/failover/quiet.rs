//! Quiescence: an idle group costs nothing. Per-group Raft heartbeats make
//! 1,000 idle queues cost a core, so a leader whose group has been idle and
//! fully replicated for [`QUIET_AFTER`] turns that group's timers off and lists
//! it in the node heartbeat it sends each peer a few times a second whatever
//! the number of groups. A follower that sees its leader's group listed turns
//! its own election timer off for that group. Leader failure is then detected
//! per node: when the leader's node is down (see `peers`), its followers turn
//! elections back on and the group elects as it would have. A write wakes the
//! group: openraft replicates new entries with timers off, and the leader turns
//! them back on.
//!
//! Only timers change here: Raft's safety never depends on them, so a wrong
//! guess costs at most an election or a late one.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::failover::peers::Time;
use crate::raft::types::{GroupId, NodeId};

/// A group with no new log entry for this long may quiesce.
pub const QUIET_AFTER: Duration = Duration::from_secs(2);

/// What this node did to a group's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    /// We lead it and turned its timers off at this term and last log index.
    Leading { term: u64, last_index: u64 },
    /// Its leader (node, term) quiesced it; our election timer is off.
    Following { leader: NodeId, term: u64 },
}

#[derive(Debug, Default)]
pub struct QuietGroups {
    pub state: HashMap<GroupId, Quiet>,
    /// The boot of each peer as last heard: a new one means it restarted.
    pub peer_boots: HashMap<NodeId, u64>,
    /// Per leader node: groups to ask it to heartbeat once. A follower that
    /// (re)started while its group was quiet knows which of its entries are
    /// committed only from the leader, which otherwise sends nothing.
    pub refresh: HashMap<NodeId, Vec<GroupId>>,
    /// (group, leader) pairs an AppendEntries came from since a refresh was
    /// asked: the answer.
    pub heard: HashSet<(GroupId, NodeId)>,
    /// Last log index seen per led group, and since when it has not moved.
    pub activity: HashMap<GroupId, (u64, Time)>,
}

impl QuietGroups {
    pub fn led(&self) -> Vec<(GroupId, u64)> {
        let mut led: Vec<_> = self
            .state
            .iter()
            .filter_map(|(g, q)| match q {
                Quiet::Leading { term, .. } => Some((*g, *term)),
                Quiet::Following { .. } => None,
            })
            .collect();
        led.sort_unstable();
        led
    }

    /// Leader nodes some of our groups follow quietly.
    pub fn followed_leaders(&self) -> Vec<NodeId> {
        let mut leaders: Vec<NodeId> = self
            .state
            .values()
            .filter_map(|q| match q {
                Quiet::Following { leader, .. } => Some(*leader),
                Quiet::Leading { .. } => None,
            })
            .collect();
        leaders.sort_unstable();
        leaders.dedup();
        leaders
    }

    /// Groups that follow `leader` quietly, sorted.
    pub fn following(&self, leader: NodeId) -> Vec<GroupId> {
        let mut groups: Vec<GroupId> = self
            .state
            .iter()
            .filter(|(_, q)| matches!(q, Quiet::Following { leader: l, .. } if *l == leader))
            .map(|(g, _)| *g)
            .collect();
        groups.sort_unstable();
        groups
    }

    /// How long a led group's log has not moved, restarting the count when it has.
    pub fn idle_for(&mut self, group: GroupId, last_index: u64, now: Time) -> Duration {
        let entry = self.activity.entry(group).or_insert((last_index, now));
        if entry.0 != last_index {
            *entry = (last_index, now);
        }
        now.saturating_sub(entry.1)
    }
}

/// A leader quiesces when nothing moved for [`QUIET_AFTER`] and every follower
/// holds everything.
pub fn leader_may_quiesce(
    last_index: u64,
    applied: u64,
    follower_matched: &[u64],
    idle_for: Duration,
) -> bool {
    idle_for >= QUIET_AFTER
        && applied == last_index
        && !follower_matched.is_empty()
        && follower_matched.iter().all(|m| *m == last_index)
}
