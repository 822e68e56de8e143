//! What the file system and the control socket share: the namespace, and the
//! power cut, sync and stats over a subtree of it.

use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::files::{Files, Shared};
use crate::inodes::Inodes;

#[derive(Debug)]
pub struct Namespace {
    pub inodes: Inodes,
    pub files: Files,
}

#[derive(Debug)]
pub struct State {
    pub root: PathBuf,
    /// Held only for table updates, never while waiting on a file's data:
    /// one file's long sync must not stall every other request.
    pub ns: Mutex<Namespace>,
}

/// Files with unsynced data and the bytes (whole pages) they hold.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub files: u64,
    pub bytes: u64,
}

impl Totals {
    fn add(&mut self, bytes: Option<u64>) {
        if let Some(bytes) = bytes {
            self.files += 1;
            self.bytes += bytes;
        }
    }
}

impl State {
    pub fn new(root: PathBuf, inodes: Inodes) -> State {
        State {
            root,
            ns: Mutex::new(Namespace {
                inodes,
                files: Files::default(),
            }),
        }
    }

    /// `rel` under the backing root.
    pub fn real(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    fn under(&self, subdir: &Path) -> Vec<Shared> {
        let ns = self.ns.lock();
        ns.files
            .under(subdir)
            .into_iter()
            .map(|(_, data)| data)
            .collect()
    }

    /// Power loss for `subdir` (relative; empty for everything): unsynced
    /// data is gone, files read as their backing files.
    pub fn cut(&self, subdir: &Path) -> Totals {
        let mut lost = Totals::default();
        for data in self.under(subdir) {
            lost.add(data.lock().discard());
        }
        self.ns.lock().files.collect_all();
        lost
    }

    /// Writes out unsynced data under `subdir`; on errors it still syncs
    /// every other file, then reports the first error.
    pub fn sync(&self, subdir: &Path) -> io::Result<Totals> {
        let mut synced = Totals::default();
        let mut first_error = None;
        for data in self.under(subdir) {
            match data.lock().sync() {
                Ok(bytes) => synced.add(bytes),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.ns.lock().files.collect_all();
        match first_error {
            Some(e) => Err(e),
            None => Ok(synced),
        }
    }

    pub fn stats(&self, subdir: &Path) -> Totals {
        let mut dirty = Totals::default();
        for data in self.under(subdir) {
            let data = data.lock();
            if data.overlay().is_some() {
                dirty.add(Some(data.dirty_bytes()));
            }
        }
        dirty
    }
}
