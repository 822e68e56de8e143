//! Read: browse a queue by offset without consuming, served by the node that was
//! called when it holds a replica, at the consistency the client asked for.

use std::sync::Arc;
use std::time::Duration;

use raftq_proto::internal::raft_peer_client::RaftPeerClient;
use raftq_proto::internal::RaftRequest;
use raftq_proto::v1::{Consistency, ReadRequest, ReadResponse, StoredMessage};
use raftq_queue::StoredView;

use crate::error::ApiError;
use crate::node::{Group, Node};
use crate::raft::state_machine::GroupState;
use crate::raft::transport::pool::Lane;
use crate::raft::transport::wire;
use crate::router;

const DEFAULT_COUNT: u32 = 100;
const MAX_COUNT: u32 = 10_000;
const READ_INDEX_WAIT: Duration = Duration::from_secs(5);

pub async fn read(node: &Arc<Node>, req: ReadRequest, hops: u32) -> Result<ReadResponse, ApiError> {
    let def = router::queue_def(node, &req.queue).await?;
    let Some(group) = node.group(def.group) else {
        return forward(node, &def.replicas, req, hops).await;
    };
    let consistency = Consistency::try_from(req.consistency).map_err(|_| {
        ApiError::InvalidArgument(format!("unknown consistency {}", req.consistency))
    })?;
    make_consistent(node, &group, consistency, req.max_lag, &def.name).await?;
    node.metrics().reads_local.inc();
    let count = match req.count {
        0 => DEFAULT_COUNT,
        n => n.min(MAX_COUNT),
    } as usize;
    let applied = group.shared.read();
    let messages = match &applied.state {
        GroupState::Work(q) => q
            .browse(req.from_offset, count)
            .into_iter()
            .map(stored_message)
            .collect(),
        GroupState::Stream(s) => s
            .read(req.from_offset, count)
            .into_iter()
            .map(stored_message)
            .collect(),
        GroupState::Catalog(_) => Vec::new(),
    };
    Ok(ReadResponse {
        messages,
        node_id: node.id(),
        applied_index: applied.last_applied.map(|l| l.index).unwrap_or(0),
    })
}

pub(crate) fn stored_message(v: StoredView) -> StoredMessage {
    StoredMessage {
        offset: v.offset,
        payload: v.message.payload,
        headers: v.message.headers.into_iter().collect(),
        publish_time_ms: v.publish_time_ms,
        delivery_count: v.delivery_count,
    }
}

/// Makes this node's replica fit to answer at `consistency`. LINEARIZABLE:
/// fetch the leader's read index and wait until the replica applied it, so the
/// answer includes everything confirmed before the read began. STALE_OK: at
/// once, unless the replica holds more than `max_lag` received entries it has
/// not applied yet (0 = no bound). Either way only committed entries are ever
/// applied, so nothing uncommitted can be read.
pub(crate) async fn make_consistent(
    node: &Node,
    group: &Group,
    consistency: Consistency,
    max_lag: u64,
    queue: &str,
) -> Result<(), ApiError> {
    match consistency {
        Consistency::Linearizable => {
            let started = std::time::Instant::now();
            let read_index = read_index(node, group, queue).await?;
            wait_applied(group, read_index, queue).await?;
            node.metrics().read_index_wait.observe(started.elapsed());
        }
        Consistency::StaleOk if max_lag > 0 => {
            let metrics = group.raft.metrics().borrow().clone();
            let last_log = metrics.last_log_index.unwrap_or(0);
            let applied = metrics.last_applied.map(|l| l.index).unwrap_or(0);
            if last_log.saturating_sub(applied) > max_lag {
                return Err(ApiError::unavailable(format!(
                    "replica on node {} lags {} entries (> max_lag {max_lag})",
                    node.id(),
                    last_log - applied,
                )));
            }
        }
        Consistency::StaleOk => {}
    }
    Ok(())
}

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
    let channel = node
        .pool()
        .get(&addr, Lane::Control)
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let mut client = RaftPeerClient::new(channel);
    let mut request = tonic::Request::new(RaftRequest {
        group: group.id,
        from: node.id(),
        payload: bytes::Bytes::new(),
        data: bytes::Bytes::new(),
    });
    request.set_timeout(READ_INDEX_WAIT);
    let reply = client.read_index(request).await.map_err(|s| {
        ApiError::unavailable(format!(
            "queue '{queue}': read index from leader {leader}: {}",
            s.message()
        ))
    })?;
    let index: Result<u64, String> =
        wire::decode(&reply.into_inner().payload).map_err(|e| ApiError::Internal(e.to_string()))?;
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

async fn forward(
    node: &Node,
    replicas: &[u64],
    req: ReadRequest,
    hops: u32,
) -> Result<ReadResponse, ApiError> {
    if hops >= router::MAX_HOPS {
        return Err(ApiError::unavailable("read forwarded too many times"));
    }
    node.metrics().reads_forwarded.inc();
    let mut last_err = ApiError::unavailable("no replica of the queue is reachable");
    for (_, addr) in router::replica_addrs(node, replicas) {
        let mut client = router::queue_client(node, &addr)?;
        match client.read(router::forwarded(req.clone(), hops)).await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) => last_err = crate::api::publish::status_to_api(s),
        }
    }
    Err(last_err)
}
