//! Queue info: answered from a local replica's state, or fetched from a replica.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use raftq_proto::v1::admin_service_client::AdminServiceClient;
use raftq_proto::v1::{
    Consistency, GetQueueRequest, Overflow as ProtoOverflow, QueueInfo, QueueKind as ProtoKind,
    QueueOptions as ProtoOptions, ReplicaStatus,
};

use raftq_queue::Overflow;

use crate::error::ApiError;
use crate::meta::catalog::{QueueDef, QueueKind, QueueSpec, ReplicaCount};
use crate::node::{Group, Node};
use crate::raft::state_machine::GroupState;
use crate::raft::transport::pool::Lane;

const REMOTE_INFO_TIMEOUT: Duration = Duration::from_secs(2);

fn info_from_group(node: &Node, def: &QueueDef, group: &Group) -> QueueInfo {
    let metrics = group.raft.metrics().borrow().clone();
    let mut info = base_info(node, def);
    info.leader_id = metrics.current_leader.unwrap_or(0);
    info.term = metrics.current_term;
    info.snapshot_index = metrics.snapshot.map(|l| l.index).unwrap_or(0);
    let membership = metrics.membership_config.membership();
    info.voters = membership.voter_ids().collect();
    info.learners = membership.learner_ids().collect();
    info.purged_index = metrics.purged.map(|l| l.index).unwrap_or(0);
    {
        let applied = group.shared.read();
        info.applied_index = applied.last_applied.map(|l| l.index).unwrap_or(0);
        match &applied.state {
            GroupState::Work(q) => {
                info.depth = q.depth();
                info.ready = q.ready();
                info.unacked = q.unacked();
                info.consumers = q.consumers() as u64;
                info.bytes = q.bytes();
                info.next_offset = q.next_offset();
            }
            GroupState::Stream(s) => {
                info.depth = s.len();
                info.ready = s.len();
                info.bytes = s.bytes();
                info.first_offset = s.first_offset();
                info.next_offset = s.next_offset();
                info.consumer_offsets = s
                    .committed_offsets()
                    .map(|(name, offset)| (name.to_string(), offset))
                    .collect();
                info.consumers = info.consumer_offsets.len() as u64;
            }
            GroupState::Catalog(_) => {}
        }
    }
    if metrics.state == ServerState::Leader {
        let last = metrics.last_log_index.unwrap_or(0);
        let entries_since_snapshot = info
            .applied_index
            .saturating_sub(info.snapshot_index)
            .max(1);
        let mean_entry_bytes = group.shared.log_bytes_since_snapshot() / entries_since_snapshot;
        if let Some(repl) = &metrics.replication {
            info.replica_status = repl
                .iter()
                .map(|(id, matched)| {
                    let matched_index = matched.map(|l| l.index).unwrap_or(0);
                    let lag = last.saturating_sub(matched_index);
                    ReplicaStatus {
                        node_id: *id,
                        matched_index,
                        lag,
                        lag_bytes: lag.saturating_mul(mean_entry_bytes),
                        snapshot_bytes_sent: node.pool().snapshot_progress.sent(def.group, *id),
                    }
                })
                .collect();
        }
    }
    info
}

/// Catalog facts only (for when no replica answers).
pub fn base_info(node: &Node, def: &QueueDef) -> QueueInfo {
    QueueInfo {
        name: def.name.clone(),
        options: Some(options_to_proto(&def.spec)),
        group_id: def.group,
        replicas: def.replicas.clone(),
        answered_by: node.id(),
        ..Default::default()
    }
}

/// Info from a local replica (brought up to the leader's read index first when
/// `consistency` asks for it), else from the first replica that answers.
pub async fn queue_info(
    node: &Arc<Node>,
    def: &QueueDef,
    hops: u32,
    consistency: Option<Consistency>,
) -> Result<QueueInfo, ApiError> {
    if let Some(group) = node.group(def.group) {
        if let Some(c) = consistency {
            crate::api::read::make_consistent(node, &group, c, 0, &def.name).await?;
        }
        node.metrics().reads_local.inc();
        return Ok(info_from_group(node, def, &group));
    }
    if hops >= crate::router::MAX_HOPS {
        return Ok(base_info(node, def));
    }
    node.metrics().reads_forwarded.inc();
    for (_, addr) in crate::router::replica_addrs(node, &def.replicas) {
        let Ok(channel) = node.pool().get(&addr, Lane::Control) else {
            continue;
        };
        let mut client = AdminServiceClient::new(channel);
        let mut req = crate::router::forwarded(
            GetQueueRequest {
                name: def.name.clone(),
                consistency: consistency.map(|c| c as i32),
            },
            hops,
        );
        req.set_timeout(REMOTE_INFO_TIMEOUT);
        // NOT_FOUND from a replica only means its catalog lags ours: try the next.
        if let Ok(info) = client.get_queue(req).await {
            return Ok(info.into_inner());
        }
    }
    Ok(base_info(node, def))
}

pub fn options_to_proto(spec: &QueueSpec) -> ProtoOptions {
    let o = &spec.options;
    ProtoOptions {
        kind: match spec.kind {
            QueueKind::Work => ProtoKind::Work,
            QueueKind::Stream => ProtoKind::Stream,
        } as i32,
        replicas: match spec.replicas {
            ReplicaCount::Count(n) => n,
            ReplicaCount::All => 0,
        },
        replicas_all: spec.replicas == ReplicaCount::All,
        max_deliveries: o.max_deliveries.unwrap_or(0),
        dead_letter_queue: o.dead_letter_queue.clone().unwrap_or_default(),
        message_ttl_ms: o.message_ttl_ms.unwrap_or(0),
        max_length: o.max_length.unwrap_or(0),
        max_bytes: o.max_bytes.unwrap_or(0),
        overflow: match o.overflow {
            Overflow::RejectPublish => ProtoOverflow::RejectPublish,
            Overflow::DropHead => ProtoOverflow::DropHead,
        } as i32,
        ack_timeout_ms: o.ack_timeout_ms.unwrap_or(0),
        max_message_bytes: o.max_message_bytes,
        dedup_window: o.dedup_window,
        single_active_consumer: o.single_active_consumer,
        max_age_ms: o.max_age_ms.unwrap_or(0),
    }
}
