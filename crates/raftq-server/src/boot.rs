//! Booting a node: open its store, make sure the data dir may take part in the
//! cluster under this id (see `meta::identity`), start or resume the metadata
//! group (bootstrapping it, or joining a running cluster, on a first start),
//! and start the node's background tasks.

use std::collections::BTreeMap;
use std::sync::Arc;

use openraft::BasicNode;
use raftq_store::{Identity, NodeStore};

use crate::auth::guard::Guard;
use crate::config::Config;
use crate::meta::catalog::Catalog;
use crate::meta::identity::{refusal, Starting};
use crate::node::{Node, StartError};
use crate::raft::state_machine::GroupState;
use crate::raft::types::{NodeId, METADATA_GROUP};
use crate::tls::reload::Reloading;

pub async fn start_node(config: Config) -> Result<Arc<Node>, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| StartError::Raft(e.to_string()))?;
    let store = NodeStore::open(&config.data_dir).map_err(|e| match e {
        e @ raftq_store::StoreError::Unusable { .. } => {
            StartError::Refused(replace_instructions(&config, &e.to_string()))
        }
        e => StartError::Store(e),
    })?;
    let tls = match &config.tls {
        Some(files) => Some(Reloading::load(files.clone(), config.id)?),
        None => None,
    };
    let auth = match &config.auth_file {
        Some(path) => Some(Guard::load(path).map_err(StartError::Refused)?),
        None => None,
    };
    let identity = settle_identity(&config, &store, tls.clone()).await?;
    let (node, snapshot_requests) = Node::new(config, store, identity, tls.clone(), auth.clone())?;
    let node = Arc::new(node);
    if let Some(auth) = auth {
        tokio::spawn(crate::auth::guard::watch(auth));
    }
    if let Some(tls) = tls {
        tokio::spawn(crate::tls::reload::watch(tls));
    }
    tokio::spawn(crate::raft::snapshot_requests::run(
        node.clone(),
        snapshot_requests,
    ));
    let meta = match node
        .start_group(METADATA_GROUP, GroupState::Catalog(Catalog::default()))
        .await
    {
        Ok(meta) => meta,
        Err(StartError::Damaged { why, .. }) => crate::repair::metadata::rebuild(&node, &why)
            .await
            .map_err(|e| match e {
                StartError::Refused(why) => {
                    StartError::Refused(replace_instructions(node.config(), &why))
                }
                e => e,
            })?,
        Err(e) => return Err(e),
    };
    let initialized = meta
        .raft
        .is_initialized()
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
    if !initialized {
        let config = node.config();
        let listed = config.initial_cluster.contains_key(&config.id);
        // A replica discarded after damage never initializes: it joins.
        if !listed || !node.store().may_initialize(METADATA_GROUP) {
            let peers = crate::repair::metadata::peer_addrs(&node);
            if peers.is_empty() {
                return Err(StartError::NotBootstrapped);
            }
            tokio::spawn(crate::meta::membership::join_cluster(node.clone(), peers));
        } else {
            let members: BTreeMap<NodeId, BasicNode> = config
                .initial_cluster
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr)))
                .collect();
            // Every initial node initializes with the same members, which
            // openraft documents as safe; whoever is already initialized
            // refuses, harmlessly.
            if let Err(e) = meta.raft.initialize(members).await {
                tracing::info!("metadata group already initialized elsewhere: {e}");
            }
        }
    }
    tokio::spawn(crate::meta::reconcile::run(node.clone()));
    tokio::spawn(crate::meta::membership::run_registry(node.clone()));
    tokio::spawn(crate::self_healing::run(node.clone()));
    tokio::spawn(crate::failover::driver::run(node.clone()));
    tokio::spawn(crate::alarms::monitor::run(node.clone()));
    tokio::spawn(crate::repair::watch::run(node.clone()));
    Ok(node)
}

/// What an operator does with a node whose data as a whole cannot be
/// trusted: its votes and acknowledged entries may be gone, so it must not
/// take part in Raft under its id again.
pub(crate) fn replace_instructions(config: &Config, cause: &str) -> String {
    let id = config.id;
    format!(
        "node {id} cannot trust its data: {cause}. It may have lost votes and entries it \
         acknowledged, so it must not rejoin as node {id}. Replace it: run `raftq cluster \
         remove-node {id}` against a live node, move {dir} aside, and start this node again \
         on an empty data dir under a new --id with --join <live nodes> (README: \"Replace a \
         node\")",
        dir = config.data_dir.display()
    )
}

/// The data dir's identity, created on a first start, after asking the peers
/// this node knows of whether the cluster accepts it under its id.
async fn settle_identity(
    config: &Config,
    store: &NodeStore,
    tls: Option<Arc<Reloading>>,
) -> Result<Identity, StartError> {
    let recorded = store.identity()?;
    if let Some(id) = &recorded {
        if id.node_id != config.id {
            return Err(StartError::Refused(format!(
                "data dir {} belongs to node {}, not {}: start it with --id {}",
                config.data_dir.display(),
                id.node_id,
                config.id,
                id.node_id
            )));
        }
    }
    let blank = recorded.is_none() && store.is_blank();
    let identity = recorded.clone().unwrap_or_else(|| Identity {
        node_id: config.id,
        incarnation: rand::random(),
        cluster_id: None,
    });
    let peers: Vec<String> = config
        .initial_cluster
        .iter()
        .filter(|(id, _)| **id != config.id)
        .map(|(_, addr)| addr.clone())
        .chain(config.join.iter().cloned())
        .collect();
    let answers = crate::meta::membership::identify(&peers, config.id, tls).await;
    let starting = Starting {
        node: config.id,
        incarnation: identity.incarnation,
        cluster_id: identity.cluster_id.as_deref(),
        blank,
    };
    if let Some(why) = refusal(starting, &answers) {
        return Err(StartError::Refused(why));
    }
    if recorded.is_none() {
        store.record_identity(&identity)?;
    }
    Ok(identity)
}
