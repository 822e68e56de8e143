//! Group commit: many appends, from any number of Raft groups, share one fsync.
//!
//! Writers hand the committer thread a job: the write itself (encoding and
//! inserting into sled) and a completion. The thread takes every job queued
//! so far, runs their writes in order, calls `Db::flush` once, and only then
//! fires their completions. Under load a single flush covers hundreds of
//! appends; idle, an append waits for exactly one flush. Because the writes
//! run here, a Raft group's core never waits on sled: inserting a 32 MiB
//! batch, or an insert that sled holds up behind a flush, takes hundreds of
//! milliseconds, and a core that waited for it would send no heartbeats
//! meanwhile and cost its group an election.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use crate::disk_sync::DiskSync;
use crate::ledger::Ledger;

type Completion = Box<dyn FnOnce(Result<(), std::io::Error>) + Send>;
type Write = Box<dyn FnOnce() -> Result<(), std::io::Error> + Send>;

/// A write to run before the next flush, and what to tell once it is durable.
struct Job {
    write: Option<Write>,
    done: Completion,
    /// Whether `done` waits for a flush; writes that may be lost in a crash
    /// (the commit index) ride along with the next one.
    durable: bool,
}

/// Counters exported as metrics: how often we fsync and how long it takes.
#[derive(Debug, Default)]
pub struct FlushStats {
    pub flushes: AtomicU64,
    pub flushed_writes: AtomicU64,
    pub flush_micros_total: AtomicU64,
    pub flush_micros_max: AtomicU64,
}

/// Handle to the node's single flusher thread.
#[derive(Clone)]
pub struct GroupCommitter {
    tx: mpsc::Sender<Job>,
    stats: Arc<FlushStats>,
    failed: Arc<parking_lot::Mutex<Option<CommitFailure>>>,
}

impl GroupCommitter {
    /// `ledger` hears of every successful flush, so the marks staged by
    /// the writes before it count as durable.
    pub(crate) fn start(db: sled::Db, disk: Arc<DiskSync>, ledger: Ledger) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let stats = Arc::new(FlushStats::default());
        let thread_stats = stats.clone();
        let failed = Arc::new(parking_lot::Mutex::new(None));
        let thread_failed = failed.clone();
        // A plain thread, not a tokio task: flush blocks on the disk, and keeping it
        // off the runtime keeps Raft heartbeats punctual while the disk is slow.
        std::thread::Builder::new()
            .name("raftq-group-commit".into())
            .spawn(move || run(db, disk, ledger, rx, thread_stats, thread_failed))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start group-commit thread: {e}"));
        Self { tx, stats, failed }
    }

    /// Why the database could not be written, once a write or a flush
    /// failed (a full disk, an I/O error). sled keeps failing after one
    /// (its error is sticky), and after a failed fsync the kernel's copy of
    /// the data cannot be trusted either (PostgreSQL's fsync lesson): the
    /// node must stop and recover from what is on disk. Nothing written
    /// since the last good flush was acknowledged.
    pub fn failure(&self) -> Option<CommitFailure> {
        self.failed.lock().clone()
    }

    /// Records damage to sled's own pages found outside a write (freeing a
    /// dropped tree's pages): sled reads such a page again whenever it
    /// moves it, so the node must stop as it would on a failed write.
    pub(crate) fn found_damage(&self, why: String) {
        self.failed
            .lock()
            .get_or_insert(CommitFailure { why, damaged: true });
    }

    /// Calls `done` once everything written to the Db before this call is on disk.
    pub fn after_flush(&self, done: impl FnOnce(Result<(), std::io::Error>) + Send + 'static) {
        self.submit(None, Box::new(done));
    }

    /// Runs `write` on the committer thread, after every write submitted
    /// before it, then calls `done` with its result once it is on disk.
    pub fn write_then(
        &self,
        write: impl FnOnce() -> Result<(), std::io::Error> + Send + 'static,
        done: impl FnOnce(Result<(), std::io::Error>) + Send + 'static,
    ) {
        self.submit(Some(Box::new(write)), Box::new(done));
    }

    /// Runs `write` after every write submitted before it; waits until it is
    /// durable.
    pub async fn write(
        &self,
        write: impl FnOnce() -> Result<(), std::io::Error> + Send + 'static,
    ) -> Result<(), std::io::Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.write_then(write, move |r| {
            let _ = tx.send(r);
        });
        rx.await
            .unwrap_or_else(|_| Err(std::io::Error::other("group-commit thread stopped")))
    }

    /// Runs `write` after every write submitted before it, without waiting
    /// for (or causing) a flush.
    pub fn write_lazily(
        &self,
        write: impl FnOnce() -> Result<(), std::io::Error> + Send + 'static,
    ) {
        let job = Job {
            write: Some(Box::new(write)),
            done: Box::new(|r| {
                if let Err(e) = r {
                    tracing::warn!("lazy write failed: {e}");
                }
            }),
            durable: false,
        };
        if let Err(mpsc::SendError(job)) = self.tx.send(job) {
            (job.done)(Err(std::io::Error::other("group-commit thread stopped")));
        }
    }

    fn submit(&self, write: Option<Write>, done: Completion) {
        let job = Job {
            write,
            done,
            durable: true,
        };
        if let Err(mpsc::SendError(job)) = self.tx.send(job) {
            (job.done)(Err(std::io::Error::other("group-commit thread stopped")));
        }
    }

    /// Waits until everything written before this call is durable.
    pub async fn flush(&self) -> Result<(), std::io::Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.after_flush(move |r| {
            let _ = tx.send(r);
        });
        rx.await
            .unwrap_or_else(|_| Err(std::io::Error::other("group-commit thread stopped")))
    }

    pub fn stats(&self) -> &Arc<FlushStats> {
        &self.stats
    }
}

/// Why the group commit stopped for good.
#[derive(Debug, Clone)]
pub struct CommitFailure {
    pub why: String,
    /// sled found its own data damaged (as opposed to a full disk or an I/O
    /// error): the database as a whole can no longer be trusted.
    pub damaged: bool,
}

fn run(
    db: sled::Db,
    disk: Arc<DiskSync>,
    ledger: Ledger,
    rx: mpsc::Receiver<Job>,
    stats: Arc<FlushStats>,
    failed: Arc<parking_lot::Mutex<Option<CommitFailure>>>,
) {
    let fail = |why: String, damaged: bool| {
        failed.lock().get_or_insert(CommitFailure { why, damaged });
    };
    let mut batch: Vec<(Option<std::io::Error>, Completion)> = Vec::with_capacity(1024);
    // `recv` fails only when every sender is gone: the node is shutting down.
    while let Ok(first) = rx.recv() {
        let mut durable = false;
        for job in std::iter::once(first).chain(rx.try_iter()) {
            let failed = job.write.and_then(|write| write().err());
            if let Some(e) = &failed {
                // sled reports a damaged page it had to read as InvalidData.
                let damaged = e.kind() == std::io::ErrorKind::InvalidData;
                fail(format!("a write to the database failed: {e}"), damaged);
            }
            if job.durable {
                durable = true;
                batch.push((failed, job.done));
            } else {
                (job.done)(failed.map_or(Ok(()), Err));
            }
        }
        if !durable {
            continue;
        }
        let started = Instant::now();
        let result = db
            .flush()
            .map(|_| ())
            .and_then(|()| disk.after_flush().map_err(sled::Error::from))
            .and_then(|()| ledger.flushed().map_err(sled::Error::from));
        let micros = started.elapsed().as_micros() as u64;
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        stats
            .flushed_writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats
            .flush_micros_total
            .fetch_add(micros, Ordering::Relaxed);
        stats.flush_micros_max.fetch_max(micros, Ordering::Relaxed);
        let flush_error = match result {
            Ok(()) => None,
            Err(e) => {
                tracing::error!("sled flush failed: {e}");
                let damaged = matches!(e, sled::Error::Corruption { .. });
                fail(format!("flushing the database failed: {e}"), damaged);
                Some(e.to_string())
            }
        };
        for (failed, done) in batch.drain(..) {
            match (failed, &flush_error) {
                (Some(e), _) => done(Err(e)),
                (None, Some(msg)) => done(Err(std::io::Error::other(msg.clone()))),
                (None, None) => done(Ok(())),
            }
        }
    }
}
