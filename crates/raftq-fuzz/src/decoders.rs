//! Arbitrary bytes through every decoder that reads bytes from outside a
//! node's own memory: the peer transport's payloads (requests and replies,
//! as a node decodes them from the wire) and the store's encoding of log
//! entries, votes, snapshot metadata and snapshot state (what a node reads
//! back from disk, and a snapshot a leader sent). Each may answer an error;
//! none may panic or abort (an allocation failure is an abort).

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Entry, LogId, SnapshotMeta, StoredMembership, Vote};
use raftq_queue::{Command, StreamLog, WorkQueue};
use raftq_server::failover::heartbeat::NodeHeartbeat;
use raftq_server::raft::state_machine::Applied;
use raftq_server::raft::transport::wire;
use raftq_server::raft::types::TypeConfig;

/// Decodes `data` as each peer payload type a node accepts or receives.
fn peer_payloads(data: &[u8]) {
    let _ = wire::decode::<AppendEntriesRequest<TypeConfig>>(data);
    let _ = wire::decode::<VoteRequest<u64>>(data);
    let _ = wire::decode::<InstallSnapshotRequest<TypeConfig>>(data);
    let _ = wire::decode::<NodeHeartbeat>(data);
    let _ = wire::decode::<u64>(data);
    let _ = wire::decode::<Result<AppendEntriesResponse<u64>, RaftError<u64>>>(data);
    let _ = wire::decode::<Result<VoteResponse<u64>, RaftError<u64>>>(data);
    let _ = wire::decode::<
        Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>,
    >(data);
}

/// Decodes `data` as each value the store keeps on disk or in a snapshot.
fn stored_values(data: &[u8]) {
    let _ = raftq_store::decode_value::<Entry<TypeConfig>>(data);
    let _ = raftq_store::decode_value::<Vote<u64>>(data);
    let _ = raftq_store::decode_value::<LogId<u64>>(data);
    let _ = raftq_store::decode_value::<SnapshotMeta<u64, BasicNode>>(data);
    let _ = raftq_store::decode_value::<StoredMembership<u64, BasicNode>>(data);
    let _ = raftq_store::decode_value::<Applied>(data);
    // The queue's own types, whose batch codec checks lengths from peers.
    if let Ok(cmd) = raftq_store::decode_value::<Command>(data) {
        let again = raftq_store::encode_value(&cmd).expect("a decoded command encodes");
        let back: Command = raftq_store::decode_value(&again).expect("and decodes again");
        assert_eq!(back, cmd, "a decoded command survives a round trip");
    }
    let _ = raftq_store::decode_value::<WorkQueue>(data);
    let _ = raftq_store::decode_value::<StreamLog>(data);
}

/// Runs one fuzz input.
pub fn run(data: &[u8]) {
    peer_payloads(data);
    stored_values(data);
}
