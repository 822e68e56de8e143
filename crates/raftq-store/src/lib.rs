//! Durable storage for raftq's Raft groups on one `sled::Db` per node.
//!
//! Every group (the metadata group and one per queue) gets its own trees in the
//! node's single database, so one `flush` makes the appends of *all* groups
//! durable at once: that is the group commit the [`GroupCommitter`] exploits.

#![forbid(unsafe_code)]
// openraft's trait signatures impose its large `StorageError`; boxing it locally
// would only add conversions at every call.
#![allow(clippy::result_large_err)]

mod checksum;
mod codec;
mod committer;
mod damage;
mod disk_sync;
mod identity;
mod ledger;
mod log_cleaner;
mod log_store;
mod node_store;
mod snapshot_store;
mod trees;

pub use checksum::Unreadable;
pub use codec::decode as decode_untrusted;
pub use committer::{FlushStats, GroupCommitter};
pub use damage::Damage;
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
    #[error("a stored value is damaged: {0}")]
    Unreadable(#[from] Unreadable),
    #[error("snapshot file {} is damaged: {why}", path.display())]
    SnapshotFile {
        path: std::path::PathBuf,
        why: Unreadable,
    },
    #[error("{0}")]
    Damaged(Box<Damage>),
    /// The node's database as a whole cannot be used.
    #[error("the database at {} cannot be used: {cause}", path.display())]
    Unusable {
        path: std::path::PathBuf,
        cause: String,
    },
}

impl StoreError {
    /// Whether this error says the data on disk is damaged (as opposed to a
    /// disk that is full, a permission, or a node shutting down).
    pub fn is_damage(&self) -> bool {
        match self {
            StoreError::Unreadable(_)
            | StoreError::SnapshotFile { .. }
            | StoreError::Damaged(_)
            | StoreError::Unusable { .. }
            | StoreError::Decode(_) => true,
            StoreError::Sled(e) => matches!(e, sled::Error::Corruption { .. }),
            _ => false,
        }
    }
}
