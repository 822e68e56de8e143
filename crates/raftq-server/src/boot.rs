//! Booting a node: open its store, start or resume the metadata group
//! (bootstrapping it on first start of an initial member), and start the
//! node's background tasks.

use std::collections::BTreeMap;
use std::sync::Arc;

use openraft::BasicNode;

use crate::config::Config;
use crate::meta::catalog::Catalog;
use crate::node::{Node, StartError};
use crate::raft::state_machine::GroupState;
use crate::raft::types::{NodeId, METADATA_GROUP};

pub async fn start_node(config: Config) -> Result<Arc<Node>, StartError> {
    let (node, snapshot_requests) = Node::open(config)?;
    let node = Arc::new(node);
    tokio::spawn(crate::raft::snapshot_requests::run(
        node.clone(),
        snapshot_requests,
    ));
    let meta = node
        .start_group(METADATA_GROUP, GroupState::Catalog(Catalog::default()))
        .await?;
    let initialized = meta
        .raft
        .is_initialized()
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
    if !initialized {
        let initial = &node.config().initial_cluster;
        if initial.is_empty() {
            return Err(StartError::NotBootstrapped);
        }
        let members: BTreeMap<NodeId, BasicNode> = initial
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        // Every initial node initializes with the same members, which openraft
        // documents as safe; whoever is already initialized refuses, harmlessly.
        if let Err(e) = meta.raft.initialize(members).await {
            tracing::info!("metadata group already initialized elsewhere: {e}");
        }
    }
    tokio::spawn(crate::meta::reconcile::run(node.clone()));
    tokio::spawn(crate::failover::driver::run(node.clone()));
    tokio::spawn(crate::alarms::monitor::run(node.clone()));
    Ok(node)
}
