//! Admin RPCs: queue definitions go through the metadata group (0); queue info
//! and cluster status are assembled from local replicas or asked of others.

use std::sync::Arc;
use std::time::Duration;

use raftq_proto::v1::admin_service_client::AdminServiceClient;
use raftq_proto::v1::{
    ClusterStatusResponse, CreateQueueRequest, CreateQueueResponse, DamagedReplica,
    DeleteQueueRequest, NodeAlarm, NodeRole, NodeStatus, Overflow as ProtoOverflow, QueueInfo,
    QueueKind as ProtoKind, QueueOptions as ProtoOptions,
};
use raftq_queue::{Overflow, QueueOptions};

use crate::api::info;
use crate::error::ApiError;
use crate::meta::catalog::{
    invalid_queue_name, CatalogCommand, CatalogOutcome, QueueKind, QueueSpec, ReplicaCount,
};
use crate::node::Node;
use crate::raft::transport::pool::Lane;
use crate::raft::types::{GroupCommand, GroupResponse, METADATA_GROUP};
use crate::router::{self, ProposeError, Route};

/// Largest single message a queue may be configured to accept.
pub const MAX_MESSAGE_BYTES_LIMIT: u64 = 16 * 1024 * 1024;
const LEADER_WAIT: Duration = Duration::from_secs(10);

fn nonzero<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

pub fn spec_from_proto(name: &str, o: Option<ProtoOptions>) -> Result<QueueSpec, ApiError> {
    let o = o.unwrap_or_default();
    let kind = match ProtoKind::try_from(o.kind) {
        Ok(ProtoKind::Work) => QueueKind::Work,
        Ok(ProtoKind::Stream) => QueueKind::Stream,
        Err(_) => {
            return Err(ApiError::InvalidArgument(format!(
                "unknown queue kind {}",
                o.kind
            )))
        }
    };
    let overflow = match ProtoOverflow::try_from(o.overflow) {
        Ok(ProtoOverflow::RejectPublish) => Overflow::RejectPublish,
        Ok(ProtoOverflow::DropHead) => Overflow::DropHead,
        Err(_) => {
            return Err(ApiError::InvalidArgument(format!(
                "unknown overflow {}",
                o.overflow
            )))
        }
    };
    check_kind_options(kind, &o)?;
    let dead_letter_queue = nonzero(o.dead_letter_queue);
    if let Some(dlq) = &dead_letter_queue {
        if let Some(reason) = invalid_queue_name(dlq) {
            return Err(ApiError::InvalidArgument(format!(
                "dead_letter_queue: {reason}"
            )));
        }
        if dlq == name {
            return Err(ApiError::InvalidArgument(
                "a queue cannot dead-letter into itself".into(),
            ));
        }
    }
    let defaults = QueueOptions::default();
    let max_message_bytes = nonzero(o.max_message_bytes).unwrap_or(defaults.max_message_bytes);
    if max_message_bytes > MAX_MESSAGE_BYTES_LIMIT {
        return Err(ApiError::InvalidArgument(format!(
            "max_message_bytes {max_message_bytes} is above the limit {MAX_MESSAGE_BYTES_LIMIT}"
        )));
    }
    if o.replicas > 7 {
        return Err(ApiError::InvalidArgument(
            "replicas must be between 1 and 7 (or all)".into(),
        ));
    }
    Ok(QueueSpec {
        kind,
        replicas: if o.replicas_all {
            ReplicaCount::All
        } else {
            ReplicaCount::Count(o.replicas)
        },
        options: QueueOptions {
            max_deliveries: nonzero(o.max_deliveries),
            dead_letter_queue,
            message_ttl_ms: nonzero(o.message_ttl_ms),
            max_length: nonzero(o.max_length),
            max_bytes: nonzero(o.max_bytes),
            overflow,
            ack_timeout_ms: nonzero(o.ack_timeout_ms),
            max_message_bytes,
            dedup_window: nonzero(o.dedup_window).unwrap_or(defaults.dedup_window),
            single_active_consumer: o.single_active_consumer,
            max_age_ms: nonzero(o.max_age_ms),
        },
    })
}

/// Options that mean something for one kind only are refused on the other, so
/// a setting never silently does nothing.
fn check_kind_options(kind: QueueKind, o: &ProtoOptions) -> Result<(), ApiError> {
    let set: Vec<&str> = match kind {
        QueueKind::Stream => [
            ("max_deliveries", o.max_deliveries != 0),
            ("dead_letter_queue", !o.dead_letter_queue.is_empty()),
            ("message_ttl_ms (use max_age_ms)", o.message_ttl_ms != 0),
            (
                "overflow (a stream drops its oldest)",
                o.overflow != ProtoOverflow::RejectPublish as i32,
            ),
            ("ack_timeout_ms", o.ack_timeout_ms != 0),
            ("single_active_consumer", o.single_active_consumer),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect(),
        QueueKind::Work => [("max_age_ms (use message_ttl_ms)", o.max_age_ms != 0)]
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect(),
    };
    if set.is_empty() {
        return Ok(());
    }
    let kind = match kind {
        QueueKind::Work => "work queue",
        QueueKind::Stream => "stream",
    };
    Err(ApiError::InvalidArgument(format!(
        "not an option of a {kind}: {}",
        set.join(", ")
    )))
}

pub(crate) fn admin_client(
    node: &Node,
    addr: &str,
) -> Result<AdminServiceClient<tonic::transport::Channel>, ApiError> {
    let channel = node
        .pool()
        .get(addr, Lane::Bulk)
        .map_err(|e| ApiError::unavailable(format!("bad peer address {addr}: {e}")))?;
    Ok(AdminServiceClient::new(channel))
}

/// Proposes a catalog change on the metadata leader, wherever it is.
pub(crate) async fn catalog_write(
    node: &Arc<Node>,
    cmd: CatalogCommand,
    hops: u32,
) -> Result<CatalogOutcome, CatalogRoute> {
    let all: Vec<u64> = node.members().keys().copied().collect();
    match router::route(node, METADATA_GROUP, &all, "(metadata)", hops)
        .map_err(CatalogRoute::Api)?
    {
        Route::Remote { addr, .. } => Err(CatalogRoute::Forward(addr)),
        Route::Local(group) => {
            match router::propose(&group, GroupCommand::Catalog(cmd), "(metadata)").await {
                Ok(GroupResponse::Catalog(outcome)) => Ok(outcome),
                Ok(other) => Err(CatalogRoute::Api(ApiError::Internal(format!(
                    "unexpected catalog outcome {other:?}"
                )))),
                Err(ProposeError::Moved { addr, .. }) if hops < router::MAX_HOPS => {
                    Err(CatalogRoute::Forward(addr))
                }
                Err(e) => Err(CatalogRoute::Api(e.into_api())),
            }
        }
    }
}

pub(crate) enum CatalogRoute {
    Forward(String),
    Api(ApiError),
}

pub async fn create_queue(
    node: &Arc<Node>,
    req: CreateQueueRequest,
    hops: u32,
) -> Result<CreateQueueResponse, ApiError> {
    if let Some(reason) = invalid_queue_name(&req.name) {
        return Err(ApiError::InvalidArgument(reason));
    }
    let spec = spec_from_proto(&req.name, req.options.clone())?;
    let cmd = CatalogCommand::CreateQueue {
        name: req.name.clone(),
        spec,
    };
    let def = match catalog_write(node, cmd, hops).await {
        Ok(CatalogOutcome::Created(def)) => def,
        Ok(CatalogOutcome::AlreadyExists(_)) => {
            return Err(ApiError::AlreadyExists(format!(
                "queue '{}' already exists",
                req.name
            )))
        }
        Ok(CatalogOutcome::Invalid(reason)) => return Err(ApiError::InvalidArgument(reason)),
        Ok(other) => {
            return Err(ApiError::Internal(format!(
                "unexpected catalog outcome {other:?}"
            )))
        }
        Err(CatalogRoute::Api(e)) => return Err(e),
        Err(CatalogRoute::Forward(addr)) => {
            node.metrics().forwarded_requests.inc();
            return admin_client(node, &addr)?
                .create_queue(router::forwarded(req, hops))
                .await
                .map(|r| r.into_inner())
                .map_err(ApiError::from);
        }
    };
    // Return once the queue can take writes, so a publish right after creation
    // does not race the first election.
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    loop {
        let info = info::queue_info(node, &def, 0, None).await?;
        if info.leader_id != 0 || tokio::time::Instant::now() >= deadline {
            return Ok(CreateQueueResponse { queue: Some(info) });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn delete_queue(
    node: &Arc<Node>,
    req: DeleteQueueRequest,
    hops: u32,
) -> Result<(), ApiError> {
    router::queue_def(node, &req.name).await?;
    let cmd = CatalogCommand::DeleteQueue {
        name: req.name.clone(),
    };
    match catalog_write(node, cmd, hops).await {
        Ok(CatalogOutcome::Deleted(_)) => Ok(()),
        Ok(CatalogOutcome::NotFound) => Err(ApiError::unknown_queue(&req.name)),
        Ok(other) => Err(ApiError::Internal(format!(
            "unexpected catalog outcome {other:?}"
        ))),
        Err(CatalogRoute::Api(e)) => Err(e),
        Err(CatalogRoute::Forward(addr)) => {
            node.metrics().forwarded_requests.inc();
            admin_client(node, &addr)?
                .delete_queue(router::forwarded(req, hops))
                .await
                .map(|_| ())
                .map_err(ApiError::from)
        }
    }
}

pub async fn list_queues(node: &Arc<Node>, hops: u32) -> Vec<QueueInfo> {
    let defs = node
        .with_catalog(|c| c.queues().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(defs.len());
    for def in defs {
        let info = info::queue_info(node, &def, hops, None)
            .await
            .unwrap_or_else(|_| info::base_info(node, &def));
        out.push(info);
    }
    out
}

pub async fn cluster_status(node: &Arc<Node>, hops: u32) -> ClusterStatusResponse {
    let queues = list_queues(node, hops).await;
    let metadata_leader = node.meta().and_then(|m| m.current_leader()).unwrap_or(0);
    let voters = node.meta().map(|m| m.voter_ids()).unwrap_or_default();
    let (cluster_id, incarnations) = node
        .with_catalog(|c| {
            let members = node.members();
            let incarnations: Vec<(u64, u64)> = members
                .keys()
                .map(|id| (*id, c.incarnation(*id).unwrap_or(0)))
                .collect();
            (c.cluster_id().unwrap_or_default().to_string(), incarnations)
        })
        .unwrap_or_default();
    let nodes = node
        .members()
        .into_iter()
        .map(|(id, address)| {
            let seen = node.failover().silence(id);
            let alarms = if id == node.id() {
                node.alarms().own()
            } else {
                node.alarms().of_peer(id, std::time::Instant::now())
            };
            let damaged = if id == node.id() {
                node.damage().own()
            } else {
                node.damage().of_peer(id)
            };
            NodeStatus {
                damaged: damaged
                    .into_iter()
                    .map(|d| DamagedReplica {
                        group_id: d.group,
                        queue: node
                            .with_catalog(|c| c.by_group(d.group).map(|q| q.name.clone()))
                            .flatten()
                            .unwrap_or_default(),
                        state: if d.rebuilding {
                            "rebuilding"
                        } else {
                            "damaged"
                        }
                        .to_string(),
                        reason: d.why,
                    })
                    .collect(),
                alarms: alarms
                    .into_iter()
                    .map(|a| NodeAlarm {
                        resource: a.resource.as_str().to_string(),
                        reading: a.reading,
                        limit: a.limit,
                    })
                    .collect(),
                id,
                address,
                up: !node.failover().is_down(id),
                last_seen_ms: seen.map(|d| d.as_millis() as u64).unwrap_or(u64::MAX),
                groups_led: queues.iter().filter(|q| q.leader_id == id).count() as u64
                    + u64::from(metadata_leader == id),
                role: if voters.contains(&id) {
                    NodeRole::Voter
                } else {
                    NodeRole::Learner
                } as i32,
                incarnation: incarnations
                    .iter()
                    .find(|(n, _)| *n == id)
                    .map_or(0, |(_, i)| *i),
            }
        })
        .collect();
    ClusterStatusResponse {
        nodes,
        queues,
        answered_by: node.id(),
        metadata_leader,
        cluster_id,
    }
}
