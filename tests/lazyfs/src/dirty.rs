//! The unsynced state of one file: what a disk's volatile cache holds for it.
//!
//! Data lives in 4 KiB pages over the backing file. Pages are copied whole,
//! so a small write into a page nobody dirtied yet reads that page from the
//! backing file first; in exchange a read is one `pread` plus a copy per dirty
//! page, and a sync writes contiguous runs of pages.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::SystemTime;

pub const PAGE: u64 = 4096;

/// Largest run of pages written to the backing file by one `pwrite` on sync.
const MAX_RUN: usize = 1 << 20;

type Page = Box<[u8; PAGE as usize]>;

#[derive(Debug)]
pub struct Dirty {
    /// Length the file has for its readers now.
    size: u64,
    /// Backing bytes at or past this offset are stale: the file was shrunk
    /// below it since the last sync, so they read as zeros (or are gone).
    durable_len: u64,
    pages: BTreeMap<u64, Page>,
    /// Writes change mtime without reaching the backing file's inode.
    mtime: SystemTime,
}

impl Dirty {
    /// Starts tracking a file whose backing file is `backing_len` long.
    pub fn new(backing_len: u64) -> Dirty {
        Dirty {
            size: backing_len,
            durable_len: backing_len,
            pages: BTreeMap::new(),
            mtime: SystemTime::now(),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn mtime(&self) -> SystemTime {
        self.mtime
    }

    /// Memory held: whole pages, the unit a cut loses.
    pub fn bytes(&self) -> u64 {
        self.pages.len() as u64 * PAGE
    }

    pub fn write(&mut self, backing: &File, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
        let valid = self.durable_len;
        let mut at = offset;
        while at < end {
            let index = at / PAGE;
            let in_page = (at % PAGE) as usize;
            let n = ((PAGE as usize) - in_page).min((end - at) as usize);
            let page = match self.pages.entry(index) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) if in_page == 0 && n == PAGE as usize => {
                    e.insert(Box::new([0; PAGE as usize]))
                }
                Entry::Vacant(e) => e.insert(load_page(backing, valid, index)?),
            };
            let from = (at - offset) as usize;
            page[in_page..in_page + n].copy_from_slice(&data[from..from + n]);
            at += n as u64;
        }
        self.size = self.size.max(end);
        self.mtime = SystemTime::now();
        Ok(())
    }

    pub fn truncate(&mut self, size: u64) {
        if size < self.size {
            // Whole pages past the end go; the page holding the new end keeps
            // zeros past it, so growing the file again reads zeros there.
            let first_gone = size.div_ceil(PAGE);
            self.pages.split_off(&first_gone);
            if !size.is_multiple_of(PAGE) {
                if let Some(page) = self.pages.get_mut(&(size / PAGE)) {
                    page[(size % PAGE) as usize..].fill(0);
                }
            }
            self.durable_len = self.durable_len.min(size);
        }
        self.size = size;
        self.mtime = SystemTime::now();
    }

    /// Reads what a reader sees now: dirty pages over the backing file.
    pub fn read(&self, backing: &File, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let end = self.size.min(offset.saturating_add(u64::from(len)));
        let mut buf = vec![0; (end - offset) as usize];
        let from_backing = end.min(self.durable_len);
        if from_backing > offset {
            read_full_at(
                backing,
                &mut buf[..(from_backing - offset) as usize],
                offset,
            )?;
        }
        for (&index, page) in self.pages.range(offset / PAGE..=(end - 1) / PAGE) {
            let page_start = index * PAGE;
            let lo = page_start.max(offset);
            let hi = (page_start + PAGE).min(end);
            buf[(lo - offset) as usize..(hi - offset) as usize]
                .copy_from_slice(&page[(lo - page_start) as usize..(hi - page_start) as usize]);
        }
        Ok(buf)
    }

    /// Makes the backing file hold exactly what readers see now.
    pub fn write_out(&self, backing: &File) -> io::Result<()> {
        if backing.metadata()?.len() > self.durable_len {
            backing.set_len(self.durable_len)?;
        }
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0;
        for (&index, page) in &self.pages {
            let start = index * PAGE;
            if start >= self.size {
                break;
            }
            let len = PAGE.min(self.size - start) as usize;
            if run_start + run.len() as u64 != start || run.len() >= MAX_RUN {
                backing.write_all_at(&run, run_start)?;
                run.clear();
                run_start = start;
            }
            run.extend_from_slice(&page[..len]);
        }
        backing.write_all_at(&run, run_start)?;
        backing.set_len(self.size)
    }
}

/// A page as readers see it before the write that dirties it: backing bytes
/// below `valid`, zeros past it.
fn load_page(backing: &File, valid: u64, index: u64) -> io::Result<Page> {
    let mut page: Page = Box::new([0; PAGE as usize]);
    let start = index * PAGE;
    if start < valid {
        let n = (valid - start).min(PAGE) as usize;
        read_full_at(backing, &mut page[..n], start)?;
    }
    Ok(page)
}

/// Fills `buf` from `offset`, leaving zeros where the file ends early (it
/// cannot here unless someone shrank the backing file behind our back).
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift: the test needs no crate and replays exactly.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn backing_with(content: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, content).expect("write");
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        (dir, file)
    }

    fn whole(dirty: &Dirty, file: &File) -> Vec<u8> {
        dirty.read(file, 0, u32::MAX).expect("read")
    }

    #[test]
    fn overlay_matches_a_plain_buffer_and_backing_is_untouched_until_written_out() {
        for seed in 1..40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let initial: Vec<u8> = (0..rng.below(20_000)).map(|i| i as u8).collect();
            let (dir, file) = backing_with(&initial);
            let mut dirty = Dirty::new(initial.len() as u64);
            let mut model = initial.clone();
            for step in 0..200 {
                match rng.below(10) {
                    0..=5 => {
                        let offset = rng.below(30_000);
                        let max = if rng.below(4) == 0 { 20_000 } else { 300 };
                        let len = rng.below(max);
                        let data: Vec<u8> =
                            (0..len).map(|i| (i as u8) ^ (step as u8) | 1).collect();
                        dirty.write(&file, offset, &data).expect("write");
                        let end = offset as usize + data.len();
                        if model.len() < end {
                            model.resize(end, 0);
                        }
                        model[offset as usize..end].copy_from_slice(&data);
                    }
                    6..=7 => {
                        let size = rng.below(30_000);
                        dirty.truncate(size);
                        model.resize(size as usize, 0);
                    }
                    _ => {
                        let offset = rng.below(30_000);
                        let len = rng.below(10_000) as u32;
                        let got = dirty.read(&file, offset, len).expect("read");
                        let lo = (offset as usize).min(model.len());
                        let hi = (offset as usize + len as usize).min(model.len());
                        assert_eq!(got, model[lo..hi], "seed {seed} step {step}");
                    }
                }
                assert_eq!(dirty.size(), model.len() as u64);
            }
            assert_eq!(whole(&dirty, &file), model, "seed {seed}");
            assert_eq!(
                std::fs::read(dir.path().join("f")).expect("read"),
                initial,
                "backing changed before a sync"
            );
            dirty.write_out(&file).expect("write out");
            assert_eq!(
                std::fs::read(dir.path().join("f")).expect("read"),
                model,
                "seed {seed}"
            );
        }
    }

    #[test]
    fn shrink_then_grow_reads_zeros_not_old_backing_bytes() {
        let (dir, file) = backing_with(&[7; 10_000]);
        let mut dirty = Dirty::new(10_000);
        dirty.truncate(100);
        dirty.truncate(9_000);
        let got = whole(&dirty, &file);
        assert_eq!(&got[..100], &[7; 100][..]);
        assert!(got[100..].iter().all(|&b| b == 0));
        dirty.write(&file, 5000, b"x").expect("write");
        let got = whole(&dirty, &file);
        assert!(got[100..5000].iter().all(|&b| b == 0));
        dirty.write_out(&file).expect("write out");
        assert_eq!(std::fs::read(dir.path().join("f")).expect("read"), got);
    }

    #[test]
    fn bytes_count_whole_pages() {
        let (_dir, file) = backing_with(&[]);
        let mut dirty = Dirty::new(0);
        dirty.write(&file, 4095, b"ab").expect("write");
        assert_eq!(dirty.bytes(), 2 * PAGE);
        assert_eq!(dirty.size(), 4097);
    }
}
