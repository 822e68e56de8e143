//! The one task that applies the supervisor's actions to openraft, feeds it the
//! time and the groups' metrics, and sends this node's heartbeats.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;

use crate::failover::heartbeat::NodeHeartbeat;
use crate::failover::supervisor::{Action, GroupView, Groups, Role, Why, NODE_HEARTBEAT_EVERY};
use crate::node::{Group, Node};
use crate::raft::transport::client::process_is_gone;
use crate::raft::transport::control::{self, ControlRpc};
use crate::raft::transport::wire;
use crate::raft::types::{GroupId, NodeId, METADATA_GROUP};

/// The node's groups as the supervisor sees them.
pub struct NodeGroups<'a>(pub &'a Node);

impl Groups for NodeGroups<'_> {
    fn ids(&self) -> Vec<GroupId> {
        self.0.groups().iter().map(|g| g.id).collect()
    }

    fn view(&self, id: GroupId) -> Option<GroupView> {
        Some(view_of(self.0.group(id)?.as_ref(), self.0.id()))
    }
}

fn view_of(group: &Group, me: NodeId) -> GroupView {
    let metrics = group.raft.metrics();
    let m = metrics.borrow();
    GroupView {
        id: group.id,
        role: match m.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            _ => Role::Other,
        },
        term: m.current_term,
        leader: m.current_leader,
        voters: m.membership_config.membership().voter_ids().collect(),
        last_index: m.last_log_index.unwrap_or(0),
        applied: m.last_applied.map(|l| l.index).unwrap_or(0),
        matched: m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .filter(|(id, _)| **id != me)
                    .map(|(id, l)| (*id, l.map(|l| l.index)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

pub async fn run(node: Arc<Node>) {
    let failover = node.failover().clone();
    let mut beat = tokio::time::interval(NODE_HEARTBEAT_EVERY);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = failover.now();
    loop {
        let wait = next.saturating_sub(failover.now());
        tokio::select! {
            _ = beat.tick() => send_heartbeats(&node),
            _ = tokio::time::sleep(wait) => {}
            _ = failover.wake.notified() => {}
        }
        let (actions, wakeup) = failover.tick(&NodeGroups(&node));
        next = wakeup;
        for action in actions {
            apply(&node, action);
        }
    }
}

/// SIGTERM: hands every group this node leads to a follower and waits (a
/// bounded time) until they have moved.
pub async fn hand_off_leadership(node: &Arc<Node>) {
    let mut done = node.failover().handed_off.subscribe();
    node.failover().shutdown(&NodeGroups(node));
    // Sessions hosted here end now, so their consumers resubscribe elsewhere.
    for group in node.groups() {
        node.sessions().close_group(group.id);
    }
    let _ = done.wait_for(|d| *d).await;
}

fn apply(node: &Arc<Node>, action: Action) {
    let group = |id: GroupId| node.group(id);
    match action {
        Action::Timers { group: id, on } => {
            if let Some(g) = group(id) {
                g.raft.runtime_config().tick(on);
            }
        }
        Action::Wake { leader, groups } => {
            tracing::info!(
                groups = groups.len(),
                "node {leader} is down: waking the groups it quiesced"
            );
            for g in groups.into_iter().filter_map(group) {
                g.raft.runtime_config().tick(true);
            }
        }
        Action::Heartbeat { group: id } => {
            if let Some(g) = group(id) {
                tokio::spawn(async move {
                    let _ = g.raft.trigger().heartbeat().await;
                });
            }
        }
        Action::Elect {
            group: id,
            times,
            why,
        } => {
            let Some(g) = group(id) else { return };
            match why {
                Why::LeaderGone { leader } => {
                    tracing::info!(
                        group = id,
                        "leader {leader} refuses connections: standing for election"
                    );
                }
                Why::ShorterLogCandidate {
                    candidate_term,
                    our_term,
                } => {
                    tracing::info!(
                        group = id,
                        candidate_term,
                        our_term,
                        elections = times,
                        "refused a candidate with a shorter log while the leader is silent: standing at once"
                    );
                    node.metrics().shorter_log_elections.inc();
                }
            }
            g.raft.runtime_config().tick(true);
            g.raft.runtime_config().elect(true);
            tokio::spawn(async move {
                for _ in 0..times {
                    // Each trigger makes openraft stand again, one term higher.
                    if g.raft.trigger().elect().await.is_err() {
                        return;
                    }
                }
            });
        }
        Action::Silence { group: id } => {
            if let Some(g) = group(id) {
                g.raft.runtime_config().heartbeat(false);
                g.raft.runtime_config().elect(false);
            }
        }
        Action::AskToCampaign {
            group: id,
            follower,
            wait,
        } => {
            let node = node.clone();
            tokio::spawn(async move {
                if let Err(e) = ask_to_campaign(&node, id, follower, wait).await {
                    tracing::warn!(group = id, follower, "hand-off request failed: {e}");
                }
            });
        }
        Action::NoFollower { group: id } => {
            tracing::warn!(group = id, "no follower to hand leadership to");
        }
        Action::HandOffDone { groups, moved } => {
            tracing::info!(groups, moved, "leadership handed off");
            node.failover().handed_off.send_replace(true);
        }
    }
}

pub(crate) async fn ask_to_campaign(
    node: &Node,
    group: GroupId,
    follower: NodeId,
    wait: Duration,
) -> Result<(), String> {
    let addr = node
        .group(group)
        .and_then(|g| g.member_addr(follower))
        .ok_or_else(|| format!("no address for node {follower}"))?;
    let payload = wire::encode(&(wait.as_millis() as u64)).map_err(|e| e.to_string())?;
    control::call(
        node.pool(),
        &addr,
        ControlRpc::Campaign,
        (group, node.id(), follower),
        payload,
        Duration::from_secs(1),
    )
    .await
    .map(|_| ())
    .map_err(|s| s.message().to_string())
}

fn send_heartbeats(node: &Arc<Node>) {
    let alarms = node.alarms().own();
    let incarnation = node.identity().incarnation;
    let damaged = node.damage().own();
    for (peer, addr) in node.peers() {
        let beat = NodeHeartbeat::new(
            node.failover().beat_for(peer),
            alarms.clone(),
            incarnation,
            damaged.clone(),
        );
        let node = node.clone();
        tokio::spawn(async move {
            match node_heartbeat(&node, peer, &addr, &beat).await {
                Ok(()) => node.failover().heard(peer),
                Err(status) if process_is_gone(&status) => node.failover().refused(peer),
                Err(_) => {}
            }
        });
    }
}

/// One node heartbeat: short timeout and no retries, the next follows soon.
async fn node_heartbeat(
    node: &Node,
    peer: NodeId,
    addr: &str,
    beat: &NodeHeartbeat,
) -> Result<(), tonic::Status> {
    let payload = wire::encode(beat).map_err(|e| tonic::Status::internal(e.to_string()))?;
    let timeout = Duration::from_millis(node.config().election_timeout_min_ms);
    control::call(
        node.pool(),
        addr,
        ControlRpc::NodeHeartbeat,
        (METADATA_GROUP, node.id(), peer),
        payload,
        timeout,
    )
    .await
    .map(|_| ())
}
