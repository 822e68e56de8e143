//! A damaged replica of the metadata group, found at start. The node cannot
//! read its catalog, so it asks the peers it is configured with (the initial
//! cluster, `--join`) for the metadata leader, which takes it out of the
//! group; then it discards its replica and joins again under its own id,
//! learner first, like a new node. Its queue replicas are checked and
//! started, or rebuilt, once the catalog has caught up.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::ids::METADATA_GROUP;
use crate::node::{Group, Node, StartError};
use crate::raft::state_machine::GroupState;
use crate::raft::transport::control::{self, ControlRpc};
use crate::raft::transport::wire;

const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a start waits for a metadata leader to let the replica go.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

/// The addresses this node may ask: every configured peer.
pub fn peer_addrs(node: &Node) -> Vec<String> {
    let config = node.config();
    let mut addrs: Vec<String> = config
        .initial_cluster
        .iter()
        .filter(|(id, _)| **id != config.id)
        .map(|(_, addr)| addr.clone())
        .chain(config.join.iter().cloned())
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs
}

/// Gets the damaged metadata replica let go, discards it, and starts the
/// group afresh (uninitialized: the caller joins the cluster with it).
pub async fn rebuild(node: &Arc<Node>, why: &str) -> Result<Arc<Group>, StartError> {
    let addrs = peer_addrs(node);
    if addrs.is_empty() {
        return Err(StartError::Refused(format!(
            "its replica of the metadata group is damaged ({why}) and it knows no peer to \
             rebuild it from: start it with --join <live nodes>, or replace it"
        )));
    }
    let deadline = tokio::time::Instant::now() + GIVE_UP_AFTER;
    let mut last_refusal = String::from("no peer answered");
    let released_at = 'ask: loop {
        for addr in &addrs {
            let answer = control::call(
                node.pool(),
                addr,
                ControlRpc::ReleaseDamaged,
                (METADATA_GROUP, node.id(), 0),
                Bytes::new(),
                RELEASE_TIMEOUT,
            )
            .await;
            match answer.map(|b| wire::decode::<Result<u64, String>>(&b)) {
                Ok(Ok(Ok(at))) => break 'ask at,
                Ok(Ok(Err(why))) => last_refusal = format!("{addr}: {why}"),
                Ok(Err(e)) => last_refusal = format!("{addr}: unreadable answer: {e}"),
                Err(e) => last_refusal = format!("{addr}: {}", e.message()),
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(StartError::Refused(format!(
                "its replica of the metadata group is damaged ({why}) and no metadata leader \
                 let it go within {GIVE_UP_AFTER:?} (last answer: {last_refusal}); start it \
                 again once a majority of the cluster is up, or replace it"
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    tracing::warn!(
        "the metadata group no longer counts this node's damaged replica: discarding it and \
         joining again under the same id"
    );
    let store = node.store();
    store
        .never_initialize(METADATA_GROUP)
        .and_then(|()| store.remove_group(METADATA_GROUP))?;
    node.damage().rebuilding(METADATA_GROUP, released_at);
    node.metrics().replicas_rebuilt.inc();
    node.start_group(
        METADATA_GROUP,
        GroupState::Catalog(crate::meta::catalog::Catalog::default()),
    )
    .await
}
