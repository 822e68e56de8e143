//! Generated gRPC types for raftq: the public API (`raftq.v1`) and the node-to-node
//! Raft transport (`raftq.internal.v1`).

/// Public API: `QueueService` and `AdminService`.
pub mod v1 {
    tonic::include_proto!("raftq.v1");
}

/// Node-to-node transport. Not stable, not for clients.
pub mod internal {
    tonic::include_proto!("raftq.internal.v1");
}

/// Response metadata that carries what a client acts on, typed, beside the
/// status message (which is for people and may be reworded).
pub mod metadata {
    /// On UNAVAILABLE: `not-applied` (refused before anything was proposed:
    /// any request may be resent) or `maybe-applied` (it may have taken
    /// effect: resend only what is idempotent).
    pub const RETRY: &str = "raftq-retry";
    pub const NOT_APPLIED: &str = "not-applied";
    pub const MAYBE_APPLIED: &str = "maybe-applied";
    /// The queue's leader, when the answering node knows it: node id and the
    /// address clients reach it at.
    pub const LEADER_ID: &str = "raftq-leader-id";
    pub const LEADER_ADDR: &str = "raftq-leader-addr";
}

/// Encoded `FileDescriptorSet` of every raftq proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/raftq_descriptor.bin"));
