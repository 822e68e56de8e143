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
//! File: records of `[len u32 LE][sealed Vec<(group, Option<Mark>)>]` in a
//! file allocated and zeroed in advance, written in place: an fdatasync of an
//! overwrite changes no metadata, so it costs about one device cache flush
//! instead of a journal commit (this sync is on every acknowledgement's path).
//! Reading stops at the first record that is zero, torn or damaged. Rewritten
//! at every start (as one record, also dropping a torn tail) and when full.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::checksum::{decode_sealed, encode_sealed};
use crate::StoreError;

const FILE_NAME: &str = "durability-ledger";
/// Bytes a ledger file is allocated with; rewritten as one record when full.
#[cfg(not(test))]
const SPACE: u64 = 8 << 20;
/// Small in unit tests, so filling it takes few fsyncs.
#[cfg(test)]
const SPACE: u64 = 64 << 10;
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
}

struct Journal {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    bytes: u64,
    /// The file's allocated size.
    space: u64,
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
    /// Opens (or creates) the ledger in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(FILE_NAME);
        let existed = path.exists();
        let found = if existed {
            let mut file = File::open(&path)?;
            let (found, good_bytes, used) = read_records(&mut file)?;
            if good_bytes < used {
                tracing::warn!(
                    path = %path.display(),
                    kept = good_bytes,
                    "durability ledger ends in a torn or damaged record: dropping it"
                );
            }
            found
        } else {
            BTreeMap::new()
        };
        let all: Record = found.iter().map(|(g, m)| (*g, Some(*m))).collect();
        let journal = Journal::fresh(&path, &all)?;
        let inner = Arc::new(Inner {
            marks: Mutex::new(Marks {
                durable: found.clone(),
                ..Marks::default()
            }),
            journal: Mutex::new(journal),
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
        let mut journal = self.inner.journal.lock();
        let record: Record = {
            let mut marks = self.inner.marks.lock();
            let staged = std::mem::take(&mut marks.staged);
            staged
                .into_iter()
                .map(|(group, mark)| {
                    let durable = marks.durable.entry(group).or_default();
                    durable.raise(mark);
                    (group, Some(*durable))
                })
                .collect()
        };
        self.write(&mut journal, &record)
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
            (group, marks.durable.get(&group).copied())
        };
        self.write(&mut journal, &vec![entry])
    }

    /// Appends `record`, or, when the file is full, replaces it with a
    /// fresh one holding every mark (which includes `record`).
    fn write(&self, journal: &mut Journal, record: &Record) -> Result<(), std::io::Error> {
        if record.is_empty() || append(journal, record)? {
            return Ok(());
        }
        let all: Record = self
            .inner
            .marks
            .lock()
            .durable
            .iter()
            .map(|(g, m)| (*g, Some(*m)))
            .collect();
        let path = journal.path.clone();
        *journal = Journal::fresh(&path, &all)?;
        Ok(())
    }
}

impl Journal {
    /// A new ledger file holding `all`, zeroed to its full size, synced,
    /// and renamed over `path` (directory synced).
    fn fresh(path: &Path, all: &Record) -> Result<Journal, std::io::Error> {
        let fresh_path = path.with_extension("new");
        let needed = encode_sealed(all).map_err(std::io::Error::other)?.len() as u64 + 4;
        let space = SPACE.max(needed.saturating_mul(4));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&fresh_path)?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = space;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        let mut journal = Journal {
            file,
            path: path.to_path_buf(),
            bytes: 0,
            space,
        };
        if !all.is_empty() {
            append(&mut journal, all)?;
        }
        journal.file.sync_all()?;
        std::fs::rename(&fresh_path, path)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(journal)
    }
}

/// Writes `record` after the last one and syncs it; false (nothing
/// written) when it does not fit.
fn append(journal: &mut Journal, record: &Record) -> Result<bool, std::io::Error> {
    use std::os::unix::fs::FileExt;
    let sealed = encode_sealed(record).map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(sealed.len() + 4);
    bytes.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&sealed);
    if journal.bytes + bytes.len() as u64 > journal.space {
        return Ok(false);
    }
    journal.file.write_all_at(&bytes, journal.bytes)?;
    journal.file.sync_data()?;
    journal.bytes += bytes.len() as u64;
    Ok(true)
}

/// Replays the journal: the marks, how many leading bytes were sound, and
/// how many were ever written (up to the last byte that is not zero).
fn read_records(file: &mut File) -> Result<(BTreeMap<u64, Mark>, u64, u64), std::io::Error> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    let mut marks = BTreeMap::new();
    let mut at = 0usize;
    while let Some(len_bytes) = bytes.get(at..at + 4) {
        let mut len = [0u8; 4];
        len.copy_from_slice(len_bytes);
        let len = u32::from_le_bytes(len);
        if len == 0 || len > MAX_RECORD_BYTES {
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
    let used = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    Ok((marks, at as u64, used as u64))
}

fn sync_dir(dir: &Path) -> Result<(), std::io::Error> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(last_index: u64, vote_term: u64) -> Mark {
        Mark {
            last_index,
            vote_term,
        }
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
            ledger.stage(7, mark(10, 2));
            flush(&ledger);
            ledger.stage(7, mark(12, 2));
            ledger.stage(9, mark(3, 1));
            // 12 and group 9 were staged, never flushed: not written.
        }
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert!(ledger.existed());
        assert_eq!(ledger.found(7), Some(mark(10, 2)));
        assert_eq!(ledger.found(9), None);
    }

    #[test]
    fn a_lowered_or_forgotten_mark_is_written_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ledger = Ledger::open(dir.path()).expect("open");
            ledger.stage(1, mark(50, 3));
            ledger.stage(2, mark(5, 1));
            flush(&ledger);
            ledger.stage(1, mark(60, 3));
            ledger.lower(1, 41).expect("lower");
            ledger.forget(2).expect("forget");
        }
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert_eq!(ledger.found(1), Some(mark(40, 3)));
        assert_eq!(ledger.found(2), None);
    }

    #[test]
    fn a_lower_clips_the_staged_mark_and_never_writes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ledger = Ledger::open(dir.path()).expect("open");
            ledger.stage(5, mark(10, 1));
            flush(&ledger);
            // Written, not flushed yet: staged.
            ledger.stage(5, mark(100, 9));
            ledger.lower(5, 91).expect("lower");
        }
        // The staged term-9 vote was never flushed: not in the ledger.
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert_eq!(ledger.found(5), Some(mark(10, 1)));
        ledger.stage(5, mark(100, 9));
        ledger.lower(5, 91).expect("lower");
        flush(&ledger);
        drop(ledger);
        // Once flushed, the staged mark counts, clipped to 90.
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert_eq!(ledger.found(5), Some(mark(90, 9)));
    }

    #[test]
    fn a_torn_tail_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ledger = Ledger::open(dir.path()).expect("open");
            ledger.stage(4, mark(8, 1));
            flush(&ledger);
            ledger.stage(4, mark(9, 1));
            flush(&ledger);
        }
        let path = dir.path().join(FILE_NAME);
        let mut content = std::fs::read(&path).expect("read");
        assert_eq!(content.len() as u64, SPACE, "allocated in advance");
        // The last written byte, inside the newest record: torn.
        let last = content.iter().rposition(|b| *b != 0).expect("records");
        content[last] ^= 0xff;
        std::fs::write(&path, content).expect("write");
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert_eq!(ledger.found(4), Some(mark(8, 1)));
        // And it writes after what it kept, readable again.
        ledger.stage(4, mark(11, 1));
        flush(&ledger);
        drop(ledger);
        let ledger = Ledger::open(dir.path()).expect("reopen again");
        assert_eq!(ledger.found(4), Some(mark(11, 1)));
    }

    #[test]
    fn a_full_ledger_is_rewritten_with_every_mark() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ledger = Ledger::open(dir.path()).expect("open");
            for g in 0..100u64 {
                ledger.stage(g, mark(g * 2, 1));
            }
            flush(&ledger);
            // Enough records to fill the file several times over.
            let mut written = 0u64;
            let mut i = 0u64;
            while written < 3 * SPACE {
                ledger.stage(3, mark(1_000 + i, 2));
                flush(&ledger);
                written += 30;
                i += 1;
            }
            assert!(ledger.inner.journal.lock().bytes < SPACE);
        }
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert_eq!(ledger.found(50), Some(mark(100, 1)));
        assert!(ledger
            .found(3)
            .is_some_and(|m| m.last_index > 1_000 && m.vote_term == 2));
        assert_eq!(
            std::fs::metadata(dir.path().join(FILE_NAME))
                .expect("file")
                .len(),
            SPACE
        );
    }
}
