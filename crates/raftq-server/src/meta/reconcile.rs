//! Keeps the queue groups running on this node in line with the catalog: starts a
//! replica when a queue placed here appears, stops and deletes it when the queue
//! is deleted or its replica moved off this node. Restarted nodes resume their
//! groups the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use raftq_queue::{StreamLog, WorkQueue};

use crate::meta::catalog::{QueueDef, QueueKind};
use crate::node::{Node, StartError};
use crate::raft::state_machine::GroupState;
use crate::raft::types::{NodeId, METADATA_GROUP};

pub async fn run(node: Arc<Node>) {
    let Some(meta) = node.meta() else {
        return;
    };
    let mut applied = meta.shared.applied_index.subscribe();
    loop {
        reconcile_once(&node).await;
        // Also re-check now and then: a group whose start failed (for example a
        // peer address not yet known) gets another try.
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

async fn reconcile_once(node: &Arc<Node>) {
    let wanted: Vec<QueueDef> = node
        .with_catalog(|c| {
            c.queues()
                .filter(|q| q.replicas.contains(&node.id()))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let wanted_groups: BTreeSet<u64> = wanted.iter().map(|q| q.group).collect();
    for def in &wanted {
        if let Err(e) = start_queue(node, def).await {
            tracing::warn!(queue = %def.name, "cannot start queue replica yet: {e}");
        }
    }
    for group in node.groups() {
        if group.id == METADATA_GROUP || wanted_groups.contains(&group.id) {
            continue;
        }
        // Only delete once the catalog is known to be applied past the group's
        // creation; an empty catalog right after a restart is not a deletion.
        let applied = node
            .meta()
            .is_some_and(|m| m.shared.last_applied_index() > 0);
        if !applied {
            continue;
        }
        let queue_exists = node
            .with_catalog(|c| c.by_group(group.id).is_some())
            .unwrap_or(false);
        if !queue_exists {
            tracing::info!(group = group.id, "queue deleted: stopping replica");
            node.stop_group(group.id).await;
            continue;
        }
        // Moved off this node: leave only once the group's own membership no
        // longer lists this node. Its data is part of the group's quorum until
        // then; a replica that never learns it left (it was down during the
        // change) keeps its data, and no leader replicates to it any more.
        if group.member_addr(node.id()).is_none() {
            tracing::info!(group = group.id, "replica moved off this node: stopping it");
            node.stop_group(group.id).await;
        }
    }
}

/// Starts (or resumes) a queue's group on this replica, with its leader upkeep.
async fn start_queue(node: &Arc<Node>, def: &QueueDef) -> Result<(), StartError> {
    if node.group(def.group).is_some() {
        return Ok(());
    }
    let options = def.spec.options.clone();
    let initial = match def.spec.kind {
        QueueKind::Work => GroupState::Work(Box::new(WorkQueue::new(options))),
        QueueKind::Stream => GroupState::Stream(Box::new(StreamLog::new(options))),
    };
    let group = node.start_group(def.group, initial).await?;
    let initialized = group
        .raft
        .is_initialized()
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
    // Only the replicas the group was created with initialize it; one added
    // later waits for the leader to add it as a learner.
    if !initialized && def.initial_replicas.contains(&node.id()) {
        let members: BTreeMap<NodeId, BasicNode> = def
            .initial_replicas
            .iter()
            .filter_map(|id| Some((*id, BasicNode::new(node.node_addr(*id)?))))
            .collect();
        if let Err(e) = group.raft.initialize(members).await {
            tracing::debug!(group = def.group, "queue group initialized elsewhere: {e}");
        } else if def.preferred_leader == node.id() {
            // min-leaders placement: the preferred node campaigns at once, so it
            // normally wins before anyone's election timer fires.
            let _ = group.raft.trigger().elect().await;
        }
    }
    group.set_upkeep(tokio::spawn(crate::leader::upkeep::run(
        node.clone(),
        group.clone(),
        def.name.clone(),
    )));
    tracing::info!(queue = %def.name, group = def.group, "queue replica started");
    Ok(())
}
