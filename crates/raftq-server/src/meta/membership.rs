//! The cluster's nodes: which data dir each node id stands for (registered by
//! the metadata leader from node heartbeats), and new nodes joining. A node
//! joins learner-first: the metadata leader adds it as a learner, which
//! catches up from the log or a snapshot, and only then makes it a voter, so
//! the group never counts a replica that does not hold the log.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::{BasicNode, ChangeMembers};

use crate::ids::{NodeId, METADATA_GROUP};
use crate::meta::catalog::{CatalogCommand, CatalogOutcome};
use crate::meta::identity::{IdentifyReply, JoinRequest};
use crate::node::{Group, Node};
use crate::raft::transport::control::{self, ControlRpc};
use crate::raft::transport::pool::ChannelPool;
use crate::raft::transport::wire;
use crate::raft::types::{GroupCommand, GroupResponse};
use crate::tls::reload::Reloading;

/// How often the registry looks at the catalog.
const REGISTRY_EVERY: Duration = Duration::from_secs(1);
/// A learner catching up a large metadata log may take a while.
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);
const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(2);

/// What each peer in `addrs` knows of node `me`; peers that do not answer are
/// left out (a cluster bootstrapping has nobody to ask yet).
pub async fn identify(
    addrs: &[String],
    me: NodeId,
    tls: Option<Arc<Reloading>>,
) -> Vec<(String, IdentifyReply)> {
    let pool = ChannelPool::new(tls);
    let asks = addrs.iter().map(|addr| {
        let pool = &pool;
        async move {
            let reply = call(
                pool,
                addr,
                me,
                ControlRpc::Identify,
                Bytes::new(),
                IDENTIFY_TIMEOUT,
            )
            .await;
            match reply.map(|r| wire::decode::<IdentifyReply>(&r)) {
                Ok(Ok(answer)) => Some((addr.clone(), answer)),
                Ok(Err(e)) => {
                    tracing::warn!(peer = %addr, "unreadable identify answer: {e}");
                    None
                }
                Err(e) => {
                    tracing::debug!(peer = %addr, "no identify answer: {e}");
                    None
                }
            }
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn call(
    pool: &ChannelPool,
    addr: &str,
    from: NodeId,
    rpc: ControlRpc,
    payload: Bytes,
    timeout: Duration,
) -> Result<Bytes, String> {
    // Identify and join go to whoever answers at the address.
    control::call(pool, addr, rpc, (METADATA_GROUP, from, 0), payload, timeout)
        .await
        .map_err(|s| format!("{addr}: {}", s.message()))
}

/// Keeps the catalog's record of the cluster in line with what this node
/// knows, until exit: every node records the cluster id in its data dir; the
/// metadata leader names the cluster and registers each member's incarnation.
pub async fn run_registry(node: Arc<Node>) {
    let mut ticks = tokio::time::interval(REGISTRY_EVERY);
    loop {
        ticks.tick().await;
        let Some(meta) = node.meta() else { return };
        let known = node.with_catalog(|c| {
            let members = node.members();
            let unregistered: Vec<(NodeId, u64)> = node
                .incarnations()
                .into_iter()
                .filter(|(id, _)| members.contains_key(id) && c.incarnation(*id).is_none())
                .collect();
            (c.cluster_id().map(str::to_string), unregistered)
        });
        let Some((cluster_id, unregistered)) = known else {
            continue;
        };
        if let Some(id) = &cluster_id {
            if let Err(e) = node.record_cluster_id(id) {
                tracing::error!("cannot record cluster id {id} in the data dir: {e}");
            }
        }
        if !meta.is_leader() {
            continue;
        }
        let mut commands = Vec::new();
        if cluster_id.is_none() {
            commands.push(CatalogCommand::InitCluster {
                cluster_id: format!("{:032x}", rand::random::<u128>()),
            });
        }
        commands.extend(
            unregistered
                .into_iter()
                .map(|(node, incarnation)| CatalogCommand::RegisterNode { node, incarnation }),
        );
        for cmd in commands {
            match meta.raft.client_write(GroupCommand::Catalog(cmd)).await {
                Ok(resp) => match resp.data {
                    GroupResponse::Catalog(CatalogOutcome::ClusterId(id)) => {
                        tracing::info!(cluster_id = %id, "cluster named");
                    }
                    GroupResponse::Catalog(CatalogOutcome::Invalid(why)) => {
                        tracing::error!("registering a node's data dir refused: {why}");
                    }
                    _ => {}
                },
                Err(e) => tracing::debug!("catalog write from the registry failed: {e}"),
            }
        }
    }
}

/// The metadata leader's side of a join (other nodes forward to it).
pub async fn handle_join(node: &Node, req: JoinRequest) -> Result<(), String> {
    let meta = node
        .meta()
        .ok_or("the metadata group is not running here")?;
    if !meta.is_leader() {
        let leader = meta
            .current_leader()
            .filter(|l| *l != node.id())
            .ok_or("no metadata leader right now; retry")?;
        let addr = meta
            .member_addr(leader)
            .ok_or("no address for the metadata leader; retry")?;
        let payload = wire::encode(&req).map_err(|e| e.to_string())?;
        let reply = call(
            node.pool(),
            &addr,
            node.id(),
            ControlRpc::Join,
            payload,
            JOIN_TIMEOUT,
        )
        .await?;
        return wire::decode::<Result<(), String>>(&reply).map_err(|e| e.to_string())?;
    }
    let verdict = node
        .with_catalog(|c| {
            if c.is_removed(req.node) {
                return Err(format!(
                    "node {} was removed from the cluster; node ids are never reused",
                    req.node
                ));
            }
            match c.incarnation(req.node) {
                Some(known) if known != req.incarnation => Err(format!(
                    "node {} is registered with another data dir (incarnation {known}); \
                     replace it under a new id",
                    req.node
                )),
                _ => Ok(()),
            }
        })
        .ok_or("the catalog is not loaded yet; retry")?;
    verdict?;
    if meta.voter_ids().contains(&req.node) {
        return Ok(());
    }
    // A learner already: an earlier attempt added it (and then failed, or its
    // answer was lost); carry on from there.
    let members = node.members();
    if let Some((holder, _)) = members
        .iter()
        .find(|(id, addr)| **id != req.node && **addr == req.addr)
    {
        return Err(format!(
            "address {} belongs to node {holder}: run `raftq cluster remove-node {holder}` \
             first, then this node can join at that address",
            req.addr
        ));
    }
    let learner_at = members.get(&req.node).cloned();
    match &learner_at {
        Some(addr) if *addr != req.addr => {
            return Err(format!("node id {} is taken (by {addr})", req.node));
        }
        _ if req.node == 0 => return Err("node id 0 is not a node id".into()),
        _ => {}
    }
    verify_joiner(node, &req).await?;
    if learner_at.is_none() {
        tracing::info!(node = req.node, addr = %req.addr, "adding a node: catching it up as a learner");
        meta.raft
            .add_learner(req.node, BasicNode::new(&req.addr), false)
            .await
            .map_err(|e| format!("adding node {} as a learner: {e}", req.node))?;
    }
    if !caught_up(&meta, req.node, JOIN_TIMEOUT).await {
        let gone = ChangeMembers::RemoveNodes(BTreeSet::from([req.node]));
        if let Err(e) = meta.raft.change_membership(gone, false).await {
            tracing::warn!(
                node = req.node,
                "dropping a learner that never caught up: {e}"
            );
        }
        return Err(format!(
            "node {} did not catch up within {JOIN_TIMEOUT:?}; it was dropped, retry",
            req.node
        ));
    }
    let voters = ChangeMembers::AddVoterIds(BTreeSet::from([req.node]));
    meta.raft
        .change_membership(voters, false)
        .await
        .map_err(|e| format!("making node {} a voter: {e}", req.node))?;
    let register = CatalogCommand::RegisterNode {
        node: req.node,
        incarnation: req.incarnation,
    };
    if let Err(e) = meta
        .raft
        .client_write(GroupCommand::Catalog(register))
        .await
    {
        tracing::warn!(node = req.node, "registering the new node's data dir: {e}");
    }
    tracing::info!(node = req.node, "node joined the cluster as a voter");
    Ok(())
}

/// The node at the joiner's address must be that node, with that data dir:
/// anything else would make an address that answers nothing, or another node,
/// a voter.
async fn verify_joiner(node: &Node, req: &JoinRequest) -> Result<(), String> {
    let reply = call(
        node.pool(),
        &req.addr,
        node.id(),
        ControlRpc::Identify,
        Bytes::new(),
        IDENTIFY_TIMEOUT,
    )
    .await
    .map_err(|e| format!("node {} does not answer at {}: {e}", req.node, req.addr))?;
    let answer: IdentifyReply = wire::decode(&reply).map_err(|e| e.to_string())?;
    if answer.answered_by != req.node || answer.answerer_incarnation != req.incarnation {
        return Err(format!(
            "the node at {} is node {} (incarnation {}), not the joining node {}",
            req.addr, answer.answered_by, answer.answerer_incarnation, req.node
        ));
    }
    Ok(())
}

/// Waits until the learner `id` matches the leader's log up to where it was
/// when the wait began; false after `timeout`.
async fn caught_up(group: &Group, id: NodeId, timeout: Duration) -> bool {
    let target = group.raft.metrics().borrow().last_log_index.unwrap_or(0);
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        let matched = group
            .raft
            .metrics()
            .borrow()
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).copied().flatten())
            .map(|l| l.index);
        if matched.is_some_and(|m| m >= target) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A new node's side of a join (or a node whose metadata replica was
/// rebuilt): asks the nodes at `addrs` in turn until the cluster has made it
/// a voter of the metadata group.
pub async fn join_cluster(node: Arc<Node>, addrs: Vec<String>) {
    let request = JoinRequest {
        node: node.id(),
        addr: node.config().advertise.clone(),
        incarnation: node.identity().incarnation,
    };
    let Ok(payload) = wire::encode(&request) else {
        tracing::error!("cannot encode the join request");
        return;
    };
    loop {
        for addr in &addrs {
            if is_voter(&node) {
                if node
                    .damage()
                    .own()
                    .iter()
                    .any(|d| d.group == METADATA_GROUP)
                {
                    tracing::info!("rebuilt metadata replica caught up: a voter again");
                    node.damage().repaired(METADATA_GROUP);
                }
                return;
            }
            let reply = call(
                node.pool(),
                addr,
                node.id(),
                ControlRpc::Join,
                payload.clone(),
                JOIN_TIMEOUT,
            )
            .await;
            match reply.map(|r| wire::decode::<Result<(), String>>(&r)) {
                Ok(Ok(Ok(()))) => {
                    tracing::info!(via = %addr, "joined the cluster");
                    node.damage().repaired(METADATA_GROUP);
                    return;
                }
                Ok(Ok(Err(why))) => tracing::warn!(via = %addr, "join refused for now: {why}"),
                Ok(Err(e)) => tracing::warn!(via = %addr, "unreadable join answer: {e}"),
                Err(e) => tracing::warn!(via = %addr, "join request failed: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn is_voter(node: &Node) -> bool {
    node.meta()
        .is_some_and(|m| m.voter_ids().contains(&node.id()))
}
