//! Durable storage for raftq's Raft groups on one `sled::Db` per node.
//!
//! Every group (the metadata group and one per queue) gets its own trees in the
//! node's single database, so one `flush` makes the appends of *all* groups
//! durable at once: that is the group commit the [`GroupCommitter`] exploits.

#![forbid(unsafe_code)]
// openraft's trait signatures impose its large `StorageError`; boxing it locally
// would only add conversions at every call.
#![allow(clippy::result_large_err)]

mod codec;
mod committer;
mod identity;
mod log_cleaner;
mod log_store;
mod node_store;
mod snapshot_store;

pub use codec::decode as decode_untrusted;
pub use committer::{FlushStats, GroupCommitter};
pub use identity::Identity;
pub use log_store::{LogStore, REPLICATION_BATCH_BYTES};
pub use node_store::NodeStore;
pub use snapshot_store::{
    decode_value, encode_value, read_value, PendingSnapshot, SnapshotStore, StoredSnapshot,
};

/// Errors of the storage layer that are not reported through openraft.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("encoding: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("decoding: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("the group-commit thread is gone; the node is shutting down")]
    CommitterGone,
    #[error("snapshot file: {0}")]
    Io(#[from] std::io::Error),
    #[error("flush failed: {0}")]
    Flush(String),
}
