//! The node's one database and the factory for per-group stores.

use std::path::{Path, PathBuf};

use openraft::RaftTypeConfig;

use crate::committer::GroupCommitter;
use crate::log_cleaner::LogCleaner;
use crate::log_store::LogStore;
use crate::snapshot_store::SnapshotStore;
use crate::StoreError;

/// One `sled::Db` per node plus its group-commit thread, and the directory of
/// snapshot files.
#[derive(Clone)]
pub struct NodeStore {
    db: sled::Db,
    snapshot_dir: PathBuf,
    committer: GroupCommitter,
    cleaner: LogCleaner,
}

impl NodeStore {
    /// Opens (or creates) the node's storage under `data_dir`: sled in `db/`,
    /// snapshot files in `snapshots/`.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let snapshot_dir = data_dir.as_ref().join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)?;
        // Our own group commit decides when data is durable; sled's periodic
        // background flush would only add fsyncs we did not ask for.
        let db = sled::Config::new()
            .path(data_dir.as_ref().join("db"))
            .flush_every_ms(None)
            // The log is read back while it is hot (replication, apply), and
            // queue contents live in the state machine: a big page cache would
            // only hold a second copy of the backlog.
            .cache_capacity(16 * 1024 * 1024)
            .open()?;
        let committer = GroupCommitter::start(db.clone());
        Ok(Self {
            db,
            snapshot_dir,
            committer,
            cleaner: LogCleaner::start(),
        })
    }

    pub fn committer(&self) -> &GroupCommitter {
        &self.committer
    }

    pub fn log_store<C>(&self, group: u64) -> Result<LogStore<C>, StoreError>
    where
        C: RaftTypeConfig<NodeId = u64, Entry = openraft::Entry<C>>,
        openraft::Entry<C>: Clone,
    {
        LogStore::open(
            &self.db,
            group,
            self.committer.clone(),
            self.cleaner.clone(),
        )
    }

    pub fn snapshot_store(&self, group: u64) -> Result<SnapshotStore, StoreError> {
        SnapshotStore::open(&self.db, &self.snapshot_dir, group, self.committer.clone())
    }

    /// Node-level key/value facts (e.g. "this data dir was bootstrapped").
    pub fn node_meta(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree("node")?)
    }

    /// Drops every tree of a deleted queue's group.
    pub fn remove_group(&self, group: u64) -> Result<(), StoreError> {
        self.snapshot_store(group)?.remove_all()?;
        let names = group_tree_names(group);
        self.cleaner.dropping(&tree_name(group, "log"), || {
            for name in &names {
                self.db.drop_tree(name)?;
            }
            Ok(())
        })
    }

    /// Groups that have any data on this node (used to find groups to restart).
    pub fn groups_on_disk(&self) -> Vec<u64> {
        let mut groups: Vec<u64> = self
            .db
            .tree_names()
            .iter()
            .filter_map(|name| std::str::from_utf8(name).ok())
            .filter_map(|name| name.strip_prefix('g')?.split('.').next()?.parse().ok())
            .collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }

    pub fn size_on_disk(&self) -> u64 {
        let snapshots: u64 = std::fs::read_dir(&self.snapshot_dir)
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        self.db.size_on_disk().unwrap_or(0) + snapshots
    }
}

pub(crate) fn tree_name(group: u64, what: &str) -> String {
    format!("g{group}.{what}")
}

fn group_tree_names(group: u64) -> [String; 3] {
    [
        tree_name(group, "log"),
        tree_name(group, "meta"),
        tree_name(group, "snapshot"),
    ]
}
