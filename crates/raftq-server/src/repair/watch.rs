//! Finds replicas that fail while running, starts each damaged replica's
//! rebuild, and notes when a rebuilt replica votes again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::ids::GroupId;
use crate::node::Node;
use crate::raft::types::METADATA_GROUP;

const EVERY: Duration = Duration::from_millis(500);

pub async fn run(node: Arc<Node>) {
    let mut rebuilds: HashMap<GroupId, JoinHandle<()>> = HashMap::new();
    loop {
        tokio::time::sleep(EVERY).await;
        // First: a group stopped by a failed write is no damaged replica.
        if let Some(failure) = node.store().committer().failure() {
            if failure.damaged {
                stop_on_damaged_database(&node, &failure.why);
            }
            let why = failure.why;
            tracing::error!(
                node = node.id(),
                data_dir = %node.config().data_dir.display(),
                "stopping: {why}. Nothing written since the last good flush was acknowledged, \
                 and what is on disk is intact; free space (or fix the disk) and start the \
                 node again"
            );
            std::process::exit(74);
        }
        for group in node.groups() {
            let failed = match &group.raft.metrics().borrow().running_state {
                Ok(()) => None,
                Err(fatal) => Some(fatal.to_string()),
            };
            if let Some(why) = failed {
                node.take_out_damaged(
                    group.id,
                    format!("its Raft stopped on a storage error: {why}"),
                )
                .await;
            }
        }
        rebuilds.retain(|_, task| !task.is_finished());
        for note in node.damage().own() {
            if note.group == METADATA_GROUP {
                continue;
            }
            if note.rebuilding {
                // A voter in a configuration made after the one that let it
                // go: replaying older ones on the way does not count.
                let voting = node.group(note.group).is_some_and(|g| {
                    let metrics = g.raft.metrics();
                    let m = metrics.borrow();
                    let config = &m.membership_config;
                    config.log_id().is_some_and(|l| l.index > note.released_at)
                        && config.membership().voter_ids().any(|v| v == node.id())
                });
                if voting {
                    tracing::info!(
                        group = note.group,
                        "rebuilt replica caught up: a voter again"
                    );
                    node.damage().repaired(note.group);
                }
                continue;
            }
            rebuilds
                .entry(note.group)
                .or_insert_with(|| tokio::spawn(super::rebuild::run(node.clone(), note.group)));
        }
    }
}

/// sled found its database damaged while running: no group on it can be
/// trusted, so the node stops, marked so that it refuses to start again,
/// and says how to replace it.
fn stop_on_damaged_database(node: &Node, why: &str) -> ! {
    let marked = node.store().mark_damaged(why);
    let cause = format!(
        "the database at {} is damaged: {why}",
        node.store().db_path().display()
    );
    tracing::error!(
        node = node.id(),
        "stopping: {}",
        crate::boot::replace_instructions(node.config(), &cause)
    );
    if let Err(e) = marked {
        tracing::error!(
            node = node.id(),
            "could not mark the database damaged ({e}): do not start this node again as it is"
        );
    }
    std::process::exit(65);
}
