//! The durability ledger: a small journal, outside sled, of how far each
//! group's log and vote had been made durable on this node.
//!
//! Why: sled recovers its log up to the first record that fails its own
//! checksum and silently drops everything after it, for every group at once
//! (measured: a few flipped bits or a truncated `db` file open as an older,
//! or empty, database without any error). A replica that comes back with a
//! shorter log or an older vote than it had acknowledged may have lost
//! entries a majority counted on, and must not vote until rebuilt. The
//! ledger is the independent witness that tells it so.
//!
//! Marks rise after the flush (and fsync) that made them true, so the ledger
//! never claims more than the disk holds, and are written and synced before
//! that flush's writes are acknowledged, so nothing acknowledged is missing
//! from it: a node whose log comes back shorter than an acknowledged entry
//! is always caught (openraft assumes a follower never loses what it
//! acknowledged; a leader meeting one that did asserts in debug builds). A
//! mark that goes down (a truncated log, a deleted group) is written and
//! synced before sled changes. A crash between sled's fsync and the ledger's
//! leaves the ledger behind, never ahead.
//!
//! File: records of `[len u32 LE][sealed Vec<(group, Option<Mark>)>]`; a torn
//! or damaged tail is cut off at open. Compacted into one record when large.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::checksum::{decode_sealed, encode_sealed};
use crate::StoreError;

const FILE_NAME: &str = "durability-ledger";
/// The ledger is rewritten as one record past this size.
const COMPACT_AFTER_BYTES: u64 = 4 << 20;
/// A record never needs more; anything longer is a damaged length.
const MAX_RECORD_BYTES: u32 = 256 << 20;

/// How far one group was durable on this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Highest log index flushed (0: none).
    pub last_index: u64,
    /// Highest vote term flushed.
    pub vote_term: u64,
}

impl Mark {
    fn raise(&mut self, other: Mark) {
        self.last_index = self.last_index.max(other.last_index);
        self.vote_term = self.vote_term.max(other.vote_term);
    }
}

type Record = Vec<(u64, Option<Mark>)>;

#[derive(Default)]
struct Marks {
    /// What the ledger file says or is about to say.
    durable: BTreeMap<u64, Mark>,
    /// Raised by writes since the last flush; promoted by `flushed`.
    staged: BTreeMap<u64, Mark>,
    dirty: BTreeSet<u64>,
}

struct Journal {
    file: File,
    path: PathBuf,
    bytes: u64,
}

struct Inner {
    marks: Mutex<Marks>,
    journal: Mutex<Journal>,
}

/// Cheap to clone: clones share the ledger.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
    /// The marks as found at open, lowered and forgotten along with the
    /// ledger: what the checks compare sled with.
    found: Arc<Mutex<BTreeMap<u64, Mark>>>,
    existed: bool,
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(FILE_NAME);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let (found, good_bytes) = read_records(&mut file)?;
        if good_bytes < file.metadata()?.len() {
            tracing::warn!(
                path = %path.display(),
                kept = good_bytes,
                "durability ledger ends in a torn or damaged record: cutting it off"
            );
            file.set_len(good_bytes)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        if !existed {
            sync_dir(dir)?;
        }
        let inner = Arc::new(Inner {
            marks: Mutex::new(Marks {
                durable: found.clone(),
                ..Marks::default()
            }),
            journal: Mutex::new(Journal {
                file,
                path,
                bytes: good_bytes,
            }),
        });
        Ok(Self {
            inner,
            found: Arc::new(Mutex::new(found)),
            existed,
        })
    }

    /// Whether a ledger file was there before this start.
    pub fn existed(&self) -> bool {
        self.existed
    }

    /// What the ledger said of `group` when the node started.
    pub fn found(&self, group: u64) -> Option<Mark> {
        self.found.lock().get(&group).copied()
    }

    /// Whether the ledger knew of any group when the node started.
    pub fn found_any(&self) -> bool {
        !self.found.lock().is_empty()
    }

    /// Notes a write that the next flush makes durable (committer thread).
    pub(crate) fn stage(&self, group: u64, mark: Mark) {
        self.inner
            .marks
            .lock()
            .staged
            .entry(group)
            .or_default()
            .raise(mark);
    }

    /// Everything staged is on disk now (committer thread, after a flush
    /// and its fsync): the new marks are written and synced before the
    /// flush's writes are acknowledged, so no acknowledged entry can be lost
    /// unseen.
    pub(crate) fn flushed(&self) -> Result<(), std::io::Error> {
        {
            let mut marks = self.inner.marks.lock();
            if marks.staged.is_empty() {
                return Ok(());
            }
            let staged = std::mem::take(&mut marks.staged);
            for (group, mark) in staged {
                marks.durable.entry(group).or_default().raise(mark);
                marks.dirty.insert(group);
            }
        }
        Self::write_dirty(&self.inner)
    }

    /// `group`'s log ends before `first_removed` from now on: written and
    /// synced before the caller removes anything from sled. A staged mark is
    /// clipped too, so its flush does not raise it again.
    pub(crate) fn lower(&self, group: u64, first_removed: u64) -> Result<(), std::io::Error> {
        let last = first_removed.saturating_sub(1);
        self.rewrite(group, |mut m| {
            m.last_index = m.last_index.min(last);
            Some(m)
        })
    }

    /// `group`'s data is about to go: written and synced before it does.
    pub fn forget(&self, group: u64) -> Result<(), std::io::Error> {
        self.rewrite(group, |_| None)
    }

    /// Applies `change` to both marks of `group` (durable and staged) and
    /// writes the durable one at once. Never merges the staged mark into the
    /// durable one: the ledger must not get ahead of the disk.
    fn rewrite(
        &self,
        group: u64,
        change: impl Fn(Mark) -> Option<Mark>,
    ) -> Result<(), std::io::Error> {
        let apply = |map: &mut BTreeMap<u64, Mark>| {
            if let Some(mark) = map.get(&group).copied() {
                match change(mark) {
                    Some(m) => map.insert(group, m),
                    None => map.remove(&group),
                };
            }
        };
        let mut journal = self.inner.journal.lock();
        let entry = {
            let mut marks = self.inner.marks.lock();
            apply(&mut marks.staged);
            apply(&mut marks.durable);
            apply(&mut self.found.lock());
            marks.dirty.remove(&group);
            (group, marks.durable.get(&group).copied())
        };
        append(&mut journal, &vec![entry])
    }

    /// Writes what is dirty now; the writer thread's one step.
    fn write_dirty(inner: &Inner) -> Result<(), std::io::Error> {
        let mut journal = inner.journal.lock();
        let record: Record = {
            let mut marks = inner.marks.lock();
            let dirty = std::mem::take(&mut marks.dirty);
            dirty
                .into_iter()
                .map(|g| (g, marks.durable.get(&g).copied()))
                .collect()
        };
        if record.is_empty() {
            return Ok(());
        }
        append(&mut journal, &record)?;
        if journal.bytes > COMPACT_AFTER_BYTES {
            let all: Record = inner
                .marks
                .lock()
                .durable
                .iter()
                .map(|(g, m)| (*g, Some(*m)))
                .collect();
            compact(&mut journal, &all)?;
        }
        Ok(())
    }
}

fn append(journal: &mut Journal, record: &Record) -> Result<(), std::io::Error> {
    let sealed = encode_sealed(record).map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(sealed.len() + 4);
    bytes.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&sealed);
    journal.file.write_all(&bytes)?;
    journal.file.sync_data()?;
    journal.bytes += bytes.len() as u64;
    Ok(())
}

/// Replaces the journal with one record of every mark: new file, synced,
/// renamed over the old one, directory synced.
fn compact(journal: &mut Journal, all: &Record) -> Result<(), std::io::Error> {
    let fresh_path = journal.path.with_extension("compacting");
    let mut fresh = Journal {
        file: OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&fresh_path)?,
        path: journal.path.clone(),
        bytes: 0,
    };
    append(&mut fresh, all)?;
    std::fs::rename(&fresh_path, &journal.path)?;
    if let Some(dir) = journal.path.parent() {
        sync_dir(dir)?;
    }
    *journal = fresh;
    Ok(())
}

/// Replays the journal: the marks, and how many leading bytes were sound.
fn read_records(file: &mut File) -> Result<(BTreeMap<u64, Mark>, u64), std::io::Error> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    let mut marks = BTreeMap::new();
    let mut at = 0usize;
    while let Some(len_bytes) = bytes.get(at..at + 4) {
        let mut len = [0u8; 4];
        len.copy_from_slice(len_bytes);
        let len = u32::from_le_bytes(len);
        if len > MAX_RECORD_BYTES {
            break;
        }
        let Some(sealed) = bytes.get(at + 4..at + 4 + len as usize) else {
            break;
        };
        let Ok(record) = decode_sealed::<Record>(sealed) else {
            break;
        };
        for (group, mark) in record {
            match mark {
                Some(m) => marks.insert(group, m),
                None => marks.remove(&group),
            };
        }
        at += 4 + len as usize;
    }
    Ok((marks, at as u64))
}

fn sync_dir(dir: &Path) -> Result<(), std::io::Error> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settle(ledger: &Ledger) {
        Ledger::write_dirty(&ledger.inner).expect("write");
    }

    fn flush(ledger: &Ledger) {
        ledger.flushed().expect("ledger write");
    }

    #[test]
    fn marks_survive_a_reopen_and_only_flushed_ones_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ledger = Ledger::open(dir.path()).expect("open");
            assert!(!ledger.existed());
            ledger.stage(
                7,
                Mark {
                    last_index: 10,
                    vote_term: 2,
                },
            );
            flush(&ledger);
            ledger.stage(
                7,
                Mark {
                    last_index: 12,
                    vote_term: 2,
                },
            );
            ledger.stage(
                9,
                Mark {
                    last_index: 3,
                    vote_term: 1,
                },
            );
            settle(&ledger);
            // 12 and group 9 were staged, never flushed: not written.
        }
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert!(ledger.existed());
        assert_eq!(
            ledger.found(7),
            Some(Mark {
                last_index: 10,
                vote_term: 2
            })
        );
        assert_eq!(ledger.found(9), None);
    }

    #[test]
    fn a_lowered_or_forgotten_mark_is_written_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ledger = Ledger::open(dir.path()).expect("open");
            ledger.stage(
                1,
                Mark {
                    last_index: 50,
                    vote_term: 3,
                },
            );
            ledger.stage(
                2,
                Mark {
                    last_index: 5,
                    vote_term: 1,
                },
            );
            flush(&ledger);
            settle(&ledger);
            ledger.stage(
                1,
                Mark {
                    last_index: 60,
                    vote_term: 3,
                },
            );
            ledger.lower(1, 41).expect("lower");
            ledger.forget(2).expect("forget");
        }
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert_eq!(
            ledger.found(1),
            Some(Mark {
                last_index: 40,
                vote_term: 3
            })
        );
        assert_eq!(ledger.found(2), None);
    }

    #[test]
    fn a_lower_clips_the_staged_mark_and_never_writes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ledger = Ledger::open(dir.path()).expect("open");
            ledger.stage(
                5,
                Mark {
                    last_index: 10,
                    vote_term: 1,
                },
            );
            flush(&ledger);
            // Written, not flushed yet: staged.
            ledger.stage(
                5,
                Mark {
                    last_index: 100,
                    vote_term: 9,
                },
            );
            ledger.lower(5, 91).expect("lower");
            settle(&ledger);
        }
        // The staged term-9 vote was never flushed: not in the ledger.
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert_eq!(
            ledger.found(5),
            Some(Mark {
                last_index: 10,
                vote_term: 1
            })
        );
        ledger.stage(
            5,
            Mark {
                last_index: 100,
                vote_term: 9,
            },
        );
        ledger.lower(5, 91).expect("lower");
        flush(&ledger);
        settle(&ledger);
        drop(ledger);
        // Once flushed, the staged mark counts, clipped to 90.
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert_eq!(
            ledger.found(5),
            Some(Mark {
                last_index: 90,
                vote_term: 9
            })
        );
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ledger = Ledger::open(dir.path()).expect("open");
            ledger.stage(
                4,
                Mark {
                    last_index: 8,
                    vote_term: 1,
                },
            );
            flush(&ledger);
            settle(&ledger);
            ledger.stage(
                4,
                Mark {
                    last_index: 9,
                    vote_term: 1,
                },
            );
            flush(&ledger);
            settle(&ledger);
        }
        let path = dir.path().join(FILE_NAME);
        let len = std::fs::metadata(&path).expect("meta").len();
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open file");
        file.set_len(len - 3).expect("truncate");
        drop(file);
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert_eq!(
            ledger.found(4),
            Some(Mark {
                last_index: 8,
                vote_term: 1
            })
        );
        // And it appends after the cut, readable again.
        ledger.stage(
            4,
            Mark {
                last_index: 11,
                vote_term: 1,
            },
        );
        flush(&ledger);
        settle(&ledger);
        drop(ledger);
        let ledger = Ledger::open(dir.path()).expect("reopen again");
        assert_eq!(
            ledger.found(4),
            Some(Mark {
                last_index: 11,
                vote_term: 1
            })
        );
    }

    #[test]
    fn compaction_keeps_every_mark() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ledger = Ledger::open(dir.path()).expect("open");
            for g in 0..100u64 {
                ledger.stage(
                    g,
                    Mark {
                        last_index: g * 2,
                        vote_term: 1,
                    },
                );
            }
            flush(&ledger);
            settle(&ledger);
            let all: Record = (0..100u64)
                .map(|g| {
                    (
                        g,
                        Some(Mark {
                            last_index: g * 2,
                            vote_term: 1,
                        }),
                    )
                })
                .collect();
            compact(&mut ledger.inner.journal.lock(), &all).expect("compact");
            ledger.stage(
                3,
                Mark {
                    last_index: 99,
                    vote_term: 2,
                },
            );
            flush(&ledger);
            settle(&ledger);
        }
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert_eq!(
            ledger.found(50),
            Some(Mark {
                last_index: 100,
                vote_term: 1
            })
        );
        assert_eq!(
            ledger.found(3),
            Some(Mark {
                last_index: 99,
                vote_term: 2
            })
        );
    }
}
