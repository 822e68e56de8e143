//! Persistence of a group's latest snapshot (metadata + state-machine bytes).
//!
//! The state machines live in memory; what makes them durable is this snapshot plus
//! the log after it, which openraft re-applies on restart. So the snapshot is
//! flushed before it is reported built, and the log is purged only below it.

use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::committer::GroupCommitter;
use crate::node_store::tree_name;
use crate::StoreError;

const SNAPSHOT_KEY: &[u8] = b"current";

/// A snapshot as stored: opaque bincode of openraft's `SnapshotMeta` plus the data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSnapshot {
    pub meta: Vec<u8>,
    pub data: Vec<u8>,
}

#[derive(Clone)]
pub struct SnapshotStore {
    tree: sled::Tree,
    committer: GroupCommitter,
}

impl SnapshotStore {
    pub(crate) fn open(
        db: &sled::Db,
        group: u64,
        committer: GroupCommitter,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            tree: db.open_tree(tree_name(group, "snapshot"))?,
            committer,
        })
    }

    /// Stores the snapshot and waits until it is on disk.
    pub async fn save(&self, snapshot: &StoredSnapshot) -> Result<(), StoreError> {
        self.tree.insert(SNAPSHOT_KEY, encode(snapshot)?)?;
        self.committer
            .flush()
            .await
            .map_err(|e| StoreError::Flush(e.to_string()))
    }

    pub fn load(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        match self.tree.get(SNAPSHOT_KEY)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode(&bytes)?)),
        }
    }
}

/// Encodes any serde value with the store's on-disk encoding.
pub fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    Ok(encode(value)?)
}

/// Decodes a value written by [`encode_value`].
pub fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    Ok(decode(bytes)?)
}
