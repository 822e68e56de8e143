//! Read: browse a queue by offset without consuming, served by the node that was
//! called when it holds a replica, at the consistency the client asked for.

use std::sync::Arc;

use raftq_proto::v1::{Consistency, ReadRequest, ReadResponse, StoredMessage};
use raftq_queue::StoredView;

use crate::api::read_index::{read_index, wait_applied};
use crate::error::ApiError;
use crate::node::{Group, Node};
use crate::raft::state_machine::GroupState;
use crate::router;

const DEFAULT_COUNT: u32 = 100;
const MAX_COUNT: u32 = 10_000;

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
            Err(s) => last_err = ApiError::from(s),
        }
    }
    Err(last_err)
}
