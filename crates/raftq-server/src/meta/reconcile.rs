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
        match start_queue(node, def).await {
            Ok(()) => {}
            // Named once when found; `repair` takes it from there.
            Err(StartError::Damaged { .. }) => {}
            Err(e) => tracing::warn!(queue = %def.name, "cannot start queue replica yet: {e}"),
        }
    }
    resume_or_drop_leftovers(node, &wanted_groups).await;
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
        let Some(def) = node
            .with_catalog(|c| c.by_group(group.id).cloned())
            .flatten()
        else {
            tracing::info!(group = group.id, "queue deleted: stopping replica");
            node.stop_group(group.id).await;
            continue;
        };
        if crate::meta::departure::has_left(node, &group, &def).await {
            tracing::info!(queue = %def.name, group = group.id, "replica moved off this node: stopping it");
            node.stop_group(group.id).await;
        }
    }
}

/// Groups with data on disk that are neither running nor placed here: left
/// by a queue deleted, or a replica moved away, while this node was down.
/// The data of a deleted queue goes; a moved replica runs again until its
/// group is known to have let it go (the check in `reconcile_once`).
async fn resume_or_drop_leftovers(node: &Arc<Node>, wanted: &BTreeSet<u64>) {
    let running: BTreeSet<u64> = node.groups().iter().map(|g| g.id).collect();
    for id in node.store().groups_on_disk() {
        if id == METADATA_GROUP || running.contains(&id) || wanted.contains(&id) {
            continue;
        }
        let Some((seen, def)) =
            node.with_catalog(|c| (c.has_seen_group(id), c.by_group(id).cloned()))
        else {
            return;
        };
        match (seen, def) {
            // Created after what this node's catalog holds: wait for it.
            (false, _) => {}
            (true, None) => {
                tracing::info!(
                    group = id,
                    "removing the data of a queue deleted while this node was down"
                );
                if let Err(e) = node.store().remove_group(id) {
                    tracing::warn!(group = id, "cannot remove data of deleted group: {e}");
                }
            }
            (true, Some(def)) => match start_queue(node, &def).await {
                Ok(()) | Err(StartError::Damaged { .. }) => {}
                Err(e) => tracing::warn!(queue = %def.name, "cannot resume a moved replica: {e}"),
            },
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
    // later, or rebuilt after damage, waits for the leader to add it as a
    // learner.
    if !initialized
        && def.initial_replicas.contains(&node.id())
        && node.store().may_initialize(def.group)
    {
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
