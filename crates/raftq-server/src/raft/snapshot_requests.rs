//! Hands the state machines' snapshot requests (see
//! `raft::snapshot_trigger`) to openraft, one node-wide task for every group.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::node::Node;
use crate::raft::types::GroupId;

pub async fn run(node: Arc<Node>, mut requests: mpsc::UnboundedReceiver<GroupId>) {
    while let Some(id) = requests.recv().await {
        // A deleted group has nothing left to snapshot.
        let Some(group) = node.group(id) else {
            continue;
        };
        if let Err(e) = group.raft.trigger().snapshot().await {
            tracing::warn!(group = id, "cannot ask for a snapshot: {e}");
        }
        group.shared.snapshot_request_handled();
    }
}
