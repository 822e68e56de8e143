//! Files that are open or hold unsynced data, by backing inode.
//!
//! Unsynced data belongs to the inode, not to a handle or a path: it outlives
//! `close` (close is not a sync), follows renames, and any handle's fsync
//! writes it out, as on a real file system. An entry keeps its backing file
//! open, which also keeps the backing inode number from being reused while
//! we key data by it.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::dirty::Dirty;
use crate::inodes::{moved_path, Key};

#[derive(Debug)]
pub struct FileData {
    /// Opened read-write whatever the callers asked for: a sync must be able
    /// to write, and the kernel already refused writes to read-only handles.
    backing: File,
    dirty: Option<Dirty>,
}

impl FileData {
    pub fn backing(&self) -> &File {
        &self.backing
    }

    /// Size and mtime readers see, when they differ from the backing file's.
    pub fn overlay(&self) -> Option<(u64, std::time::SystemTime)> {
        self.dirty.as_ref().map(|d| (d.size(), d.mtime()))
    }

    pub fn dirty_bytes(&self) -> u64 {
        self.dirty.as_ref().map_or(0, Dirty::bytes)
    }

    pub fn read(&self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        if let Some(dirty) = &self.dirty {
            return dirty.read(&self.backing, offset, len);
        }
        let mut buf = vec![0; len as usize];
        let mut done = 0;
        while done < buf.len() {
            match self.backing.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    /// `append`: the handle has O_APPEND, so the write goes to the end
    /// whatever offset the kernel computed from its cached size.
    pub fn write(&mut self, offset: u64, data: &[u8], append: bool) -> io::Result<()> {
        let dirty = start_dirty(&mut self.dirty, &self.backing)?;
        let offset = if append { dirty.size() } else { offset };
        dirty.write(&self.backing, offset, data)
    }

    pub fn truncate(&mut self, size: u64) -> io::Result<()> {
        // O_TRUNC of an empty file, or set_len to the current length, changes
        // nothing: no need to hold the file as unsynced.
        if self.dirty.is_none() && self.backing.metadata()?.len() == size {
            return Ok(());
        }
        start_dirty(&mut self.dirty, &self.backing)?.truncate(size);
        Ok(())
    }

    /// Writes unsynced data to the backing file; returns the bytes it held,
    /// or None if there was nothing unsynced.
    pub fn sync(&mut self) -> io::Result<Option<u64>> {
        let Some(dirty) = &self.dirty else {
            return Ok(None);
        };
        dirty.write_out(&self.backing)?;
        let bytes = dirty.bytes();
        self.dirty = None;
        Ok(Some(bytes))
    }

    /// The power cut: forgets unsynced data; returns the bytes it held, or
    /// None if there was nothing unsynced.
    pub fn discard(&mut self) -> Option<u64> {
        self.dirty.take().map(|d| d.bytes())
    }
}

/// The file's unsynced state, starting it from the backing file's length.
fn start_dirty<'a>(dirty: &'a mut Option<Dirty>, backing: &File) -> io::Result<&'a mut Dirty> {
    let len = match dirty {
        Some(_) => 0,
        None => backing.metadata()?.len(),
    };
    Ok(dirty.get_or_insert_with(|| Dirty::new(len)))
}

pub type Shared = Arc<Mutex<FileData>>;

#[derive(Debug)]
struct Entry {
    /// Current path relative to the backing root, for cuts of a subtree.
    path: PathBuf,
    handles: usize,
    data: Shared,
}

#[derive(Debug, Default)]
pub struct Files {
    entries: HashMap<Key, Entry>,
}

impl Files {
    pub fn get(&self, key: Key) -> Option<Shared> {
        self.entries.get(&key).map(|e| e.data.clone())
    }

    /// The file's data, opening its backing file with `open` if it has no
    /// entry yet; `handle` counts a new open handle.
    pub fn open(
        &mut self,
        key: Key,
        path: &Path,
        handle: bool,
        open: impl FnOnce() -> io::Result<File>,
    ) -> io::Result<Shared> {
        let entry = match self.entries.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Entry {
                path: path.to_path_buf(),
                handles: 0,
                data: Arc::new(Mutex::new(FileData {
                    backing: open()?,
                    dirty: None,
                })),
            }),
        };
        if handle {
            entry.handles += 1;
        }
        Ok(entry.data.clone())
    }

    pub fn released(&mut self, key: Key) {
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.handles = entry.handles.saturating_sub(1);
        }
        self.collect(key);
    }

    /// Drops the entry if nothing needs it: no handle, and no unsynced data
    /// or no name left to reach the file by. An entry whose data is busy
    /// stays for a later pass.
    pub fn collect(&mut self, key: Key) {
        let Some(entry) = self.entries.get(&key) else {
            return;
        };
        if entry.handles > 0 {
            return;
        }
        let Some(data) = entry.data.try_lock() else {
            return;
        };
        let unreachable = data
            .backing
            .metadata()
            .map(|m| m.nlink() == 0)
            .unwrap_or(false);
        let useless = data.dirty.is_none() || unreachable;
        drop(data);
        if useless {
            self.entries.remove(&key);
        }
    }

    pub fn collect_all(&mut self) {
        let keys: Vec<Key> = self.entries.keys().copied().collect();
        for key in keys {
            self.collect(key);
        }
    }

    /// Entries at or below `subdir` (relative; empty for all).
    pub fn under(&self, subdir: &Path) -> Vec<(Key, Shared)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.path.starts_with(subdir))
            .map(|(&k, e)| (k, e.data.clone()))
            .collect()
    }

    pub fn renamed(&mut self, from: &Path, to: &Path) {
        for entry in self.entries.values_mut() {
            if let Some(moved) = moved_path(&entry.path, from, to) {
                entry.path = moved;
            }
        }
    }

    pub fn exchanged(&mut self, a: &Path, b: &Path) {
        for entry in self.entries.values_mut() {
            if let Some(moved) =
                moved_path(&entry.path, a, b).or_else(|| moved_path(&entry.path, b, a))
            {
                entry.path = moved;
            }
        }
    }
}
