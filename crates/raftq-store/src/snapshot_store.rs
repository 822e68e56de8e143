//! Persistence of a group's latest snapshot: the state-machine image in a file of
//! its own, and which file is current (plus openraft's metadata) in sled.
//!
//! The state machines live in memory; what makes them durable is this snapshot plus
//! the log after it, which openraft re-applies on restart. So a snapshot file is
//! fsynced, and then named current in a flushed sled write, before it is reported
//! built; only then may the log below it be purged.
//!
//! Why a file and not a sled value: a queue with a million ready messages has a
//! snapshot of ~250 MB. As one sled value it was held in memory three times (the
//! encoded buffer, sled's write buffer, and sled's page cache reading it back),
//! which alone put a node over twice its payload in resident memory. A file is
//! written and read through a small buffer, and sent to a follower in chunks.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::checksum::{decode_sealed, encode_sealed, Unreadable};
use crate::codec::{decode, encode};
use crate::committer::GroupCommitter;
use crate::trees::tree_name;
use crate::StoreError;

pub(crate) const CURRENT_KEY: &[u8] = b"current_file";
const SUFFIX: &str = ".snap";
const PARTIAL_SUFFIX: &str = ".snap.partial";

/// What sled records about the current snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CurrentSnapshot {
    /// Opaque bincode of openraft's `SnapshotMeta`.
    meta: Vec<u8>,
    /// File name inside the snapshot directory.
    file: String,
}

/// The latest snapshot of a group as found on disk.
#[derive(Debug, Clone)]
pub struct StoredSnapshot {
    /// Opaque bincode of openraft's `SnapshotMeta`.
    pub meta: Vec<u8>,
    pub path: PathBuf,
}

/// A snapshot file being written (by us) or received (from the leader); it only
/// becomes the group's snapshot through [`SnapshotStore::commit`].
#[derive(Debug)]
pub struct PendingSnapshot {
    pub path: PathBuf,
}

#[derive(Clone)]
pub struct SnapshotStore {
    group: u64,
    dir: PathBuf,
    tree: sled::Tree,
    committer: GroupCommitter,
}

/// Distinguishes files created within the same clock tick.
static FILE_SEQ: AtomicU64 = AtomicU64::new(0);

impl SnapshotStore {
    pub(crate) fn open(
        db: &sled::Db,
        dir: &Path,
        group: u64,
        committer: GroupCommitter,
    ) -> Result<Self, StoreError> {
        let store = Self {
            group,
            dir: dir.to_path_buf(),
            tree: db.open_tree(tree_name(group, "snapshot"))?,
            committer,
        };
        store.remove_stale_files()?;
        Ok(store)
    }

    fn prefix(&self) -> String {
        file_prefix(self.group)
    }

    /// A fresh, empty file to write a snapshot into.
    pub fn create(&self) -> Result<(PendingSnapshot, std::fs::File), StoreError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seq = FILE_SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}{nanos}-{seq}{PARTIAL_SUFFIX}", self.prefix());
        let path = self.dir.join(name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((PendingSnapshot { path }, file))
    }

    /// Writes `value` into a new pending snapshot file through a small buffer,
    /// followed by the checksum trailer [`read_value`] verifies.
    /// Not fsynced here: the caller may be holding a lock the data came from, and
    /// [`Self::commit`] syncs the file anyway.
    pub fn write_value<T: Serialize>(&self, value: &T) -> Result<PendingSnapshot, StoreError> {
        let (pending, file) = self.create()?;
        let result = (|| {
            let mut out = Summing {
                inner: BufWriter::with_capacity(1 << 20, file),
                crc: crc32fast::Hasher::new(),
            };
            bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())?;
            let mut trailer = TRAILER_TAG.to_vec();
            trailer.extend_from_slice(&out.crc.clone().finalize().to_le_bytes());
            out.inner.write_all(&trailer)?;
            out.inner.flush()?;
            Ok::<_, StoreError>(())
        })();
        match result {
            Ok(()) => Ok(pending),
            Err(e) => {
                let _ = std::fs::remove_file(&pending.path);
                Err(e)
            }
        }
    }

    /// Makes a fully written pending file the group's snapshot, and waits until
    /// that is durable: file fsynced, renamed, directory fsynced, then named
    /// current in sled and flushed. The previous snapshot file is deleted after.
    pub async fn commit(&self, pending: PendingSnapshot, meta: Vec<u8>) -> Result<(), StoreError> {
        let partial = file_name(&pending.path)?;
        let file = partial.trim_end_matches(PARTIAL_SUFFIX).to_owned() + SUFFIX;
        let final_path = self.dir.join(&file);
        let dir = self.dir.clone();
        // Syncing a few hundred MB takes a while: keep it off the async workers
        // so heartbeats stay punctual.
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&pending.path)?.sync_all()?;
            std::fs::rename(&pending.path, &final_path)?;
            sync_dir(&dir)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        let previous = self.current()?;
        self.tree.insert(
            CURRENT_KEY,
            encode_sealed(&CurrentSnapshot {
                meta,
                file: file.clone(),
            })?,
        )?;
        self.committer
            .flush()
            .await
            .map_err(|e| StoreError::Flush(e.to_string()))?;
        if let Some(previous) = previous.filter(|p| p.file != file) {
            let _ = std::fs::remove_file(self.dir.join(previous.file));
        }
        Ok(())
    }

    /// Abandons a pending file (a transfer that was superseded or failed).
    pub fn discard(&self, pending: PendingSnapshot) {
        let _ = std::fs::remove_file(pending.path);
    }

    fn current(&self) -> Result<Option<CurrentSnapshot>, StoreError> {
        match self.tree.get(CURRENT_KEY)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode_sealed(&bytes)?)),
        }
    }

    pub fn load(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        Ok(self.current()?.map(|current| StoredSnapshot {
            meta: current.meta,
            path: self.dir.join(current.file),
        }))
    }

    /// Deletes every snapshot file of `group` in `dir` without reading its
    /// record (which may be the damage a discard is for): the group is gone
    /// from this node.
    pub(crate) fn remove_files_of(dir: &Path, group: u64) -> Result<(), StoreError> {
        for path in group_files(dir, group)? {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }

    /// Files a crash left behind: partial writes and snapshots no longer current.
    fn remove_stale_files(&self) -> Result<(), StoreError> {
        let current = self.current()?.map(|c| self.dir.join(c.file));
        for path in self.own_files()? {
            if Some(&path) != current.as_ref() {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    fn own_files(&self) -> Result<Vec<PathBuf>, StoreError> {
        group_files(&self.dir, self.group)
    }
}

/// The snapshot files (whole or partial) of `group` in `dir`.
fn group_files(dir: &Path, group: u64) -> Result<Vec<PathBuf>, StoreError> {
    let prefix = file_prefix(group);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(&prefix) && (name.ends_with(SUFFIX) || name.ends_with(PARTIAL_SUFFIX)) {
            files.push(entry.path());
        }
    }
    Ok(files)
}

fn file_prefix(group: u64) -> String {
    format!("g{group}-")
}

/// Ends every snapshot file, before the CRC32 of everything ahead of it.
const TRAILER_TAG: &[u8; 4] = b"RQS2";

/// Decodes a snapshot file written by [`SnapshotStore::write_value`] (or received
/// from a leader that wrote it so), reading through a small buffer, and
/// verifies its checksum: a damaged file (on disk, or in transfer) is an
/// error, never a state.
pub fn read_value<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let file = std::fs::File::open(path)?;
    // The file may have come from a leader: its lengths are bounded by its size.
    let len = file.metadata()?.len();
    let damaged = |why: Unreadable| StoreError::SnapshotFile {
        path: path.to_path_buf(),
        why,
    };
    let mut input = Summing {
        inner: BufReader::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
    };
    let value: T = crate::codec::with_input_limit!(len, config => {
        bincode::serde::decode_from_std_read(&mut input, config)
    })
    .map_err(|e| damaged(Unreadable::Decode(e.to_string())))?;
    let computed = input.crc.clone().finalize();
    let mut trailer = Vec::with_capacity(8);
    input.inner.read_to_end(&mut trailer)?;
    match trailer.split_first_chunk::<4>() {
        Some((tag, crc)) if tag == TRAILER_TAG && crc.len() == 4 => {
            let mut stored = [0u8; 4];
            stored.copy_from_slice(crc);
            let stored = u32::from_le_bytes(stored);
            if stored != computed {
                return Err(damaged(Unreadable::Checksum { stored, computed }));
            }
            Ok(value)
        }
        _ => Err(damaged(Unreadable::Short(trailer.len()))),
    }
}

/// Passes bytes through while summing them.
struct Summing<T> {
    inner: T,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Summing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

fn file_name(path: &Path) -> Result<String, StoreError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Io(std::io::Error::other("snapshot path has no file name")))
}

/// A rename is durable only once the directory holding it is fsynced.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Encodes any serde value with the store's on-disk encoding.
pub fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    Ok(encode(value)?)
}

/// Decodes a value written by [`encode_value`].
pub fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    Ok(decode(bytes)?)
}
