//! Moving a group's leadership to another replica. openraft 0.9 has no
//! leadership transfer, and its lease makes followers refuse votes while they
//! hear the leader. So the leader stops proposing and heartbeating in the
//! group, waits until the target holds its whole log, and asks it to stand
//! once the lease has run out, as on SIGTERM (see `failover`). Nothing else
//! changes: if the target does not win, the group elects as after any silent
//! leader, and the old leader's timers come back on either way.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::ApiError;
use crate::failover::driver::ask_to_campaign;
use crate::failover::supervisor::HAND_OFF_MARGIN;
use crate::ids::NodeId;
use crate::node::{Group, Node};

/// How long the target may take to match the leader's log once proposals stop.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// Hands `group`, led here, to `to` (or the follower with the most log);
/// returns the new leader.
pub async fn transfer(
    node: &Node,
    group: &Group,
    to: Option<NodeId>,
    queue: &str,
) -> Result<NodeId, ApiError> {
    let me = node.id();
    if !group.is_leader() {
        return Err(ApiError::unavailable(format!(
            "node {me} no longer leads queue '{queue}'; retry"
        )));
    }
    let voters = group.voter_ids();
    let target = match to {
        Some(t) if t == me => return Ok(me),
        Some(t) if !voters.contains(&t) => {
            return Err(ApiError::FailedPrecondition(format!(
                "node {t} is not a voting replica of queue '{queue}' (voters {voters:?})"
            )))
        }
        Some(t) => t,
        None => best_follower(group, me).ok_or_else(|| {
            ApiError::FailedPrecondition(format!("queue '{queue}' has no other voter"))
        })?,
    };
    if group.transferring.swap(true, Ordering::SeqCst) {
        return Err(ApiError::unavailable(format!(
            "leadership of queue '{queue}' is already moving; retry"
        )));
    }
    let outcome = hand_over(node, group, target, queue).await;
    group.raft.runtime_config().heartbeat(true);
    group.raft.runtime_config().elect(true);
    group.transferring.store(false, Ordering::SeqCst);
    outcome
}

async fn hand_over(
    node: &Node,
    group: &Group,
    target: NodeId,
    queue: &str,
) -> Result<NodeId, ApiError> {
    let me = node.id();
    let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
    loop {
        let (last, matched) = {
            let metrics = group.raft.metrics();
            let m = metrics.borrow();
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&target).copied().flatten())
                .map(|l| l.index);
            (m.last_log_index.unwrap_or(0), matched)
        };
        if matched.is_some_and(|m| m >= last) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::unavailable(format!(
                "node {target} did not catch up with queue '{queue}' within {CATCH_UP_WAIT:?}; retry"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    group.raft.runtime_config().heartbeat(false);
    group.raft.runtime_config().elect(false);
    let wait = Duration::from_millis(node.config().election_timeout_max_ms) + HAND_OFF_MARGIN;
    ask_to_campaign(node, group.id, target, wait)
        .await
        .map_err(|e| ApiError::unavailable(format!("asking node {target} to take over: {e}")))?;
    let deadline = tokio::time::Instant::now() + wait * 3;
    while tokio::time::Instant::now() < deadline {
        match group.current_leader() {
            Some(l) if l != me => {
                tracing::info!(%queue, from = me, to = l, "leadership transferred");
                return Ok(l);
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    Err(ApiError::unavailable(format!(
        "node {target} did not take over queue '{queue}' in time; this node leads on"
    )))
}

/// The follower whose log matches ours furthest (ties: lowest id).
fn best_follower(group: &Group, me: NodeId) -> Option<NodeId> {
    let metrics = group.raft.metrics();
    let m = metrics.borrow();
    m.replication
        .as_ref()?
        .iter()
        .filter(|(id, _)| **id != me)
        .max_by_key(|(id, l)| (l.map(|l| l.index), std::cmp::Reverse(**id)))
        .map(|(id, _)| *id)
}
