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

/// Encoded `FileDescriptorSet` of every raftq proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/raftq_descriptor.bin"));
