//! One small request on a peer's control lane (node heartbeats, hand-off,
//! read index, identify, join, group membership): the request every such
//! call builds, sent and answered in one place.

use std::time::Duration;

use bytes::Bytes;
use raftq_proto::internal::raft_peer_client::RaftPeerClient;
use raftq_proto::internal::RaftRequest;

use crate::ids::{GroupId, NodeId};
use crate::raft::transport::pool::{ChannelPool, Lane};

#[derive(Debug, Clone, Copy)]
pub enum ControlRpc {
    NodeHeartbeat,
    Campaign,
    ReadIndex,
    Identify,
    Join,
    GroupMembership,
    ReleaseDamaged,
}

/// Sends `payload` to node `to` (0: whoever answers) at `addr` and returns
/// its answer's payload.
pub async fn call(
    pool: &ChannelPool,
    addr: &str,
    rpc: ControlRpc,
    (group, from, to): (GroupId, NodeId, NodeId),
    payload: Bytes,
    timeout: Duration,
) -> Result<Bytes, tonic::Status> {
    let channel = pool
        .get(addr, Lane::Control)
        .map_err(|e| tonic::Status::unavailable(format!("bad peer address {addr}: {e}")))?;
    let mut request = tonic::Request::new(RaftRequest {
        group,
        from,
        payload,
        data: Bytes::new(),
        to,
    });
    request.set_timeout(timeout);
    let mut client = RaftPeerClient::new(channel);
    let reply = match rpc {
        ControlRpc::NodeHeartbeat => client.node_heartbeat(request).await,
        ControlRpc::Campaign => client.campaign(request).await,
        ControlRpc::ReadIndex => client.read_index(request).await,
        ControlRpc::Identify => client.identify(request).await,
        ControlRpc::Join => client.join(request).await,
        ControlRpc::GroupMembership => client.group_membership(request).await,
        ControlRpc::ReleaseDamaged => client.release_damaged(request).await,
    };
    Ok(reply?.into_inner().payload)
}
