//! openraft log storage (storage-v2) for one group, on two trees of the node's Db.
//!
//! Durability contract: `append` hands the entries to the group committer, which
//! inserts them into sled and fires openraft's callback only after a `flush` that
//! covers the inserts; until the insert has run, reads find them in memory
//! (`pending`), so the group's core never waits on sled. `save_vote` and
//! `truncate` run on the committer too, in order with the appends, and wait
//! for their flush. Purges are not flushed on their own: the next flush (always
//! before any append is acknowledged) persists them, and a purge lost in a
//! crash only keeps extra log.
//! A purge records its point and leaves the deleting to the node's log cleaner:
//! entries at or below the point are hidden from reads until they are gone.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogReader,
    RaftTypeConfig, StorageError, StorageIOError, Vote,
};

use crate::checksum::{decode_sealed, encode_sealed};
use crate::codec::{encoded_size, index_key, key_index};
use crate::committer::GroupCommitter;
use crate::ledger::{Ledger, Mark};
use crate::log_cleaner::LogCleaner;
use crate::trees::tree_name;
use crate::StoreError;

pub(crate) const VOTE_KEY: &[u8] = b"vote";
pub(crate) const PURGED_KEY: &[u8] = b"last_purged";
const COMMITTED_KEY: &[u8] = b"committed";

/// Entries appended but not yet inserted into sled, by index. Always a suffix
/// of the log: the committer inserts in order.
type Pending<C> = Arc<Mutex<BTreeMap<u64, openraft::Entry<C>>>>;

/// Log of one Raft group. Cheap to clone: clones share the trees.
pub struct LogStore<C: RaftTypeConfig> {
    group: u64,
    log: sled::Tree,
    meta: sled::Tree,
    committer: GroupCommitter,
    cleaner: LogCleaner,
    ledger: Ledger,
    /// The first index not purged (0: nothing purged), shared by clones so the
    /// reader sees purges at once.
    first_kept: Arc<AtomicU64>,
    /// The latest purge point, which the committer writes to `meta` lazily.
    purged: Arc<Mutex<Option<LogId<u64>>>>,
    pending: Pending<C>,
    /// Bytes an entry counts for against a replication read's budget.
    entry_bytes: fn(&openraft::Entry<C>) -> usize,
    _config: PhantomData<C>,
}

impl<C: RaftTypeConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        Self {
            group: self.group,
            log: self.log.clone(),
            meta: self.meta.clone(),
            committer: self.committer.clone(),
            cleaner: self.cleaner.clone(),
            ledger: self.ledger.clone(),
            first_kept: self.first_kept.clone(),
            purged: self.purged.clone(),
            pending: self.pending.clone(),
            entry_bytes: self.entry_bytes,
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
    openraft::Entry<C>: Clone,
{
    pub(crate) fn open(
        db: &sled::Db,
        group: u64,
        committer: GroupCommitter,
        cleaner: LogCleaner,
        ledger: Ledger,
    ) -> Result<Self, StoreError> {
        let log_name = tree_name(group, "log");
        cleaner.opened(log_name.as_bytes());
        let log = db.open_tree(log_name)?;
        let meta = db.open_tree(tree_name(group, "meta"))?;
        let purged: Option<LogId<u64>> = match meta.get(PURGED_KEY)? {
            Some(bytes) => Some(decode_sealed(&bytes)?),
            None => None,
        };
        let first_kept = first_after(purged);
        let store = Self {
            group,
            log,
            meta,
            committer,
            cleaner,
            ledger,
            first_kept: Arc::new(AtomicU64::new(first_kept)),
            purged: Arc::new(Mutex::new(purged)),
            pending: Default::default(),
            entry_bytes: encoded_size::<openraft::Entry<C>>,
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

    /// How to size an entry not yet in sled against a replication read's
    /// budget without encoding it (the default encodes it to count).
    pub fn with_entry_size(mut self, entry_bytes: fn(&openraft::Entry<C>) -> usize) -> Self {
        self.entry_bytes = entry_bytes;
        self
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
            Some(bytes) => decode_sealed(&bytes)
                .map(Some)
                .map_err(|e| io_err(subject, ErrorVerb::Read, e)),
        }
    }

    /// The last entry not purged.
    fn last_entry_log_id(&self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        if let Some((_, entry)) = self.pending.lock().last_key_value() {
            return Ok(Some(entry.log_id));
        }
        let last = self
            .log
            .last()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        match last {
            None => Ok(None),
            Some((_, bytes)) => {
                let entry: openraft::Entry<C> = decode_sealed(&bytes)
                    .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
                let kept = entry.log_id.index >= self.first_kept.load(Ordering::SeqCst);
                Ok(kept.then_some(entry.log_id))
            }
        }
    }
}

/// Removes log entries in `range` (by index), the highest first, so a crash
/// part-way leaves a log without holes.
///
/// Entry by entry, never `apply_batch`: sled takes a database-wide write lock
/// for a batch, which stops every read and write of every group on the node
/// (on the async workers too) for as long as the batch takes.
fn remove_range(log: &sled::Tree, from: Bound<u64>, to: Bound<u64>) -> Result<(), sled::Error> {
    let from = from.map(index_key);
    let to = to.map(index_key);
    for key in log.range::<[u8; 8], _>((from, to)).keys().rev() {
        log.remove(key?)?;
    }
    Ok(())
}

/// The first log index after a purge point.
fn first_after(purged: Option<LogId<u64>>) -> u64 {
    purged.map_or(0, |p| p.index.saturating_add(1))
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = openraft::Entry<C>>,
    openraft::Entry<C>: Clone,
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
        self.read(first, range.end_bound().cloned(), usize::MAX)
    }

    /// What replication sends in one AppendEntries: entries from `start` up to
    /// [`REPLICATION_BATCH_BYTES`], and always at least one, so a follower
    /// behind by many large batches gets requests that each finish in about
    /// one heartbeat interval instead of one it can never take.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<C::Entry>, StorageError<u64>> {
        let first = start.max(self.first_kept.load(Ordering::SeqCst));
        // Decoding megabytes of entries takes tens of milliseconds: not on an
        // async worker, which carries every group's heartbeats.
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            store.read(first, Bound::Excluded(end), REPLICATION_BATCH_BYTES)
        })
        .await
        .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?
    }
}

/// Bytes of log one AppendEntries carries at most (beyond its first entry):
/// 4 MiB take about 35 ms on a 1 Gbit/s link, inside openraft's
/// AppendEntries timeout of one heartbeat interval.
pub const REPLICATION_BATCH_BYTES: usize = 4 * 1024 * 1024;

impl<C> LogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = openraft::Entry<C>>,
    openraft::Entry<C>: Clone,
{
    /// Entries from `first` to `to`, stopping after the entry that brings the
    /// total past `max_bytes` (so never empty when there is an entry).
    fn read(
        &self,
        first: u64,
        to: Bound<u64>,
        max_bytes: usize,
    ) -> Result<Vec<openraft::Entry<C>>, StorageError<u64>> {
        let entries = self.read_unchecked(first, to, max_bytes)?;
        // A hole means the database lost entries: an error (the group stops
        // and is rebuilt), never a log with a gap handed to Raft.
        for pair in entries.windows(2) {
            let (prev, next) = (pair[0].log_id.index, pair[1].log_id.index);
            if next != prev + 1 {
                return Err(io_err(
                    ErrorSubject::LogIndex(prev + 1),
                    ErrorVerb::Read,
                    format!("log entry {} is missing (group {})", prev + 1, self.group),
                ));
            }
        }
        Ok(entries)
    }

    fn read_unchecked(
        &self,
        first: u64,
        to: Bound<u64>,
        max_bytes: usize,
    ) -> Result<Vec<openraft::Entry<C>>, StorageError<u64>> {
        let in_range = |i: u64| match to {
            Bound::Included(t) => i <= t,
            Bound::Excluded(t) => i < t,
            Bound::Unbounded => true,
        };
        // Pending first: an entry the committer inserts meanwhile leaves
        // `pending` only after it is in sled, so nothing falls between.
        let (pending_from, pending): (Option<u64>, Vec<_>) = {
            let pending = self.pending.lock();
            let from = pending.keys().next().copied();
            let taken = pending
                .range(first..)
                .take_while(|(i, _)| in_range(**i))
                .map(|(_, e)| e.clone())
                .collect();
            (from, taken)
        };
        let sled_to = match (pending_from, to) {
            (Some(p), Bound::Unbounded) => Bound::Excluded(p),
            (Some(p), Bound::Included(t)) if p <= t => Bound::Excluded(p),
            (Some(p), Bound::Excluded(t)) => Bound::Excluded(p.min(t)),
            (_, to) => to,
        };
        let mut entries = Vec::new();
        let mut bytes_read = 0usize;
        let from = Bound::Included(index_key(first));
        if pending_from.is_none_or(|p| first < p) {
            for item in self.log.range::<[u8; 8], _>((from, sled_to.map(index_key))) {
                let (key, bytes) =
                    item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
                let entry: openraft::Entry<C> = decode_sealed(&bytes).map_err(|e| {
                    let index = key_index(&key).unwrap_or_default();
                    io_err(ErrorSubject::LogIndex(index), ErrorVerb::Read, e)
                })?;
                entries.push(entry);
                bytes_read = bytes_read.saturating_add(bytes.len());
                if bytes_read >= max_bytes {
                    return Ok(entries);
                }
            }
        }
        for entry in pending {
            if max_bytes != usize::MAX {
                bytes_read = bytes_read.saturating_add((self.entry_bytes)(&entry));
            }
            entries.push(entry);
            if bytes_read >= max_bytes {
                break;
            }
        }
        Ok(entries)
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Entry = openraft::Entry<C>>,
    openraft::Entry<C>: Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<u64>> {
        let last_purged_log_id = *self.purged.lock();
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
        let bytes =
            encode_sealed(vote).map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        let meta = self.meta.clone();
        let (ledger, group) = (self.ledger.clone(), self.group);
        let mark = Mark {
            last_index: 0,
            vote_term: vote.leader_id().term,
        };
        // A vote must be on disk before we answer the candidate: otherwise a restart
        // could let this node vote twice in one term.
        self.committer
            .write(move || {
                meta.insert(VOTE_KEY, bytes)?;
                ledger.stage(group, mark);
                Ok(())
            })
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
        let bytes = encode_sealed(&committed)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        let meta = self.meta.clone();
        self.committer.write_lazily(move || {
            meta.insert(COMMITTED_KEY, bytes)?;
            Ok(())
        });
        Ok(())
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
        let entries: Vec<openraft::Entry<C>> = entries.into_iter().collect();
        if entries.is_empty() {
            self.committer
                .after_flush(move |result| callback.log_io_completed(result));
            return Ok(());
        }
        {
            let mut pending = self.pending.lock();
            for entry in &entries {
                pending.insert(entry.log_id.index, entry.clone());
            }
        }
        let log = self.log.clone();
        let pending = self.pending.clone();
        let (ledger, group) = (self.ledger.clone(), self.group);
        self.committer.write_then(
            move || {
                let inserted = insert(&log, &entries);
                if inserted.is_ok() {
                    if let Some(last) = entries.last() {
                        let mark = Mark {
                            last_index: last.log_id.index,
                            vote_term: 0,
                        };
                        ledger.stage(group, mark);
                    }
                }
                let mut pending = pending.lock();
                for entry in &entries {
                    let index = entry.log_id.index;
                    if pending
                        .get(&index)
                        .is_some_and(|p| p.log_id == entry.log_id)
                    {
                        pending.remove(&index);
                    }
                }
                inserted
            },
            move |result| callback.log_io_completed(result),
        );
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.pending.lock().split_off(&log_id.index);
        let log = self.log.clone();
        let (ledger, group) = (self.ledger.clone(), self.group);
        // After the inserts queued before it, and awaited: when this returns,
        // no read finds a truncated entry and no queued insert brings one back.
        self.committer
            .write(move || {
                // The witness goes down first: a crash between the two must
                // not read as a log that lost entries.
                ledger.lower(group, log_id.index)?;
                remove_range(&log, Bound::Included(log_id.index), Bound::Unbounded)?;
                Ok(())
            })
            .await
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        // Reads stop at the purge point at once; the point is written on the
        // committer (a sled insert can wait behind a large write there), and
        // only then are entries deleted: if we crash in between, entries at or
        // below it are simply ignored garbage, never a hole.
        self.first_kept
            .fetch_max(first_after(Some(log_id)), Ordering::SeqCst);
        {
            let mut purged = self.purged.lock();
            *purged = (*purged).max(Some(log_id));
        }
        let bytes =
            encode_sealed(&log_id).map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        let (meta, log, cleaner) = (self.meta.clone(), self.log.clone(), self.cleaner.clone());
        self.committer.write_lazily(move || {
            meta.insert(PURGED_KEY, bytes)?;
            cleaner.delete_upto(log, log_id.index);
            Ok(())
        });
        Ok(())
    }
}

/// Inserts entries in index order, one by one (see `remove_range` for why not
/// a batch): a crash part-way leaves a prefix, which Raft tolerates since none
/// of them was acknowledged before the flush.
fn insert<C>(log: &sled::Tree, entries: &[openraft::Entry<C>]) -> Result<(), std::io::Error>
where
    C: RaftTypeConfig<NodeId = u64, Entry = openraft::Entry<C>>,
{
    for entry in entries {
        let bytes = encode_sealed(entry).map_err(std::io::Error::other)?;
        log.insert(index_key(entry.log_id.index), bytes)?;
    }
    Ok(())
}
