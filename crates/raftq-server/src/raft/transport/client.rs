//! Client side of the Raft transport: openraft's network traits over tonic.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode, LogId, Vote};
use raftq_proto::internal::raft_peer_client::RaftPeerClient;
use raftq_proto::internal::RaftRequest;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::failover::handle::Failover;
use crate::raft::transport::pool::{ChannelPool, Lane};
use crate::raft::transport::wire;
use crate::raft::types::{entry_bytes, GroupId, NodeId, TypeConfig};

/// Slowest transfer rate a bulk request is given time for: a 32 MiB batch gets
/// 8 s on top of the heartbeat interval before it is sent again.
const BULK_MIN_BYTES_PER_SEC: f64 = 4.0 * 1024.0 * 1024.0;

/// Creates per-target clients for one group.
pub struct NetworkFactory {
    pub group: GroupId,
    pub self_id: NodeId,
    pub pool: Arc<ChannelPool>,
    pub failover: Arc<Failover>,
    /// How often a peer must hear from its leader: keepalives during long
    /// transfers go out this often.
    pub heartbeat: Duration,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            peer: Peer {
                group: self.group,
                self_id: self.self_id,
                target,
                addr: node.addr.clone(),
                pool: self.pool.clone(),
                failover: self.failover.clone(),
                heartbeat: self.heartbeat,
            },
            in_flight: None,
        }
    }
}

/// One peer as seen by one group: where to send and whom to credit.
#[derive(Clone)]
struct Peer {
    group: GroupId,
    self_id: NodeId,
    target: NodeId,
    addr: String,
    pool: Arc<ChannelPool>,
    failover: Arc<Failover>,
    heartbeat: Duration,
}

/// A transport failure, before any answer of the peer was read.
#[derive(Clone, Debug)]
enum SendError {
    /// The peer may be slow or paused: openraft retries without backoff.
    Network(String),
    /// The peer cannot take it now (no process, group not running there yet).
    Unreachable(String),
}

impl<E: std::error::Error> From<SendError> for RPCError<NodeId, BasicNode, E> {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Network(m) => NetworkError::from(AnyError::error(m)).into(),
            SendError::Unreachable(m) => Unreachable::from(AnyError::error(m)).into(),
        }
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
    Keepalive,
}

impl Peer {
    async fn send(
        &self,
        rpc: Rpc,
        lane: Lane,
        payload: Bytes,
        data: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, SendError> {
        let channel = self
            .pool
            .get(&self.addr, lane)
            .map_err(|e| SendError::Unreachable(e.to_string()))?;
        let mut client = RaftPeerClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let mut request = tonic::Request::new(RaftRequest {
            group: self.group,
            from: self.self_id,
            payload,
            data,
            to: self.target,
        });
        request.set_timeout(timeout);
        let counter = match rpc {
            Rpc::Append => &self.pool.sent.append_entries,
            Rpc::Vote => &self.pool.sent.votes,
            Rpc::Snapshot => &self.pool.sent.snapshots,
            Rpc::Keepalive => &self.pool.sent.keepalives,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let reply = match rpc {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
            Rpc::Keepalive => client.keepalive(request).await,
        };
        match reply {
            Ok(r) => {
                self.failover.heard(self.target);
                Ok(r.into_inner().payload)
            }
            Err(status) => {
                if process_is_gone(&status) {
                    self.failover.refused(self.target);
                }
                let message = format!("{}: {}", status.code(), status.message());
                // A peer too slow to answer in time is retried at once, or a
                // heartbeat would wait out a backoff; one that refused the
                // connection or cannot serve the group yet is backed off
                // (openraft pauses before retrying an Unreachable peer).
                Err(match status.code() {
                    tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                        SendError::Network(message)
                    }
                    _ => SendError::Unreachable(message),
                })
            }
        }
    }

    /// A small request on the control lane and its decoded answer.
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
        let reply = self
            .send(rpc, Lane::Control, payload, Bytes::new(), timeout)
            .await?;
        self.answer(&reply)
    }

    fn answer<Resp, E>(&self, reply: &[u8]) -> Result<Resp, RPCError<NodeId, BasicNode, E>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let result: Result<Resp, E> = wire::decode(reply).map_err(|e| NetworkError::new(&e))?;
        result.map_err(|e| RemoteError::new(self.target, e).into())
    }
}

impl Peer {
    /// Awaits `work` (a long transfer to this peer), sending the peer an empty
    /// AppendEntries of this leader at once and then every heartbeat interval
    /// meanwhile. openraft sends a follower no heartbeat while a request to it
    /// is outstanding, and its election timer would fire in the middle of a
    /// large append or snapshot. The keepalive names no log position
    /// (prev_log_id and leader_commit None), so it always matches, appends
    /// nothing and commits nothing: it only proves the leader alive.
    async fn keeping_alive<F: std::future::Future>(
        &self,
        vote: Vote<NodeId>,
        work: F,
    ) -> F::Output {
        let mut ticks = tokio::time::interval(self.heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = ticks.tick() => {
                    let peer = self.clone();
                    tokio::spawn(async move { peer.keepalive(vote).await });
                }
            }
        }
    }

    async fn keepalive(&self, vote: Vote<NodeId>) {
        let beat = AppendEntriesRequest::<TypeConfig> {
            vote,
            prev_log_id: None,
            leader_commit: None,
            entries: Vec::new(),
        };
        let Ok(payload) = wire::encode(&beat) else {
            return;
        };
        let _ = self
            .send(
                Rpc::Keepalive,
                Lane::Control,
                payload,
                Bytes::new(),
                self.heartbeat,
            )
            .await;
    }

    /// One snapshot chunk: its bytes travel beside the encoded request, and
    /// every chunk but the last has a deadline that fits its size, so a
    /// stalled one is sent again at its offset (openraft's retry) instead of
    /// the transfer starting over after `install_snapshot_timeout`.
    async fn snapshot_chunk(
        &self,
        mut rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let data = Bytes::from(std::mem::take(&mut rpc.data));
        let timeout = if rpc.done {
            option.hard_ttl()
        } else {
            (self.heartbeat * 20 + transfer_time(data.len())).min(option.hard_ttl())
        };
        let payload = wire::encode(&rpc).map_err(|e| NetworkError::new(&e))?;
        let vote = rpc.vote;
        let end = rpc.offset.saturating_add(data.len() as u64);
        let reply = self
            .keeping_alive(
                vote,
                self.send(Rpc::Snapshot, Lane::Bulk, payload, data, timeout),
            )
            .await?;
        self.pool
            .snapshot_progress
            .chunk_sent(self.group, self.target, end, rpc.done);
        self.answer(&reply)
    }
}

fn transfer_time(bytes: usize) -> Duration {
    Duration::from_secs_f64(bytes as f64 / BULK_MIN_BYTES_PER_SEC)
}

/// Whether the connection failed because no process listens any more (killed,
/// crashed, restarting), read from the typed causes, not from their text: a
/// paused or cut-off peer times out instead, and is left to the election
/// timeout.
pub fn process_is_gone(status: &tonic::Status) -> bool {
    use std::io::ErrorKind;
    raftq_proto::transport::io_cause(status, |kind| {
        matches!(
            kind,
            ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
        )
    })
}

type AppendResult = Result<AppendEntriesResponse<NodeId>, SendError>;

/// An AppendEntries too large to be sure of finishing within one heartbeat
/// interval, which is all openraft gives it. It runs on in its own task with
/// a timeout that grows with its size; openraft's retry of the same entries
/// waits for it again instead of sending them once more, so the largest
/// allowed batch always gets through, however long the transfer takes.
struct InFlightAppend {
    vote: Vote<NodeId>,
    prev: Option<LogId<NodeId>>,
    last: Option<LogId<NodeId>>,
    /// Awaited through `&mut`, so a caller that openraft gives up on leaves it
    /// for the next.
    result: oneshot::Receiver<AppendResult>,
    task: JoinHandle<()>,
}

impl InFlightAppend {
    fn start(peer: &Peer, rpc: AppendEntriesRequest<TypeConfig>, ttl: Duration) -> Self {
        let (tx, result) = oneshot::channel();
        let peer = peer.clone();
        let (vote, prev, last) = (rpc.vote, rpc.prev_log_id, last_log_id(&rpc));
        let task = tokio::spawn(async move {
            let transfer = async {
                // Tens of milliseconds of copying for a large batch: off the
                // async workers, which carry every group's heartbeats.
                let payload = tokio::task::spawn_blocking(move || wire::encode(&rpc))
                    .await
                    .map_err(|e| SendError::Network(format!("encoding the append: {e}")))?
                    .map_err(|e| SendError::Network(format!("encoding the append: {e}")))?;
                let timeout = ttl + transfer_time(payload.len());
                peer.send(Rpc::Append, Lane::Bulk, payload, Bytes::new(), timeout)
                    .await
            };
            let outcome = match peer.keeping_alive(vote, transfer).await {
                Ok(reply) => {
                    match wire::decode::<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>>(
                        &reply,
                    ) {
                        Ok(Ok(resp)) => Ok(resp),
                        Ok(Err(e)) => Err(SendError::Network(format!(
                            "node {} refused the append: {e}",
                            peer.target
                        ))),
                        Err(e) => Err(SendError::Network(format!("bad append reply: {e}"))),
                    }
                }
                Err(e) => Err(e),
            };
            let _ = tx.send(outcome);
            // Until openraft comes back for the answer (the task is aborted
            // then), the peer still hears from this leader.
            peer.keeping_alive(vote, std::future::pending::<()>()).await;
        });
        InFlightAppend {
            vote,
            prev,
            last,
            result,
            task,
        }
    }

    /// Whether `rpc` asks for what this transfer already carries, from the same
    /// leader: the same starting point, entries in this leader's log.
    fn covers(&self, rpc: &AppendEntriesRequest<TypeConfig>) -> bool {
        !rpc.entries.is_empty() && rpc.vote == self.vote && rpc.prev_log_id == self.prev
    }

    /// The transfer's answer, as an answer to `rpc` (which `covers` accepted).
    fn answer_for(
        &self,
        outcome: AppendResult,
        rpc: &AppendEntriesRequest<TypeConfig>,
    ) -> AppendResult {
        outcome.map(|resp| reanswer(resp, self.last, last_log_id(rpc)))
    }
}

/// An answer to an append that carried entries up to `carried`, as the answer
/// to a request from the same leader and starting point that asks up to
/// `wanted`. What the peer matched of this leader's log answers any such
/// request: all of it when it reaches `wanted`, else as far as it goes.
fn reanswer(
    resp: AppendEntriesResponse<NodeId>,
    carried: Option<LogId<NodeId>>,
    wanted: Option<LogId<NodeId>>,
) -> AppendEntriesResponse<NodeId> {
    let matched_up_to = |m: Option<LogId<NodeId>>| {
        if m >= wanted {
            AppendEntriesResponse::Success
        } else {
            AppendEntriesResponse::PartialSuccess(m)
        }
    };
    match resp {
        AppendEntriesResponse::Success => matched_up_to(carried),
        AppendEntriesResponse::PartialSuccess(m) => matched_up_to(m),
        other => other,
    }
}

/// Message bytes the request carries, without encoding it.
fn entries_bytes(rpc: &AppendEntriesRequest<TypeConfig>) -> usize {
    rpc.entries.iter().map(entry_bytes).sum()
}

fn last_log_id(rpc: &AppendEntriesRequest<TypeConfig>) -> Option<LogId<NodeId>> {
    rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id)
}

pub struct PeerClient {
    peer: Peer,
    in_flight: Option<InFlightAppend>,
}

impl Drop for PeerClient {
    fn drop(&mut self) {
        if let Some(f) = self.in_flight.take() {
            f.task.abort();
        }
    }
}

impl PeerClient {
    async fn append(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        if !self.in_flight.as_ref().is_some_and(|f| f.covers(&rpc)) {
            if let Some(stale) = self.in_flight.take() {
                stale.task.abort();
            }
            if Lane::for_payload(entries_bytes(&rpc)) == Lane::Control {
                return self.peer.call(Rpc::Append, &rpc, option.hard_ttl()).await;
            }
            self.in_flight = Some(InFlightAppend::start(
                &self.peer,
                rpc.clone(),
                option.hard_ttl(),
            ));
        }
        let Some(flight) = self.in_flight.as_mut() else {
            return Err(NetworkError::from(AnyError::error("append lost its transfer")).into());
        };
        // openraft drops this future after one heartbeat interval; the transfer
        // goes on and the next call for the same entries picks up its answer.
        let outcome = (&mut flight.result).await;
        let outcome = outcome.unwrap_or_else(|_| {
            Err(SendError::Network(
                "append transfer ended without an answer".into(),
            ))
        });
        let answer = flight.answer_for(outcome, &rpc);
        flight.task.abort();
        self.in_flight = None;
        answer.map_err(Into::into)
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.append(rpc, option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.peer.snapshot_chunk(rpc, option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.peer.call(Rpc::Vote, &rpc, option.hard_ttl()).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // Short pauses: a restarted peer should be caught up within a heartbeat or two.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn id(index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(CommittedLeaderId::new(2, 1), index))
    }

    #[test]
    fn a_transfer_answers_a_retry_for_no_more_than_it_carried() {
        use AppendEntriesResponse::*;
        // The retry asks for the same entries: the answer is the transfer's.
        assert!(matches!(reanswer(Success, id(7), id(7)), Success));
        // It asks for more (entries appended meanwhile): only up to 7 matched.
        assert!(matches!(reanswer(Success, id(7), id(9)), PartialSuccess(m) if m == id(7)));
        // It asks for fewer (a smaller batch hint): all of them matched.
        assert!(matches!(reanswer(Success, id(7), id(6)), Success));
        assert!(
            matches!(reanswer(PartialSuccess(id(5)), id(7), id(9)), PartialSuccess(m) if m == id(5))
        );
        assert!(matches!(
            reanswer(PartialSuccess(id(5)), id(7), id(5)),
            Success
        ));
        assert!(matches!(reanswer(Conflict, id(7), id(9)), Conflict));
        let higher = Vote::new_committed(3, 2);
        assert!(matches!(reanswer(HigherVote(higher), id(7), id(9)), HigherVote(v) if v == higher));
    }

    #[tokio::test]
    async fn a_refused_connection_is_told_from_its_typed_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_lazy();
        let status = RaftPeerClient::new(channel)
            .vote(RaftRequest::default())
            .await
            .expect_err("nothing listens there");
        assert!(process_is_gone(&status), "{status:?}");
        assert!(
            raftq_proto::transport::never_connected(&status),
            "{status:?}"
        );
        assert!(!process_is_gone(&tonic::Status::unavailable(
            "connection refused"
        )));
    }
}
