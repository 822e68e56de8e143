//! What makes sled's writes durable: `Db::flush` is not enough.
//!
//! On Linux sled 0.34 ends a flush with `sync_file_range(2)` on its log file:
//! that starts and waits for the page writeback, but flushes neither the
//! drive's write cache nor the file's metadata (a grown file's size), so a
//! power cut loses what it "flushed" (found with the power-loss filesystem in
//! tests/lazyfs: a cluster cut as a whole came back empty). Values too large
//! for its log pages go to blob files that sled writes without any sync.
//! After every flush, the new blob files, the blob directory and the log file
//! itself are fsynced here, before anything is acknowledged.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

pub(crate) struct DiskSync {
    log_file: File,
    blobs_dir: PathBuf,
    /// Blob files already synced (and still there at the last look).
    synced_blobs: Mutex<HashSet<u64>>,
}

impl DiskSync {
    /// For the sled database in `db_dir`, once sled has opened it.
    pub(crate) fn open(db_dir: &Path) -> std::io::Result<Self> {
        Ok(Self {
            log_file: File::open(db_dir.join("db"))?,
            blobs_dir: db_dir.join("blobs"),
            synced_blobs: Mutex::new(HashSet::new()),
        })
    }

    /// Makes what the last `Db::flush` wrote durable.
    pub(crate) fn after_flush(&self) -> std::io::Result<()> {
        self.sync_new_blobs()?;
        self.log_file.sync_data()
    }

    fn sync_new_blobs(&self) -> std::io::Result<()> {
        let mut synced = self.synced_blobs.lock();
        let mut present = HashSet::with_capacity(synced.len());
        let mut fresh = false;
        let dir = match std::fs::read_dir(&self.blobs_dir) {
            Ok(dir) => dir,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in dir {
            let entry = entry?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            present.insert(id);
            if synced.contains(&id) {
                continue;
            }
            match File::open(entry.path()) {
                Ok(file) => file.sync_data()?,
                // Collected by sled meanwhile: nothing left to keep.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            fresh = true;
        }
        if fresh {
            File::open(&self.blobs_dir)?.sync_all()?;
        }
        *synced = present;
        Ok(())
    }
}
