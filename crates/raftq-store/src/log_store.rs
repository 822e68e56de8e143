//! openraft log storage (storage-v2) for one group, on two trees of the node's Db.
//!
//! Durability contract: `append` inserts the entries and hands openraft's callback to
//! the group committer, which fires it only after a `flush` that covers the inserts.
//! `save_vote` waits for a flush too. Truncation and purge are not flushed on their
//! own: sled keeps writes in order, so the next flush (always before any append is
//! acknowledged) persists them, and a purge lost in a crash only keeps extra log.
//! A purge records its point and leaves the deleting to the node's log cleaner:
//! entries at or below the point are hidden from reads until they are gone.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogReader,
    RaftTypeConfig, StorageError, StorageIOError, Vote,
};

use crate::codec::{decode, encode, index_key, key_index};
use crate::committer::GroupCommitter;
use crate::log_cleaner::LogCleaner;
use crate::node_store::tree_name;
use crate::StoreError;

const VOTE_KEY: &[u8] = b"vote";
const PURGED_KEY: &[u8] = b"last_purged";
const COMMITTED_KEY: &[u8] = b"committed";

/// Log of one Raft group. Cheap to clone: clones share the trees.
pub struct LogStore<C> {
    group: u64,
    log: sled::Tree,
    meta: sled::Tree,
    committer: GroupCommitter,
    cleaner: LogCleaner,
    /// The first index not purged (0: nothing purged), shared by clones so the
    /// reader sees purges at once.
    first_kept: Arc<AtomicU64>,
    _config: PhantomData<C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        Self {
            group: self.group,
            log: self.log.clone(),
            meta: self.meta.clone(),
            committer: self.committer.clone(),
            cleaner: self.cleaner.clone(),
            first_kept: self.first_kept.clone(),
            _config: PhantomData,
        }
    }
}

fn io_err(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError<u64> {
    StorageIOError::new(subject, verb, AnyError::error(e)).into()
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = openraft::Entry<C>>,
{
    pub(crate) fn open(
        db: &sled::Db,
        group: u64,
        committer: GroupCommitter,
        cleaner: LogCleaner,
    ) -> Result<Self, StoreError> {
        let log_name = tree_name(group, "log");
        cleaner.opened(log_name.as_bytes());
        let log = db.open_tree(log_name)?;
        let meta = db.open_tree(tree_name(group, "meta"))?;
        let purged: Option<LogId<u64>> = match meta.get(PURGED_KEY)? {
            Some(bytes) => Some(decode(&bytes)?),
            None => None,
        };
        let first_kept = first_after(purged);
        let store = Self {
            group,
            log,
            meta,
            committer,
            cleaner,
            first_kept: Arc::new(AtomicU64::new(first_kept)),
            _config: PhantomData,
        };
        // A node stopped while its cleaner was busy left purged entries behind:
        // delete them now rather than at the group's next purge, which an idle
        // group may never have.
        let leftover = store.log.first()?.and_then(|(key, _)| key_index(&key));
        if leftover.is_some_and(|index| index < first_kept) {
            store
                .cleaner
                .delete_upto(store.log.clone(), first_kept.saturating_sub(1));
        }
        Ok(store)
    }

    pub fn group(&self) -> u64 {
        self.group
    }

    /// Entries on disk, counting purged ones the cleaner has not deleted yet.
    pub fn entries_on_disk(&self) -> usize {
        self.log.len()
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError<u64>> {
        let subject = ErrorSubject::Store;
        match self
            .meta
            .get(key)
            .map_err(|e| io_err(subject.clone(), ErrorVerb::Read, e))?
        {
            None => Ok(None),
            Some(bytes) => decode(&bytes)
                .map(Some)
                .map_err(|e| io_err(subject, ErrorVerb::Read, e)),
        }
    }

    fn write_meta<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
    ) -> Result<(), StorageError<u64>> {
        let bytes = encode(value).map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        Ok(())
    }

    /// The last entry not purged.
    fn last_entry_log_id(&self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        let last = self
            .log
            .last()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        match last {
            None => Ok(None),
            Some((_, bytes)) => {
                let entry: openraft::Entry<C> =
                    decode(&bytes).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
                let kept = entry.log_id.index >= self.first_kept.load(Ordering::SeqCst);
                Ok(kept.then_some(entry.log_id))
            }
        }
    }

    /// Removes log entries in `range` (by index).
    fn remove_range(&self, from: Bound<u64>, to: Bound<u64>) -> Result<(), StorageError<u64>> {
        let from = from.map(index_key);
        let to = to.map(index_key);
        let mut batch = sled::Batch::default();
        for key in self.log.range::<[u8; 8], _>((from, to)).keys() {
            let key = key.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
            batch.remove(key);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

/// The first log index after a purge point.
fn first_after(purged: Option<LogId<u64>>) -> u64 {
    purged.map_or(0, |p| p.index.saturating_add(1))
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = openraft::Entry<C>>,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<u64>> {
        // What a purge left for the cleaner is gone already as far as reads go.
        let first = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .max(self.first_kept.load(Ordering::SeqCst));
        let from = Bound::Included(index_key(first));
        let to = range.end_bound().cloned().map(index_key);
        let mut entries = Vec::new();
        for item in self.log.range::<[u8; 8], _>((from, to)) {
            let (key, bytes) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            let entry: openraft::Entry<C> = decode(&bytes).map_err(|e| {
                let index = key_index(&key).unwrap_or_default();
                io_err(ErrorSubject::LogIndex(index), ErrorVerb::Read, e)
            })?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = openraft::Entry<C>>,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<u64>> {
        let last_purged_log_id: Option<LogId<u64>> = self.read_meta(PURGED_KEY)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.write_meta(VOTE_KEY, vote)?;
        // A vote must be on disk before we answer the candidate: otherwise a restart
        // could let this node vote twice in one term.
        self.committer
            .flush()
            .await
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.read_meta(VOTE_KEY)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        // Not flushed on purpose: it only lets a restarted node re-apply faster; a
        // stale value is safe because openraft never trusts it beyond the log.
        self.write_meta(COMMITTED_KEY, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self
            .read_meta::<Option<LogId<u64>>>(COMMITTED_KEY)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = encode(&entry)
                .map_err(|e| io_err(ErrorSubject::Log(entry.log_id), ErrorVerb::Write, e))?;
            batch.insert(&index_key(entry.log_id.index), bytes);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        self.committer
            .after_flush(move |result| callback.log_io_completed(result));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.remove_range(Bound::Included(log_id.index), Bound::Unbounded)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        // Record the purge point first: if we crash in between, entries at or below
        // it are simply ignored garbage, never a hole.
        self.write_meta(PURGED_KEY, &log_id)?;
        self.first_kept
            .fetch_max(first_after(Some(log_id)), Ordering::SeqCst);
        self.cleaner.delete_upto(self.log.clone(), log_id.index);
        Ok(())
    }
}
