//! Deleting purged log entries off the Raft path.
//!
//! openraft purges a group's log after each snapshot, from the group's core
//! task: while `purge` runs, that group appends and commits nothing. Deleting a
//! few thousand sled keys takes 60-100 ms on our machines (one W3 run at
//! 15,000 msgs/s: publish-to-delivery p99 62 ms, made of these stalls). So
//! `LogStore::purge` only records the purge point, reads hide what lies at or
//! below it, and this thread deletes those entries in small chunks.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::sync::mpsc;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use crate::codec::index_key;

/// Keys deleted per sled batch, and the pause after each: deleting is paced
/// so that it never takes a core from the Raft path for long. Chunks of 256
/// without a pause still left W3 at 15,000 msgs/s with a p99 of 48-55 ms;
/// 64 with 1 ms pauses, 26-37 ms (against 85-110 ms deleting inline). At
/// 64 keys a millisecond at most, the cleaner outpaces any log we write.
const CHUNK: usize = 64;
const PAUSE: Duration = Duration::from_millis(1);

struct Job {
    tree: sled::Tree,
    /// Delete every entry with an index at or below this.
    upto: u64,
}

/// Handle to the node's log-cleaning thread.
#[derive(Clone)]
pub(crate) struct LogCleaner {
    tx: mpsc::Sender<Job>,
    /// Names of trees dropped since they were opened. Held while deleting a
    /// chunk and while dropping trees, so that a deletion never touches the
    /// tree of a deleted queue: what sled 0.34 does with a dropped tree's
    /// handle is not to be relied on (a `len()` on one never returned in our
    /// tests).
    dropped: Arc<Mutex<Dropped>>,
}

type Dropped = HashSet<sled::IVec>;

impl LogCleaner {
    pub(crate) fn start() -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let dropped = Arc::new(Mutex::new(Dropped::new()));
        let thread_dropped = dropped.clone();
        std::thread::Builder::new()
            .name("raftq-log-cleaner".into())
            .spawn(move || run(&thread_dropped, rx))
            .map(|_| ())
            .unwrap_or_else(|e| {
                tracing::error!("cannot start log-cleaner thread (purges run inline): {e}")
            });
        Self { tx, dropped }
    }

    /// Deletes the entries of `tree` at or below `upto`, later.
    pub(crate) fn delete_upto(&self, tree: sled::Tree, upto: u64) {
        if let Err(mpsc::SendError(job)) = self.tx.send(Job { tree, upto }) {
            // Inline, in the purge itself: no pauses.
            clean(&self.dropped, &job, Duration::ZERO);
        }
    }

    /// A tree of this name is in use (again).
    pub(crate) fn opened(&self, name: &[u8]) {
        self.dropped.lock().remove(name);
    }

    /// Runs `drop`, which drops the log tree `name` (and others), while no
    /// deletion is under way; deletions queued for that tree are skipped.
    pub(crate) fn dropping<T>(&self, name: &str, drop: impl FnOnce() -> T) -> T {
        let mut dropped = self.dropped.lock();
        dropped.insert(sled::IVec::from(name.as_bytes()));
        drop()
    }
}

fn run(dropped: &Mutex<Dropped>, rx: mpsc::Receiver<Job>) {
    // `recv` fails only once every handle is gone: the node is shutting down.
    while let Ok(first) = rx.recv() {
        // Purges queued meanwhile for the same tree: only the highest matters.
        let mut jobs: HashMap<sled::IVec, Job> = HashMap::new();
        for job in std::iter::once(first).chain(rx.try_iter()) {
            let name = job.tree.name();
            match jobs.get_mut(&name) {
                Some(known) => known.upto = known.upto.max(job.upto),
                None => {
                    jobs.insert(name, job);
                }
            }
        }
        for job in jobs.values() {
            clean(dropped, job, PAUSE);
        }
    }
}

fn clean(dropped: &Mutex<Dropped>, job: &Job, pause: Duration) {
    if let Err(e) = delete_upto(dropped, job, pause) {
        // What stays behind is hidden from reads and retried by the next purge.
        tracing::warn!(tree = %String::from_utf8_lossy(&job.tree.name()), "deleting purged log entries failed: {e}");
    }
}

fn delete_upto(dropped: &Mutex<Dropped>, job: &Job, pause: Duration) -> sled::Result<()> {
    let end = Bound::Included(sled::IVec::from(&index_key(job.upto)[..]));
    let name = job.tree.name();
    // Each key is visited once, so the loop ends even if a delete has no effect.
    let mut from = Bound::Unbounded;
    loop {
        let dropped = dropped.lock();
        if dropped.contains(&name) {
            return Ok(());
        }
        // Key by key, not a sled batch: a batch takes sled's database-wide
        // write lock, stopping every group's reads and writes meanwhile.
        let mut last = None;
        for key in job
            .tree
            .range((from.clone(), end.clone()))
            .keys()
            .take(CHUNK)
        {
            let key = key?;
            job.tree.remove(&key)?;
            last = Some(key);
        }
        let Some(last) = last else {
            return Ok(());
        };
        from = Bound::Excluded(last);
        drop(dropped);
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn tree_with_entries(db: &sled::Db, name: &str, n: u64) -> sled::Tree {
        let tree = db.open_tree(name).expect("tree");
        for i in 1..=n {
            tree.insert(index_key(i), &b"entry"[..]).expect("insert");
        }
        tree
    }

    /// Polls until `done` (bounded: a stuck cleaner fails the test, it is
    /// not a timing assertion).
    fn eventually(mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        done()
    }

    fn first_index(tree: &sled::Tree) -> Option<Vec<u8>> {
        tree.first().expect("first").map(|(k, _)| k.to_vec())
    }

    #[test]
    fn entries_at_or_below_the_point_are_deleted_in_chunks_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("db");
        let tree = tree_with_entries(&db, "g1-log", 3 * CHUNK as u64 + 17);
        let cleaner = LogCleaner::start();
        cleaner.delete_upto(tree.clone(), 2 * CHUNK as u64 + 5);
        assert!(eventually(|| tree.len() == CHUNK + 12));
        assert_eq!(
            first_index(&tree),
            Some(index_key(2 * CHUNK as u64 + 6).to_vec())
        );
    }

    #[test]
    fn a_purge_queued_for_a_deleted_queue_neither_stalls_the_cleaner_nor_revives_the_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("db");
        let cleaner = LogCleaner::start();
        let dropped = tree_with_entries(&db, "g2-log", 100);
        cleaner.dropping("g2-log", || {
            db.drop_tree("g2-log").expect("drop");
        });
        cleaner.delete_upto(dropped, 50);
        // A later job on a live tree proves the dropped one was handled first.
        let live = tree_with_entries(&db, "g3-log", 10);
        cleaner.delete_upto(live.clone(), 10);
        assert!(
            eventually(|| live.is_empty()),
            "the cleaner is stuck on the dropped tree"
        );
        assert!(!db.tree_names().contains(&sled::IVec::from("g2-log")));
        // Opened again (a new group under an old name): cleaned as usual.
        cleaner.opened(b"g2-log");
        let reopened = tree_with_entries(&db, "g2-log", 10);
        cleaner.delete_upto(reopened.clone(), 4);
        assert!(eventually(|| reopened.len() == 6));
    }

    #[test]
    fn without_its_thread_a_purge_deletes_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("db");
        let tree = tree_with_entries(&db, "g4-log", 10);
        let (tx, rx) = mpsc::channel();
        drop(rx);
        let cleaner = LogCleaner {
            tx,
            dropped: Arc::new(Mutex::new(Dropped::new())),
        };
        cleaner.delete_upto(tree.clone(), 7);
        assert_eq!(tree.len(), 3);
    }
}
