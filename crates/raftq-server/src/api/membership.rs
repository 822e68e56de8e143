//! Changing where a queue's replicas and leader live, and taking a node out
//! of the cluster. The catalog changes first (through the metadata leader); each
//! queue's leader then moves its group there, learner first (see
//! `leader::replica_moves`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use raftq_proto::v1::{
    ChangeReplicasRequest, ClusterStatusResponse, LeaderMove, QueueInfo, RebalanceResponse,
    RemoveNodeRequest, TransferLeaderRequest,
};

use crate::api::admin::{admin_client, catalog_write, cluster_status, list_queues, CatalogRoute};
use crate::api::info;
use crate::error::ApiError;
use crate::leader::transfer::transfer;
use crate::meta::catalog::{CatalogCommand, CatalogOutcome, QueueDef};
use crate::meta::rebalance::{plan, Led};
use crate::node::Node;
use crate::router::{self, Route};

/// How long `RemoveNode` waits for the replicas on the node to move.
const MOVE_WAIT: Duration = Duration::from_secs(120);

pub async fn change_replicas(
    node: &Arc<Node>,
    req: ChangeReplicasRequest,
    hops: u32,
) -> Result<QueueInfo, ApiError> {
    let name = req.queue.clone();
    router::queue_def(node, &name).await?;
    let cmd = match (req.add_node, req.remove_node, req.replicas) {
        (n, 0, 0) if n != 0 => CatalogCommand::AddReplica { name, node: n },
        (0, n, 0) if n != 0 => CatalogCommand::RemoveReplica { name, node: n },
        (0, 0, r) if r != 0 => CatalogCommand::ResizeQueue { name, replicas: r },
        _ => {
            return Err(ApiError::InvalidArgument(
                "set exactly one of add_node, remove_node and replicas".into(),
            ))
        }
    };
    match catalog_write(node, cmd, hops).await {
        Ok(CatalogOutcome::Replicas(def)) => info::queue_info(node, &def, 0, None).await,
        Ok(CatalogOutcome::NotFound) => Err(ApiError::unknown_queue(&req.queue)),
        Ok(CatalogOutcome::Invalid(why)) => Err(ApiError::FailedPrecondition(why)),
        Ok(other) => Err(ApiError::Internal(format!(
            "unexpected catalog outcome {other:?}"
        ))),
        Err(CatalogRoute::Api(e)) => Err(e),
        Err(CatalogRoute::Forward(addr)) => {
            node.metrics().forwarded_requests.inc();
            admin_client(node, &addr)?
                .change_replicas(router::forwarded(req, hops))
                .await
                .map(|r| r.into_inner())
                .map_err(ApiError::from)
        }
    }
}

pub async fn remove_node(
    node: &Arc<Node>,
    req: RemoveNodeRequest,
    hops: u32,
) -> Result<ClusterStatusResponse, ApiError> {
    let id = req.node_id;
    let known = node.members().contains_key(&id)
        || node.with_catalog(|c| c.is_removed(id)).unwrap_or(false);
    if !known {
        return Err(ApiError::NotFound(format!("no node {id} in the cluster")));
    }
    let moved = match catalog_write(node, CatalogCommand::RemoveNode { node: id }, hops).await {
        Ok(CatalogOutcome::NodeRemoved(moved)) => moved,
        Ok(CatalogOutcome::Invalid(why)) => return Err(ApiError::FailedPrecondition(why)),
        Ok(other) => {
            return Err(ApiError::Internal(format!(
                "unexpected catalog outcome {other:?}"
            )))
        }
        Err(CatalogRoute::Api(e)) => return Err(e),
        Err(CatalogRoute::Forward(addr)) => {
            node.metrics().forwarded_requests.inc();
            return admin_client(node, &addr)?
                .remove_node(router::forwarded(req, hops))
                .await
                .map(|r| r.into_inner())
                .map_err(ApiError::from);
        }
    };
    // A removed node id never comes back, so the queues that had a replica
    // on it, including ones moved by an earlier attempt, must all have left.
    let mut waiting: Vec<QueueDef> = node
        .with_catalog(|c| c.queues().cloned().collect())
        .unwrap_or(moved);
    let deadline = tokio::time::Instant::now() + MOVE_WAIT;
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for def in waiting {
            let left = match info::queue_info(node, &def, 0, None).await {
                Ok(i) => i.leader_id != 0 && !i.voters.contains(&id) && !i.learners.contains(&id),
                Err(_) => false,
            };
            if !left {
                still.push(def);
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let names: Vec<&str> = waiting.iter().map(|d| d.name.as_str()).take(5).collect();
            return Err(ApiError::unavailable(format!(
                "node {id} is removed from the catalog, but replicas of {} queue(s) ({}) are \
                 still moving off it; run remove-node {id} again to finish",
                waiting.len(),
                names.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let meta = node
        .meta()
        .ok_or_else(|| ApiError::unavailable("the metadata group is not running here"))?;
    if node.members().contains_key(&id) {
        let gone = BTreeSet::from([id]);
        let change = if meta.voter_ids().contains(&id) {
            ChangeMembers::RemoveVoters(gone)
        } else {
            ChangeMembers::RemoveNodes(gone)
        };
        meta.raft
            .change_membership(change, false)
            .await
            .map_err(|e| {
                ApiError::unavailable(format!("node {id} leaving the metadata group: {e}"))
            })?;
    }
    tracing::info!(node = id, "node removed from the cluster");
    Ok(cluster_status(node, 0).await)
}

pub async fn transfer_leader(
    node: &Arc<Node>,
    req: TransferLeaderRequest,
    hops: u32,
) -> Result<QueueInfo, ApiError> {
    let def = router::queue_def(node, &req.queue).await?;
    match router::route(node, def.group, &def.replicas, &def.name, hops)? {
        Route::Local(group) => {
            let to = (req.to_node != 0).then_some(req.to_node);
            transfer(node, &group, to, &def.name).await?;
            info::queue_info(node, &def, 0, None).await
        }
        Route::Remote { addr, .. } => {
            node.metrics().forwarded_requests.inc();
            admin_client(node, &addr)?
                .transfer_leader(router::forwarded(req, hops))
                .await
                .map(|r| r.into_inner())
                .map_err(ApiError::from)
        }
    }
}

pub async fn rebalance(node: &Arc<Node>, hops: u32) -> Result<RebalanceResponse, ApiError> {
    let queues: Vec<Led> = list_queues(node, hops)
        .await
        .into_iter()
        .map(|q| Led {
            voters: if q.voters.is_empty() {
                q.replicas.clone()
            } else {
                q.voters.clone()
            },
            queue: q.name,
            leader: q.leader_id,
        })
        .collect();
    let nodes: Vec<u64> = node.meta().map(|m| m.voter_ids()).unwrap_or_default();
    let mut moves = Vec::new();
    for (queue, from, to) in plan(&queues, &nodes) {
        let req = TransferLeaderRequest {
            queue: queue.clone(),
            to_node: to,
        };
        let error = match transfer_leader(node, req, hops).await {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        moves.push(LeaderMove {
            queue,
            from_node: from,
            to_node: to,
            error,
        });
    }
    Ok(RebalanceResponse {
        moves,
        status: Some(cluster_status(node, 0).await),
    })
}
