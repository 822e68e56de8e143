//! Client side of the Raft transport: openraft's network traits over tonic.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use raftq_proto::internal::raft_peer_client::RaftPeerClient;
use raftq_proto::internal::RaftRequest;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::liveness::Liveness;
use crate::network::pool::ChannelPool;
use crate::network::wire;
use crate::raft::types::{GroupId, NodeId, TypeConfig};

/// Creates per-target clients for one group.
pub struct NetworkFactory {
    pub group: GroupId,
    pub self_id: NodeId,
    pub pool: Arc<ChannelPool>,
    pub liveness: Arc<Liveness>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            group: self.group,
            self_id: self.self_id,
            target,
            addr: node.addr.clone(),
            pool: self.pool.clone(),
            liveness: self.liveness.clone(),
        }
    }
}

pub struct PeerClient {
    group: GroupId,
    self_id: NodeId,
    target: NodeId,
    addr: String,
    pool: Arc<ChannelPool>,
    liveness: Arc<Liveness>,
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        rpc: Rpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = wire::encode(req).map_err(|e| NetworkError::new(&e))?;
        let channel = self
            .pool
            .get(&self.addr)
            .map_err(|e| Unreachable::new(&e))?;
        let mut client = RaftPeerClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let mut request = tonic::Request::new(RaftRequest {
            group: self.group,
            from: self.self_id,
            payload,
        });
        request.set_timeout(timeout);
        let counter = match rpc {
            Rpc::Append => &self.pool.sent.append_entries,
            Rpc::Vote => &self.pool.sent.votes,
            Rpc::Snapshot => &self.pool.sent.snapshots,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let reply = match rpc {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = match reply {
            Ok(r) => r.into_inner(),
            // A transport failure or a peer that cannot serve the group yet: back off
            // (openraft retries Unreachable peers after a pause, not in a tight loop).
            Err(status) => {
                if process_is_gone(&status) {
                    self.liveness.refused(self.target);
                }
                let err = AnyError::error(format!("{}: {}", status.code(), status.message()));
                return Err(match status.code() {
                    tonic::Code::DeadlineExceeded => NetworkError::from(err).into(),
                    _ => Unreachable::from(err).into(),
                });
            }
        };
        self.liveness.saw(self.target);
        let result: Result<Resp, E> =
            wire::decode(&reply.payload).map_err(|e| NetworkError::new(&e))?;
        result.map_err(|e| RemoteError::new(self.target, e).into())
    }
}

/// A refused or reset connection means no process listens any more (killed,
/// crashed, restarting); a paused or cut-off peer times out instead, and is
/// left to the election timeout.
fn process_is_gone(status: &tonic::Status) -> bool {
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let text = format!("{status:?}").to_ascii_lowercase();
    ["connection refused", "connection reset", "broken pipe"]
        .iter()
        .any(|s| text.contains(s))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Append, &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Rpc::Snapshot, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, option.hard_ttl()).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // Short pauses: a restarted peer should be caught up within a heartbeat or two.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

/// Sends one node heartbeat to `peer` (see `quiesce`): short timeout, no
/// retries, since the next one follows in a moment.
pub async fn node_heartbeat(
    node: &crate::node::Node,
    peer: NodeId,
    addr: &str,
    beat: &crate::quiesce::NodeHeartbeat,
) -> Result<(), String> {
    let payload = wire::encode(beat).map_err(|e| e.to_string())?;
    let channel = node.pool.get(addr).map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(RaftRequest {
        group: 0,
        from: node.id,
        payload,
    });
    request.set_timeout(Duration::from_millis(node.config.election_timeout_min_ms));
    match RaftPeerClient::new(channel).node_heartbeat(request).await {
        Ok(_) => Ok(()),
        Err(status) => {
            if process_is_gone(&status) {
                node.liveness.refused(peer);
            }
            Err(status.to_string())
        }
    }
}
