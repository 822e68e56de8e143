//! The node's one database and the factory for per-group stores.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::RaftTypeConfig;

use crate::committer::GroupCommitter;
use crate::disk_sync::DiskSync;
use crate::ledger::Ledger;
use crate::log_cleaner::LogCleaner;
use crate::log_store::LogStore;
use crate::snapshot_store::SnapshotStore;
use crate::trees::tree_name;
use crate::StoreError;

/// One `sled::Db` per node plus its group-commit thread, and the directory of
/// snapshot files.
#[derive(Clone)]
pub struct NodeStore {
    db: sled::Db,
    db_path: PathBuf,
    snapshot_dir: PathBuf,
    committer: GroupCommitter,
    cleaner: LogCleaner,
    ledger: Ledger,
    disk: Arc<DiskSync>,
}

/// Names this data layout (sealed values, the durability ledger) in the
/// node tree; a database of groups without it predates them.
const FORMAT_KEY: &[u8] = b"format";
const FORMAT: &[u8] = b"2";

impl NodeStore {
    /// Opens (or creates) the node's storage under `data_dir`: sled in `db/`,
    /// snapshot files in `snapshots/`, the durability ledger beside them.
    /// A database that cannot be opened, or that lost what the ledger saw
    /// it hold, is `Unusable`: no group on it can be trusted.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let data_dir = data_dir.as_ref();
        let snapshot_dir = data_dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)?;
        let db_path = data_dir.join("db");
        if let Some(why) = found_damaged_before(data_dir)? {
            return Err(StoreError::Unusable {
                path: db_path,
                cause: format!("it was found damaged while the node ran: {why}"),
            });
        }
        let db = open_db(&db_path)?;
        let disk = Arc::new(DiskSync::open(&db_path)?);
        let ledger = Ledger::open(data_dir)?;
        let committer = GroupCommitter::start(db.clone(), disk.clone(), ledger.clone());
        let store = Self {
            db,
            db_path,
            snapshot_dir,
            committer,
            cleaner: LogCleaner::start(),
            ledger,
            disk,
        };
        store.check_format()?;
        store.finish_removals()?;
        if let Some(failure) = store.committer.failure() {
            store.mark_damaged(&failure.why)?;
            return Err(StoreError::Unusable {
                path: store.db_path.clone(),
                cause: failure.why,
            });
        }
        Ok(store)
    }

    /// Records, durably, that sled found its data damaged while running:
    /// sled opens such a file again without complaint and fails only when it
    /// reads the damaged page, so without this mark the node would start,
    /// fail and start again. Every later open is `Unusable`.
    pub fn mark_damaged(&self, why: &str) -> std::io::Result<()> {
        let dir = self
            .db_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let path = dir.join(DAMAGED_MARK);
        let file = std::fs::File::create(&path)?;
        std::io::Write::write_all(&mut &file, why.as_bytes())?;
        file.sync_all()?;
        std::fs::File::open(&dir)?.sync_all()
    }

    fn check_format(&self) -> Result<(), StoreError> {
        let unusable = |cause: String| StoreError::Unusable {
            path: self.db_path.clone(),
            cause,
        };
        let tree = self.node_meta()?;
        let format = tree.get(FORMAT_KEY)?;
        let blank = self.is_blank() && tree.is_empty();
        if blank && self.ledger.found_any() {
            return Err(unusable(
                "it is empty, but the durability ledger beside it lists groups this node \
                 had stored: the database lost everything"
                    .into(),
            ));
        }
        if !blank && !self.ledger.existed() {
            tracing::warn!(
                path = %self.db_path.display(),
                "no durability ledger beside this database: starting one; a loss of data \
                 before this start cannot be detected"
            );
        }
        match format {
            Some(f) if f.as_ref() == FORMAT => Ok(()),
            Some(f) => Err(unusable(format!(
                "it is in data format {:?}, this raftqd reads format 2",
                String::from_utf8_lossy(&f)
            ))),
            None if blank => {
                tree.insert(FORMAT_KEY, FORMAT)?;
                self.flush_durably()?;
                Ok(())
            }
            None => Err(unusable(
                "it holds groups but no data format: written by a raftq older than format 2 \
                 (checksummed values), or damaged"
                    .into(),
            )),
        }
    }

    /// Flushes and fsyncs, outside the group commit (rare node-level facts).
    pub(crate) fn flush_durably(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.disk.after_flush()?;
        Ok(())
    }

    /// The sled database's directory, named in damage reports.
    pub fn db_path(&self) -> PathBuf {
        self.db_path.clone()
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub(crate) fn open_tree(&self, name: &str) -> Result<sled::Tree, String> {
        self.db
            .open_tree(name)
            .map_err(|e| format!("opening {name}: {e}"))
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
            self.ledger.clone(),
        )
    }

    pub fn snapshot_store(&self, group: u64) -> Result<SnapshotStore, StoreError> {
        SnapshotStore::open(&self.db, &self.snapshot_dir, group, self.committer.clone())
    }

    /// Node-level key/value facts (e.g. "this data dir was bootstrapped").
    pub fn node_meta(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree("node")?)
    }

    /// Records, durably, that this node must never initialize `group`: its
    /// replica here was discarded (damaged) and may only join the group
    /// again, as a learner its leader adds.
    pub fn never_initialize(&self, group: u64) -> Result<(), StoreError> {
        let tree = self.node_meta()?;
        tree.insert(joins_only_key(group), &[1u8])?;
        self.flush_durably()?;
        Ok(())
    }

    /// False once [`Self::never_initialize`] was recorded for `group`.
    pub fn may_initialize(&self, group: u64) -> bool {
        self.node_meta()
            .ok()
            .and_then(|t| t.get(joins_only_key(group)).ok())
            .is_some_and(|v| v.is_none())
    }

    /// Drops every tree of a deleted queue's group (or of a damaged replica
    /// about to be rebuilt). All or nothing across a crash: the intent is
    /// made durable first and the next open finishes it, since what a
    /// partial removal leaves (a commit point whose log is gone, say) is
    /// neither the replica nor its absence.
    pub fn remove_group(&self, group: u64) -> Result<(), StoreError> {
        self.begin_removal(group)?;
        self.finish_removal(group)
    }

    /// The first half of [`Self::remove_group`]: records, durably, that
    /// `group`'s data is to go. Whatever happens next, the next
    /// `remove_group` of it or the next open finishes the removal.
    pub fn begin_removal(&self, group: u64) -> Result<(), StoreError> {
        self.node_meta()?.insert(removing_key(group), &[1u8])?;
        self.flush_durably()
    }

    fn finish_removal(&self, group: u64) -> Result<(), StoreError> {
        self.ledger.forget(group)?;
        SnapshotStore::remove_files_of(&self.snapshot_dir, group)?;
        self.cleaner.dropping(&tree_name(group, "log"), || {
            group_tree_names(group)
                .iter()
                .try_for_each(|name| self.drop_tree(name))
        })?;
        self.flush_durably()?;
        self.node_meta()?.remove(removing_key(group))?;
        self.flush_durably()
    }

    /// Drops one tree, also when its pages are the damage: sled unlinks a
    /// tree before it frees its pages, so a tree whose pages cannot be read
    /// is gone all the same. Its damaged pages stay in sled's file, where
    /// sled reads them again when it moves them (the soak saw that fail a
    /// flush seconds later), so the node is told to stop: the database is
    /// damaged, not only the replica.
    fn drop_tree(&self, name: &str) -> Result<(), StoreError> {
        let failed = match catch_unwind(AssertUnwindSafe(|| self.db.drop_tree(name))) {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(panic) => panic_text(&panic),
        };
        if self.db.tree_names().iter().any(|n| n == name.as_bytes()) {
            return Err(StoreError::Unusable {
                path: self.db_path.clone(),
                cause: format!("cannot drop {name}: {failed}"),
            });
        }
        self.committer.found_damage(format!(
            "sled could not free the pages of {name} when it dropped it: {failed}"
        ));
        Ok(())
    }

    /// Finishes removals a crash interrupted.
    fn finish_removals(&self) -> Result<(), StoreError> {
        let node = self.node_meta()?;
        let pending: Vec<u64> = node
            .scan_prefix(REMOVING_PREFIX)
            .keys()
            .filter_map(|key| {
                let key = key.ok()?;
                std::str::from_utf8(&key[REMOVING_PREFIX.len()..])
                    .ok()?
                    .parse()
                    .ok()
            })
            .collect();
        for group in pending {
            tracing::info!(
                group,
                "finishing the removal of a group's data a stop interrupted"
            );
            self.finish_removal(group)?;
        }
        Ok(())
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

/// The mark `NodeStore::mark_damaged` leaves in the data dir.
const DAMAGED_MARK: &str = "database-damaged";

fn found_damaged_before(data_dir: &Path) -> Result<Option<String>, StoreError> {
    match std::fs::read(data_dir.join(DAMAGED_MARK)) {
        Ok(why) => Ok(Some(String::from_utf8_lossy(&why).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens sled, which panics on some damaged files rather than failing: the
/// panic becomes an `Unusable` error, and its message is kept for it
/// instead of going to stderr with a backtrace.
fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    let open = || {
        sled::Config::new()
            .path(path)
            // Our own group commit decides when data is durable; sled's
            // periodic background flush would only add fsyncs we did not ask
            // for.
            .flush_every_ms(None)
            // The log is read back while it is hot (replication, apply), and
            // queue contents live in the state machine: a big page cache
            // would only hold a second copy of the backlog.
            .cache_capacity(16 * 1024 * 1024)
            .open()
    };
    let unusable = |cause: String| StoreError::Unusable {
        path: path.to_path_buf(),
        cause,
    };
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = catch_unwind(AssertUnwindSafe(open));
    std::panic::set_hook(quiet);
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e @ sled::Error::Corruption { .. })) => Err(unusable(e.to_string())),
        Ok(Err(e)) => Err(e.into()),
        Err(panic) => Err(unusable(format!(
            "sled could not recover it ({})",
            panic_text(&panic)
        ))),
    }
}

/// The message a panic carried.
pub(crate) fn panic_text(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

const REMOVING_PREFIX: &[u8] = b"removing.g";

fn removing_key(group: u64) -> Vec<u8> {
    [REMOVING_PREFIX, group.to_string().as_bytes()].concat()
}

fn joins_only_key(group: u64) -> String {
    format!("joins-only.g{group}")
}

fn group_tree_names(group: u64) -> [String; 3] {
    [
        tree_name(group, "log"),
        tree_name(group, "meta"),
        tree_name(group, "snapshot"),
    ]
}
