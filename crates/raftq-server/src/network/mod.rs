//! Node-to-node Raft transport over gRPC.

pub mod client;
pub mod pool;
pub mod server;
pub mod wire;
