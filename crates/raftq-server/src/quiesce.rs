//! Quiescence: an idle group costs nothing. Per-group Raft heartbeats make
//! 1,000 idle queues cost a core (each leader heartbeats each follower 20
//! times a second per group), so a leader whose group has been idle and fully
//! replicated for a while turns that group's heartbeats off, and says so in a
//! node-level heartbeat it sends each peer a few times a second whatever the
//! number of groups. A follower that sees its leader's group listed turns its
//! own election timer off for that group. Both do so by stopping the group's
//! openraft tick, which drives nothing but heartbeats and election timeouts. Leader failure is then detected per
//! node, not per group: a follower that stops hearing node heartbeats from the
//! leader's node for a second turns elections back on, and the group elects as
//! it would have (earlier still when the connection is refused, see
//! peer_down). A write wakes the group: openraft replicates new entries
//! whether heartbeats are on or not, and the leader turns them back on.
//!
//! Only timers change here: Raft's safety never depends on them, so a wrong
//! guess costs at most an election or a late one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use openraft::ServerState;
use serde::{Deserialize, Serialize};

use crate::node::{Group, Node};
use crate::raft::types::{GroupId, NodeId, METADATA_GROUP};

/// A group with no new log entry for this long may quiesce.
pub const QUIET_AFTER: Duration = Duration::from_secs(2);
/// Node heartbeats to each peer: five per SILENT_AFTER, and each lists every
/// quiet group, so their rate is most of what 1,000 idle queues cost.
pub const NODE_HEARTBEAT_EVERY: Duration = Duration::from_millis(200);
/// A leader's node silent this long has its quiet groups woken. Longer than
/// the lease: on a loaded machine node heartbeats can be late, and waking a
/// healthy leader's quiet groups costs elections. A dead process is noticed
/// sooner anyway (refused connections, see peer_down).
pub const SILENT_AFTER: Duration = Duration::from_millis(1000);
/// How often followed leaders' liveness is looked at.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// Every this many checks, every local group is looked at too: quiescing
/// late costs nothing, and looking costs per group.
const GROUP_CHECK_EVERY_N: u64 = 3;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeHeartbeat {
    /// Changes each time the sender's process starts.
    pub boot: u64,
    /// Groups the sender leads and has quiesced, with the term it leads in.
    pub quiesced: Vec<(GroupId, u64)>,
    /// Groups the sender just started following quietly, whose leader is the
    /// receiver: one heartbeat each, please. A follower that (re)started
    /// while its group was quiet knows which of its entries are committed
    /// only from the leader, which otherwise sends nothing.
    pub refresh: Vec<GroupId>,
    /// The sender's memory and disk alarms: publishes are refused
    /// cluster-wide while any node has one.
    pub alarms: Vec<crate::alarms::Alarm>,
}

/// What this node did to a group's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quiet {
    /// We lead it and turned heartbeats off at this term and last log index.
    Leading { term: u64, last_index: u64 },
    /// Its leader (node, term) quiesced it; our election timer is off.
    Following { leader: NodeId, term: u64 },
}

pub struct Quiescence {
    boot: u64,
    /// The boot of each peer as last heard.
    peer_boots: Mutex<HashMap<NodeId, u64>>,
    quiet: Mutex<HashMap<GroupId, Quiet>>,
    /// Per leader node: groups to ask it to heartbeat once (see `refresh`).
    refresh: Mutex<HashMap<NodeId, Vec<GroupId>>>,
    /// (group, leader) pairs an AppendEntries came from since the refresh was
    /// asked: the answer. Recorded only while a refresh is pending.
    heard: Mutex<HashSet<(GroupId, NodeId)>>,
    refresh_pending: std::sync::atomic::AtomicBool,
    /// Last log index seen per led group, and since when it has not moved.
    activity: Mutex<HashMap<GroupId, (u64, Instant)>>,
}

/// The pure decision of a leader: quiesce when nothing moved for
/// `QUIET_AFTER` and every follower holds everything.
pub fn leader_may_quiesce(
    last_index: u64,
    committed: u64,
    follower_matched: &[u64],
    idle_for: Duration,
) -> bool {
    idle_for >= QUIET_AFTER
        && committed == last_index
        && !follower_matched.is_empty()
        && follower_matched.iter().all(|m| *m == last_index)
}

impl Default for Quiescence {
    fn default() -> Self {
        Self {
            boot: rand::random(),
            peer_boots: Mutex::default(),
            quiet: Mutex::default(),
            refresh: Mutex::default(),
            heard: Mutex::default(),
            refresh_pending: Default::default(),
            activity: Mutex::default(),
        }
    }
}

impl Quiescence {
    /// Groups this node leads and has quiesced, for the node heartbeat.
    pub fn led_quiet(&self) -> Vec<(GroupId, u64)> {
        self.quiet
            .lock()
            .iter()
            .filter_map(|(g, q)| match q {
                Quiet::Leading { term, .. } => Some((*g, *term)),
                Quiet::Following { .. } => None,
            })
            .collect()
    }

    /// An AppendEntries for `group` arrived from `from` (peer server hook).
    /// The persisted vote already names the leader after a restart, so only
    /// a message from it proves it has told us its commit point.
    pub fn heard_from(&self, group: GroupId, from: NodeId) {
        if self
            .refresh_pending
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.heard.lock().insert((group, from));
        }
    }

    pub fn quiesced_count(&self) -> usize {
        self.quiet.lock().len()
    }
}

/// A peer's node heartbeat: follow its quiesced groups, and wake the ones it
/// no longer lists.
pub fn on_peer_heartbeat(node: &Node, from: NodeId, beat: NodeHeartbeat) {
    node.alarms
        .heard_from(from, beat.alarms, std::time::Instant::now());
    let restarted = node.quiescence.peer_boots.lock().insert(from, beat.boot) != Some(beat.boot);
    if restarted {
        // A (re)started follower knows entries it holds are committed only from
        // the leader, which sends nothing while quiet: one heartbeat per
        // quiesced group tells it (and starts catch-up if it is behind).
        for gid in node.quiescence.led_quiet().into_iter().map(|(g, _)| g) {
            if let Some(group) = node.group(gid) {
                tokio::spawn(async move {
                    let _ = group.raft.trigger().heartbeat().await;
                });
            }
        }
    }
    for gid in beat.refresh {
        if let Some(group) = node.group(gid).filter(|g| g.is_leader()) {
            tokio::spawn(async move {
                let _ = group.raft.trigger().heartbeat().await;
            });
        }
    }
    let listed: HashMap<GroupId, u64> = beat.quiesced.into_iter().collect();
    let mut quiet = node.quiescence.quiet.lock();
    for (gid, term) in &listed {
        // Already following this quiet group: the common case, kept cheap.
        if quiet.get(gid)
            == Some(&Quiet::Following {
                leader: from,
                term: *term,
            })
        {
            continue;
        }
        let Some(group) = node.group(*gid) else {
            continue;
        };
        let follows = {
            let metrics = group.raft.metrics();
            let m = metrics.borrow();
            m.state != ServerState::Leader
                && m.current_term <= *term
                && m.current_leader.is_none_or(|l| l == from)
        };
        if follows {
            node.quiescence
                .refresh
                .lock()
                .entry(from)
                .or_default()
                .push(*gid);
            node.quiescence
                .refresh_pending
                .store(true, std::sync::atomic::Ordering::Relaxed);
            group.raft.runtime_config().tick(false);
            quiet.insert(
                *gid,
                Quiet::Following {
                    leader: from,
                    term: *term,
                },
            );
        }
    }
    let woken: Vec<GroupId> = quiet
        .iter()
        .filter(|(g, q)| {
            matches!(q, Quiet::Following { leader, .. } if *leader == from)
                && !listed.contains_key(g)
        })
        .map(|(g, _)| *g)
        .collect();
    for gid in woken {
        quiet.remove(&gid);
        if let Some(group) = node.group(gid) {
            group.raft.runtime_config().tick(true);
        }
    }
}

/// Turns elections back on for every group quiesced by `leader`: its node
/// went silent.
fn wake_followers_of(node: &Node, leader: NodeId) {
    let mut quiet = node.quiescence.quiet.lock();
    let dead: Vec<GroupId> = quiet
        .iter()
        .filter(|(_, q)| matches!(q, Quiet::Following { leader: l, .. } if *l == leader))
        .map(|(g, _)| *g)
        .collect();
    for gid in dead {
        quiet.remove(&gid);
        if let Some(group) = node.group(gid) {
            group.raft.runtime_config().tick(true);
        }
    }
}

/// The few metrics a check needs, read without cloning the whole set.
struct Seen {
    leading: bool,
    term: u64,
    leader: Option<NodeId>,
    last_index: u64,
    applied: u64,
}

fn check_group(node: &Node, group: &Arc<Group>, now: Instant) {
    let metrics = group.raft.metrics();
    let m = {
        let m = metrics.borrow();
        Seen {
            leading: m.state == ServerState::Leader,
            term: m.current_term,
            leader: m.current_leader,
            last_index: m.last_log_index.unwrap_or(0),
            applied: m.last_applied.map(|l| l.index).unwrap_or(0),
        }
    };
    let last_index = m.last_index;
    let mut quiet = node.quiescence.quiet.lock();
    let current = quiet.get(&group.id).copied();
    match (m.leading, current) {
        (
            true,
            Some(Quiet::Leading {
                term,
                last_index: at,
            }),
        ) => {
            if term != m.term || at != last_index {
                group.raft.runtime_config().tick(true);
                quiet.remove(&group.id);
            }
        }
        (false, Some(Quiet::Leading { .. })) => {
            group.raft.runtime_config().tick(true);
            quiet.remove(&group.id);
        }
        (true, Some(Quiet::Following { .. })) => {
            group.raft.runtime_config().tick(true);
            quiet.remove(&group.id);
        }
        (false, Some(Quiet::Following { leader, term })) => {
            if m.term > term || m.leader.is_some_and(|l| l != leader) {
                group.raft.runtime_config().tick(true);
                quiet.remove(&group.id);
            }
        }
        (true, None) => {
            drop(quiet);
            let idle_for = {
                let mut activity = node.quiescence.activity.lock();
                let entry = activity.entry(group.id).or_insert((last_index, now));
                if entry.0 != last_index {
                    *entry = (last_index, now);
                }
                now.saturating_duration_since(entry.1)
            };
            if idle_for < QUIET_AFTER {
                return;
            }
            let matched: Vec<u64> = metrics
                .borrow()
                .replication
                .as_ref()
                .map(|r| {
                    r.iter()
                        .filter(|(id, _)| **id != node.id)
                        .map(|(_, l)| l.map(|l| l.index).unwrap_or(0))
                        .collect()
                })
                .unwrap_or_default();
            if leader_may_quiesce(last_index, m.applied, &matched, idle_for)
                && !node.draining.load(std::sync::atomic::Ordering::SeqCst)
            {
                group.raft.runtime_config().tick(false);
                node.quiescence.quiet.lock().insert(
                    group.id,
                    Quiet::Leading {
                        term: m.term,
                        last_index,
                    },
                );
            }
        }
        (false, None) => {}
    }
}

/// Drops refresh requests that were answered: an AppendEntries came from the
/// leader since (or we no longer follow that group quietly).
fn prune_refresh(node: &Node) {
    let q = &node.quiescence;
    if q.refresh.lock().is_empty() {
        return;
    }
    let quiet = q.quiet.lock().clone();
    let heard = std::mem::take(&mut *q.heard.lock());
    let mut refresh = q.refresh.lock();
    refresh.retain(|leader, groups| {
        groups.retain(|gid| {
            let still_quiet =
                matches!(quiet.get(gid), Some(Quiet::Following { leader: l, .. }) if l == leader);
            still_quiet && !heard.contains(&(*gid, *leader)) && node.group(*gid).is_some()
        });
        !groups.is_empty()
    });
    if refresh.is_empty() {
        q.refresh_pending
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Looks after local groups' timers and sends node heartbeats, until exit.
pub async fn run(node: Arc<Node>) {
    let mut beat = tokio::time::interval(NODE_HEARTBEAT_EVERY);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checks = 0u64;
    loop {
        tokio::select! {
            _ = beat.tick() => send_heartbeats(&node),
            _ = check.tick() => {
                checks += 1;
                prune_refresh(&node);
                if checks.is_multiple_of(GROUP_CHECK_EVERY_N) {
                    let now = Instant::now();
                    for group in node.groups() {
                        if group.id != METADATA_GROUP {
                            check_group(&node, &group, now);
                        }
                    }
                }
                let followed: HashSet<NodeId> = node.quiescence.quiet.lock()
                    .values()
                    .filter_map(|q| match q {
                        Quiet::Following { leader, .. } => Some(*leader),
                        Quiet::Leading { .. } => None,
                    })
                    .collect();
                for leader in followed {
                    if node.liveness.since(leader).is_none_or(|d| d > SILENT_AFTER) {
                        tracing::info!("node {leader} silent for {SILENT_AFTER:?}: waking the groups it quiesced");
                        wake_followers_of(&node, leader);
                    }
                }
            }
        }
    }
}

fn send_heartbeats(node: &Arc<Node>) {
    let quiesced = node.quiescence.led_quiet();
    for (peer, addr) in node.peers() {
        let node = node.clone();
        let beat = NodeHeartbeat {
            boot: node.quiescence.boot,
            quiesced: quiesced.clone(),
            // Asked again every beat until answered (see prune_refresh): a
            // lost beat or heartbeat must not leave a follower behind.
            refresh: node
                .quiescence
                .refresh
                .lock()
                .get(&peer)
                .cloned()
                .unwrap_or_default(),
            alarms: node.alarms.own(),
        };
        tokio::spawn(async move {
            if crate::network::client::node_heartbeat(&node, peer, &addr, &beat)
                .await
                .is_ok()
            {
                node.liveness.saw(peer);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idle_fully_replicated_groups_quiesce() {
        let idle = QUIET_AFTER;
        assert!(leader_may_quiesce(10, 10, &[10, 10], idle));
        assert!(
            !leader_may_quiesce(10, 10, &[10, 9], idle),
            "a follower behind"
        );
        assert!(!leader_may_quiesce(10, 9, &[10, 10], idle), "not applied");
        assert!(
            !leader_may_quiesce(10, 10, &[10, 10], idle / 2),
            "recent write"
        );
        assert!(!leader_may_quiesce(10, 10, &[], idle), "no follower known");
    }
}
