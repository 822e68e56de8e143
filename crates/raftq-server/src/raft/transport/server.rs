//! Server side of the Raft transport: decode, hand to the group's `Raft`, encode.

use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{LogId, ServerState};
use raftq_proto::internal::raft_peer_server::RaftPeer;
use raftq_proto::internal::{RaftReply, RaftRequest};
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::failover::driver::NodeGroups;
use crate::failover::heartbeat::NodeHeartbeat;
use crate::failover::vote::{LogPos, VoteSeen, Voter};
use crate::meta::identity::{IdentifyReply, JoinRequest};
use crate::node::{Group, Node};
use crate::raft::transport::pool::CONTROL_PAYLOAD_MAX;
use crate::raft::transport::wire;
use crate::raft::types::TypeConfig;

pub struct PeerService {
    pub node: Arc<Node>,
}

impl PeerService {
    fn group(&self, req: &RaftRequest) -> Result<Arc<Group>, Status> {
        self.node.failover().heard(req.from);
        self.running(req)
    }

    /// The request, once its connection's certificate speaks for the node it
    /// claims to come from (with TLS on; see `tls::peer_identity`).
    fn authenticated(&self, request: Request<RaftRequest>) -> Result<RaftRequest, Status> {
        if self.node.tls().is_some() {
            crate::tls::peer_identity::check(request.peer_certs(), request.get_ref().from)?;
        }
        Ok(request.into_inner())
    }

    /// Refuses a request meant for another node id (see `RaftRequest.to`).
    fn addressed(&self, req: &RaftRequest) -> Result<(), Status> {
        if req.to != 0 && req.to != self.node.id() {
            return Err(Status::failed_precondition(format!(
                "this address is node {}, not node {}",
                self.node.id(),
                req.to
            )));
        }
        Ok(())
    }

    fn running(&self, req: &RaftRequest) -> Result<Arc<Group>, Status> {
        self.addressed(req)?;
        // The group may not exist here yet (queue just created, catalog not yet
        // applied): the sender backs off and retries.
        self.node.group(req.group).ok_or_else(|| {
            Status::not_found(format!(
                "group {} is not running on node {}",
                req.group,
                self.node.id()
            ))
        })
    }
}

impl PeerService {
    /// The group a leader's replication request is for; hearing from it
    /// answers a quiet follower's refresh (see `failover::quiet`).
    fn leaders_group(&self, req: &RaftRequest) -> Result<Arc<Group>, Status> {
        self.node.failover().append_from(req.group, req.from);
        self.running(req)
    }
}

fn decode<T: serde::de::DeserializeOwned>(req: &RaftRequest) -> Result<T, Status> {
    wire::decode(&req.payload)
        .map_err(|e| Status::invalid_argument(format!("bad raft payload: {e}")))
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftReply>, Status> {
    let payload =
        wire::encode(value).map_err(|e| Status::internal(format!("encode reply: {e}")))?;
    Ok(Response::new(RaftReply { payload }))
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req = self.authenticated(request)?;
        let group = self.leaders_group(&req)?;
        let rpc: AppendEntriesRequest<TypeConfig> = if req.payload.len() <= CONTROL_PAYLOAD_MAX {
            decode(&req)?
        } else {
            // Tens of milliseconds for a large batch: off the async workers,
            // which carry every group's heartbeats.
            tokio::task::spawn_blocking(move || decode(&req))
                .await
                .map_err(|e| Status::internal(format!("decoding the append: {e}")))??
        };
        reply(&group.raft.append_entries(rpc).await)
    }

    async fn keepalive(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req = self.authenticated(request)?;
        let group = self.leaders_group(&req)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&req)?;
        if !rpc.entries.is_empty() || rpc.prev_log_id.is_some() || rpc.leader_commit.is_some() {
            return Err(Status::invalid_argument(
                "a keepalive names no log position and carries no entries",
            ));
        }
        // openraft answers an append only once the log it accepted is
        // durable, which a large write ahead of it can hold up for longer
        // than the sender waits; the timer reset happens on arrival.
        tokio::spawn(async move {
            let _ = group.raft.append_entries(rpc).await;
        });
        reply(&())
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = self.authenticated(request)?;
        let group = self.group(&req)?;
        let rpc: VoteRequest<u64> = decode(&req)?;
        let voter = voter(&group);
        let result = group.raft.vote(rpc.clone()).await;
        if let Ok(resp) = &result {
            let seen = VoteSeen {
                candidate_term: rpc.vote.leader_id().get_term(),
                candidate_last: rpc.last_log_id.map(log_pos),
                granted: resp.vote_granted,
                our_last: resp.last_log_id.map(log_pos),
            };
            // A refusal for its log would delay the candidate's next election
            // by 2 x election_timeout_max; when this node stands itself
            // instead, the refusal is dropped, as if lost (see failover::vote).
            if self.node.failover().vote_answered(group.id, voter, seen) {
                return Err(Status::unavailable(
                    "voter refused the candidate's shorter log and stands itself",
                ));
            }
        }
        reply(&result)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req = self.authenticated(request)?;
        let group = self.leaders_group(&req)?;
        let mut rpc: InstallSnapshotRequest<TypeConfig> = decode(&req)?;
        rpc.data = req.data.to_vec();
        reply(&group.raft.install_snapshot(rpc).await)
    }

    async fn campaign(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = self.authenticated(request)?;
        let group = self.group(&req)?;
        let wait_ms: u64 = decode(&req)?;
        tracing::info!(
            group = req.group,
            from = req.from,
            wait_ms,
            "asked to take over leadership"
        );
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
            let _ = group.raft.trigger().elect().await;
        });
        reply(&())
    }

    async fn node_heartbeat(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req = self.authenticated(request)?;
        self.addressed(&req)?;
        let (beat, alarms, incarnation, damaged) = decode::<NodeHeartbeat>(&req)?.split();
        self.node.heard_incarnation(req.from, incarnation);
        self.node.damage().heard_from(req.from, damaged);
        self.node
            .alarms()
            .heard_from(req.from, alarms, std::time::Instant::now());
        self.node
            .failover()
            .node_heartbeat(req.from, &beat, &NodeGroups(&self.node));
        reply(&())
    }

    async fn identify(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = self.authenticated(request)?;
        let mut answer = self
            .node
            .with_catalog(|c| IdentifyReply::from_catalog(c, req.from))
            .unwrap_or_default();
        answer.answered_by = self.node.id();
        answer.answerer_incarnation = self.node.identity().incarnation;
        reply(&answer)
    }

    async fn join(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = self.authenticated(request)?;
        let join: JoinRequest = decode(&req)?;
        reply(&crate::meta::membership::handle_join(&self.node, join).await)
    }

    async fn group_membership(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req = self.authenticated(request)?;
        self.addressed(&req)?;
        let counted = match self.node.group(req.group) {
            Some(group) => crate::meta::departure::counted(&group, req.from),
            None => crate::meta::departure::Counted::Unknown,
        };
        reply(&counted)
    }

    async fn release_damaged(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req = self.authenticated(request)?;
        self.addressed(&req)?;
        reply(&crate::repair::release::release(&self.node, req.group, req.from).await)
    }

    async fn read_index(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req = self.authenticated(request)?;
        let group = self.group(&req)?;
        let result: Result<u64, String> = match group.raft.get_read_log_id().await {
            Ok((read_log_id, _)) => Ok(read_log_id.map(|l| l.index).unwrap_or(0)),
            Err(e) => Err(format!(
                "node {} cannot serve a read index: {e}",
                self.node.id()
            )),
        };
        reply(&result)
    }
}

/// This node in `group` before it answers a vote.
fn voter(group: &Group) -> Voter {
    let metrics = group.raft.metrics();
    let m = metrics.borrow();
    Voter {
        term: m.current_term,
        follower: m.state == ServerState::Follower,
        leader: m.current_leader,
    }
}

fn log_pos(id: LogId<u64>) -> LogPos {
    LogPos {
        term: id.leader_id.term,
        index: id.index,
    }
}
