//! Group commit: many appends, from any number of Raft groups, share one fsync.
//!
//! Writers insert into sled (cheap, in memory) and then hand a completion to the
//! committer thread. The thread takes every completion queued so far, calls
//! `Db::flush` once, and only then fires them all. Under load a single flush covers
//! hundreds of appends; idle, an append waits for exactly one flush.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

type Completion = Box<dyn FnOnce(Result<(), std::io::Error>) + Send>;

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
    tx: mpsc::Sender<Completion>,
    stats: Arc<FlushStats>,
}

impl GroupCommitter {
    pub(crate) fn start(db: sled::Db) -> Self {
        let (tx, rx) = mpsc::channel::<Completion>();
        let stats = Arc::new(FlushStats::default());
        let thread_stats = stats.clone();
        // A plain thread, not a tokio task: flush blocks on the disk, and keeping it
        // off the runtime keeps Raft heartbeats punctual while the disk is slow.
        std::thread::Builder::new()
            .name("raftq-group-commit".into())
            .spawn(move || run(db, rx, thread_stats))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start group-commit thread: {e}"));
        Self { tx, stats }
    }

    /// Calls `done` once everything written to the Db before this call is on disk.
    pub fn after_flush(&self, done: impl FnOnce(Result<(), std::io::Error>) + Send + 'static) {
        if let Err(mpsc::SendError(done)) = self.tx.send(Box::new(done)) {
            done(Err(std::io::Error::other("group-commit thread stopped")));
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

fn run(db: sled::Db, rx: mpsc::Receiver<Completion>, stats: Arc<FlushStats>) {
    let mut batch: Vec<Completion> = Vec::with_capacity(1024);
    // `recv` fails only when every sender is gone: the node is shutting down.
    while let Ok(first) = rx.recv() {
        batch.push(first);
        batch.extend(rx.try_iter());
        let started = Instant::now();
        let result = db.flush().map(|_| ());
        let micros = started.elapsed().as_micros() as u64;
        stats.flushes.fetch_add(1, Ordering::Relaxed);
        stats
            .flushed_writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats
            .flush_micros_total
            .fetch_add(micros, Ordering::Relaxed);
        stats.flush_micros_max.fetch_max(micros, Ordering::Relaxed);
        match result {
            Ok(()) => batch.drain(..).for_each(|done| done(Ok(()))),
            Err(e) => {
                tracing::error!("sled flush failed: {e}");
                let msg = e.to_string();
                batch
                    .drain(..)
                    .for_each(|done| done(Err(std::io::Error::other(msg.clone()))));
            }
        }
    }
}
