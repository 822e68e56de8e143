//! Where a request goes: the local leader, or the leader (or a replica) elsewhere.
//!
//! Forwarding reuses the public API of the target node, tagged with a hop count so
//! a request can never bounce around: a node that receives a forwarded request
//! and cannot serve it answers UNAVAILABLE with the leader it knows.

use std::sync::Arc;

use openraft::error::ClientWriteError;
use openraft::raft::responder::Responder;
use openraft::RaftTypeConfig;
use raftq_proto::v1::queue_service_client::QueueServiceClient;

use tonic::metadata::MetadataMap;

use crate::error::{ApiError, Applied};
use crate::meta::catalog::QueueDef;
use crate::node::{Group, Node};
use crate::raft::transport::pool::Lane;
use crate::raft::types::{GroupCommand, GroupId, GroupResponse, NodeId, TypeConfig};

pub const HOPS_HEADER: &str = "x-raftq-hops";
/// Client → any node → a replica → the leader: at most two forwards.
pub const MAX_HOPS: u32 = 2;

pub fn hops(metadata: &MetadataMap) -> u32 {
    metadata
        .get(HOPS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A request to forward, tagged with the next hop count.
pub fn forwarded<T>(msg: T, hops: u32) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Ok(v) = (hops + 1).to_string().parse() {
        req.metadata_mut().insert(HOPS_HEADER, v);
    }
    req
}

pub enum Route {
    Local(Arc<Group>),
    Remote {
        addr: String,
        leader: Option<NodeId>,
    },
}

/// Where writes for `group` (replicated on `replicas`) must go from this node.
pub fn route(
    node: &Node,
    group: GroupId,
    replicas: &[NodeId],
    name: &str,
    hops: u32,
) -> Result<Route, ApiError> {
    let route = match node.group(group) {
        Some(_) if node.failover().draining() => {
            return Err(ApiError::unavailable(format!(
                "node {} is shutting down and handing off leadership; retry",
                node.id()
            )))
        }
        Some(g) if g.is_leader() => {
            if g.transferring.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(ApiError::unavailable(format!(
                    "leadership of queue '{name}' is moving off node {}; retry",
                    node.id()
                )));
            }
            return Ok(Route::Local(g));
        }
        Some(g) => match g.current_leader() {
            Some(leader) if leader != node.id() => match g.member_addr(leader) {
                Some(addr) => Route::Remote {
                    addr,
                    leader: Some(leader),
                },
                None => return Err(ApiError::no_leader(name)),
            },
            _ => return Err(ApiError::no_leader(name)),
        },
        // Not a replica here: any replica knows its leader. Prefer one we heard
        // from recently.
        None => {
            let mut candidates: Vec<NodeId> = replicas.to_vec();
            candidates.sort_by_key(|r| {
                node.failover()
                    .silence(*r)
                    .unwrap_or(std::time::Duration::MAX)
            });
            let addr = candidates
                .iter()
                .find_map(|r| node.node_addr(*r))
                .ok_or_else(|| ApiError::no_leader(name))?;
            Route::Remote { addr, leader: None }
        }
    };
    if hops >= MAX_HOPS {
        let leader = match &route {
            Route::Remote {
                addr,
                leader: Some(l),
            } => Some((*l, addr.clone())),
            _ => None,
        };
        return Err(ApiError::Unavailable {
            message: format!("node {} is not the leader of queue '{name}'", node.id()),
            leader,
            applied: Applied::No,
        });
    }
    Ok(route)
}

/// Addresses of a queue's replicas other than this node, in the order a read
/// should try them: replicas heard from recently first, in random order so
/// forwarded reads spread over them; the silent ones last, nearest first.
pub fn replica_addrs(node: &Node, replicas: &[NodeId]) -> Vec<(NodeId, String)> {
    use rand::seq::SliceRandom;
    let (mut up, mut silent): (Vec<_>, Vec<_>) = replicas
        .iter()
        .filter(|r| **r != node.id())
        .filter_map(|r| {
            let up = !node.failover().is_down(*r);
            Some((*r, node.node_addr(*r)?, (up, node.failover().silence(*r))))
        })
        .partition(|(_, _, (up, _))| *up);
    up.shuffle(&mut rand::thread_rng());
    silent.sort_by_key(|(_, _, (_, seen))| seen.unwrap_or(std::time::Duration::MAX));
    up.into_iter()
        .chain(silent)
        .map(|(id, addr, _)| (id, addr))
        .collect()
}

/// Waits until `group` knows a leader other than `stale` (a dead or deposed
/// one), or `until`; true when it does.
pub async fn leader_change(
    group: &Group,
    stale: Option<NodeId>,
    until: tokio::time::Instant,
) -> bool {
    let mut metrics = group.raft.metrics();
    loop {
        let leader = metrics.borrow_and_update().current_leader;
        if leader.is_some() && leader != stale {
            return true;
        }
        match tokio::time::timeout_at(until, metrics.changed()).await {
            Ok(Ok(())) => continue,
            _ => return false,
        }
    }
}

/// Proposes `cmd` on the local leader. `Err(Remote)` tells the caller to forward
/// instead, because leadership moved between routing and proposing.
pub async fn propose(
    group: &Group,
    cmd: GroupCommand,
    name: &str,
) -> Result<GroupResponse, ProposeError> {
    let proposed = submit(group, cmd, name).await?;
    outcome(proposed, name).await
}

/// A command handed to Raft, its outcome still to come.
pub type Proposed = <<TypeConfig as RaftTypeConfig>::Responder as Responder<TypeConfig>>::Receiver;

/// Hands `cmd` to the group's Raft core: commands submitted one after the
/// other are in the log in that order.
pub async fn submit(
    group: &Group,
    cmd: GroupCommand,
    name: &str,
) -> Result<Proposed, ProposeError> {
    group
        .raft
        .client_write_ff(cmd)
        .await
        .map_err(|e| group_unavailable(name, &e, Applied::No))
}

fn group_unavailable(name: &str, e: &dyn std::fmt::Display, applied: Applied) -> ProposeError {
    ProposeError::Api(ApiError::Unavailable {
        message: format!("queue '{name}': raft group unavailable: {e}"),
        leader: None,
        applied,
    })
}

/// Waits for a submitted command to be committed and applied.
pub async fn outcome(proposed: Proposed, name: &str) -> Result<GroupResponse, ProposeError> {
    match proposed.await {
        Ok(Ok(resp)) => Ok(resp.data),
        Ok(Err(ClientWriteError::ForwardToLeader(f))) => match (f.leader_id, f.leader_node) {
            (Some(id), Some(n)) => Err(ProposeError::Moved {
                leader: id,
                addr: n.addr,
            }),
            _ => Err(ProposeError::Api(ApiError::no_leader(name))),
        },
        Ok(Err(e)) => Err(group_unavailable(name, &e, Applied::Maybe)),
        Err(e) => Err(group_unavailable(name, &e, Applied::Maybe)),
    }
}

pub enum ProposeError {
    Moved { leader: NodeId, addr: String },
    Api(ApiError),
}

impl ProposeError {
    /// For callers that cannot forward any more (hop limit reached).
    pub fn into_api(self) -> ApiError {
        match self {
            ProposeError::Api(e) => e,
            ProposeError::Moved { leader, addr } => ApiError::Unavailable {
                message: "leadership moved".into(),
                leader: Some((leader, addr)),
                applied: Applied::No,
            },
        }
    }
}

/// The queue's definition. A queue this node does not know yet may have just
/// been created through another node: before saying NOT_FOUND, bring the
/// local catalog up to the metadata leader's commit point (a read index) and
/// look again, so a client that created a queue can use it at once anywhere.
pub async fn queue_def(node: &Node, name: &str) -> Result<QueueDef, ApiError> {
    if let Some(reason) = crate::meta::catalog::invalid_queue_name(name) {
        return Err(ApiError::InvalidArgument(reason));
    }
    if let Some(def) = node.queue_def(name) {
        return Ok(def);
    }
    if let Some(meta) = node.meta() {
        let index = crate::api::read_index::read_index(node, &meta, "metadata").await?;
        crate::api::read_index::wait_applied(&meta, index, "metadata").await?;
    }
    node.queue_def(name)
        .ok_or_else(|| ApiError::unknown_queue(name))
}

pub fn queue_client(
    node: &Node,
    addr: &str,
) -> Result<QueueServiceClient<tonic::transport::Channel>, ApiError> {
    let channel = node
        .pool()
        .get(addr, Lane::Bulk)
        .map_err(|e| ApiError::unavailable(format!("bad peer address {addr}: {e}")))?;
    // A forwarded request is the one this node accepted: the target's own
    // limits judge it, and answer RESOURCE_EXHAUSTED if theirs are lower.
    Ok(QueueServiceClient::new(channel)
        .max_decoding_message_size(crate::api::MAX_GRPC_MESSAGE)
        .max_encoding_message_size(usize::MAX))
}
