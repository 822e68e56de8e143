//! Keeps the queue groups running on this node in line with the catalog: starts a
//! replica when a queue placed here appears, stops and deletes it when the queue
//! is deleted. Restarted nodes resume their groups the same way.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::QueueDef;
use crate::node::Node;
use crate::raft::types::METADATA_GROUP;

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
                .filter(|q| q.replicas.contains(&node.id))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let wanted_groups: BTreeSet<u64> = wanted.iter().map(|q| q.group).collect();
    for def in &wanted {
        if let Err(e) = node.start_queue(def).await {
            tracing::warn!(queue = %def.name, "cannot start queue replica yet: {e}");
        }
    }
    for group in node.groups() {
        if group.id != METADATA_GROUP && !wanted_groups.contains(&group.id) {
            // Only delete once the catalog is known to be applied past the group's
            // creation; an empty catalog right after a restart is not a deletion.
            let created = node
                .meta()
                .map(|m| m.shared.last_applied_index() > 0)
                .unwrap_or(false);
            if created {
                tracing::info!(group = group.id, "queue deleted: stopping replica");
                node.stop_group(group.id).await;
            }
        }
    }
}
