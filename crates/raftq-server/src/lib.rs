//! raftqd: a raftq node. Every queue is its own Raft group (openraft) stored in
//! the node's sled database; any node accepts any request.

// deny, not forbid: the one exception is malloc_trim after a snapshot
// (raft/state_machine.rs), which glibc exposes only as an FFI call.
#![deny(unsafe_code)]
// openraft's trait signatures impose its large `StorageError`; boxing it locally
// would only add conversions at every call.
#![allow(clippy::result_large_err)]

pub mod alarms;
pub mod api;
pub mod boot;
pub mod config;
pub mod error;
pub mod failover;
pub mod ids;
pub mod leader;
pub mod meta;
pub mod metrics;
pub mod node;
pub mod raft;
pub mod router;
pub mod server;
