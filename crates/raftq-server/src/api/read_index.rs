//! Linearizable reads on any replica: the leader's commit point, confirmed by
//! a quorum, and waiting until the local replica has applied it.

use std::time::Duration;

use crate::error::ApiError;
use crate::node::{Group, Node};
use crate::raft::transport::control::{self, ControlRpc};
use crate::raft::transport::wire;

const READ_INDEX_WAIT: Duration = Duration::from_secs(5);

/// The leader's commit point confirmed by a quorum: locally when leading, else
/// over the peer RPC.
pub(crate) async fn read_index(node: &Node, group: &Group, queue: &str) -> Result<u64, ApiError> {
    if group.is_leader() {
        // openraft's read log id is the leader's commit index (or its term's
        // first entry). A leader restored after a restart (openraft 0.9 resumes
        // leadership at the same term, without a new election) can hold
        // entries confirmed before the crash that it has not committed again
        // yet, so its commit index lies below writes clients saw confirmed.
        // Every confirmed entry is in the leader's log: reading at its last
        // index as of now is always enough (an entry that never commits makes
        // the wait time out: UNAVAILABLE, never a stale answer).
        let last_log = group.raft.metrics().borrow().last_log_index.unwrap_or(0);
        let (read_log_id, _) = group.raft.get_read_log_id().await.map_err(|e| {
            ApiError::unavailable(format!("queue '{queue}': cannot confirm leadership: {e}"))
        })?;
        return Ok(read_log_id.map_or(0, |l| l.index).max(last_log));
    }
    let leader = group
        .current_leader()
        .ok_or_else(|| ApiError::no_leader(queue))?;
    let addr = group
        .member_addr(leader)
        .ok_or_else(|| ApiError::no_leader(queue))?;
    node.metrics().read_index_requests.inc();
    let reply = control::call(
        node.pool(),
        &addr,
        ControlRpc::ReadIndex,
        (group.id, node.id(), leader),
        bytes::Bytes::new(),
        READ_INDEX_WAIT,
    )
    .await
    .map_err(|s| {
        ApiError::unavailable(format!(
            "queue '{queue}': read index from leader {leader}: {}",
            s.message()
        ))
    })?;
    let index: Result<u64, String> =
        wire::decode(&reply).map_err(|e| ApiError::Internal(e.to_string()))?;
    index.map_err(|e| ApiError::unavailable(format!("queue '{queue}': {e}")))
}

pub(crate) async fn wait_applied(group: &Group, index: u64, queue: &str) -> Result<(), ApiError> {
    let mut applied = group.shared.applied_index.subscribe();
    let reached = tokio::time::timeout(READ_INDEX_WAIT, applied.wait_for(|a| *a >= index))
        .await
        .is_ok_and(|r| r.is_ok());
    match reached {
        true => Ok(()),
        false => Err(ApiError::unavailable(format!(
            "queue '{queue}': local replica did not reach read index {index} in time"
        ))),
    }
}
