//! The FUSE request handlers: a passthrough to the backing directory, except
//! that file data goes through [`FileData`](crate::files::FileData).
//!
//! Every regular file is opened with direct I/O and attributes and entries
//! are never cached by the kernel, so after a cut nothing stale is served
//! from the kernel's caches: every read, size and lookup comes to us.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use parking_lot::Mutex;

use crate::files::Shared;
use crate::inodes::Key;
use crate::state::State;

/// Nothing cached in the kernel: a cut changes sizes and contents behind its
/// back.
const TTL: Duration = Duration::ZERO;

#[derive(Debug)]
struct Handle {
    key: Key,
    data: Shared,
}

#[derive(Debug)]
struct DirEntry {
    ino: u64,
    kind: FileType,
    name: OsString,
}

/// The attribute changes of one setattr request that this file system keeps.
#[derive(Debug)]
struct SetAttr {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
}

#[derive(Debug)]
pub struct LazyFs {
    state: Arc<State>,
    handles: Mutex<HashMap<u64, Handle>>,
    dirs: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    next_fh: AtomicU64,
}

type Result<T> = std::result::Result<T, Errno>;

fn errno(e: io::Error) -> Errno {
    Errno::from(e)
}

impl LazyFs {
    pub fn new(state: Arc<State>) -> LazyFs {
        LazyFs {
            state,
            handles: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf> {
        let ns = self.state.ns.lock();
        ns.inodes
            .path(ino.0)
            .map(Path::to_path_buf)
            .ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf> {
        Ok(self.path(parent)?.join(name))
    }

    fn handle(&self, fh: FileHandle) -> Result<(Key, Shared)> {
        let handles = self.handles.lock();
        let h = handles.get(&fh.0).ok_or(Errno::EBADF)?;
        Ok((h.key, h.data.clone()))
    }

    fn add_handle(&self, key: Key, data: Shared) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, Handle { key, data });
        FileHandle(fh)
    }

    /// Registers a lookup of what is at `rel` and returns its attributes.
    fn entry(&self, rel: PathBuf) -> Result<FileAttr> {
        let meta = fs::symlink_metadata(self.state.real(&rel)).map_err(errno)?;
        let key = (meta.dev(), meta.ino());
        let (ino, data) = {
            let mut ns = self.state.ns.lock();
            (ns.inodes.looked_up(key, rel), ns.files.get(key))
        };
        Ok(attr(ino, &meta, data.and_then(|d| d.lock().overlay())))
    }

    fn getattr_inner(&self, ino: INodeNo, fh: Option<FileHandle>) -> Result<FileAttr> {
        let data = match fh.map(|fh| self.handle(fh)) {
            Some(Ok((_, data))) => Some(data),
            _ => None,
        };
        let (rel, key, data) = {
            let ns = self.state.ns.lock();
            let rel = ns.inodes.path(ino.0).ok_or(Errno::ENOENT)?.to_path_buf();
            let key = ns.inodes.key(ino.0).ok_or(Errno::ENOENT)?;
            let data = data.or_else(|| ns.files.get(key));
            (rel, key, data)
        };
        // An open or unsynced file is asked through its own descriptor: its
        // path may be gone (unlinked) or name another file by now.
        if let Some(data) = data {
            let data = data.lock();
            let meta = data.backing().metadata().map_err(errno)?;
            return Ok(attr(ino.0, &meta, data.overlay()));
        }
        let meta = fs::symlink_metadata(self.state.real(&rel)).map_err(errno)?;
        if (meta.dev(), meta.ino()) != key {
            return Err(Errno::ENOENT);
        }
        Ok(attr(ino.0, &meta, None))
    }

    /// The file's data, opening the backing file if nothing holds it yet.
    fn open_data(&self, ino: INodeNo, handle: bool) -> Result<(Key, Shared)> {
        let mut ns = self.state.ns.lock();
        let rel = ns.inodes.path(ino.0).ok_or(Errno::ENOENT)?.to_path_buf();
        let key = ns.inodes.key(ino.0).ok_or(Errno::ENOENT)?;
        let real = self.state.real(&rel);
        let data = ns
            .files
            .open(key, &rel, handle, || open_backing(&real, key))
            .map_err(errno)?;
        Ok((key, data))
    }

    fn setattr_inner(
        &self,
        ino: INodeNo,
        fh: Option<FileHandle>,
        set: SetAttr,
    ) -> Result<FileAttr> {
        let SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        } = set;
        let real = self.state.real(&self.path(ino)?);
        if let Some(mode) = mode {
            fs::set_permissions(&real, fs::Permissions::from_mode(mode & 0o7777)).map_err(errno)?;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::lchown(&real, uid, gid).map_err(errno)?;
        }
        if let Some(size) = size {
            match fh.map(|fh| self.handle(fh)) {
                Some(Ok((_, data))) => data.lock().truncate(size).map_err(errno)?,
                _ => {
                    let (key, data) = self.open_data(ino, false)?;
                    let truncated = data.lock().truncate(size).map_err(errno);
                    drop(data);
                    // truncate(2) by path holds no handle: nothing keeps the
                    // backing file open unless the change left data unsynced.
                    self.state.ns.lock().files.collect(key);
                    truncated?;
                }
            }
        }
        if atime.is_some() || mtime.is_some() {
            set_times(&real, atime, mtime).map_err(errno)?;
        }
        self.getattr_inner(ino, fh)
    }

    fn create_inner(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(FileAttr, FileHandle)> {
        let rel = self.child(parent, name)?;
        let real = self.state.real(&rel);
        let mut options = OpenOptions::new();
        options.read(true).write(true).mode(mode & !umask & 0o7777);
        let file = match options.clone().create_new(true).open(&real) {
            Ok(file) => {
                chown_to_caller(&real, req);
                file
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && flags & libc::O_EXCL == 0 => {
                options.open(&real).map_err(errno)?
            }
            Err(e) => return Err(errno(e)),
        };
        let meta = file.metadata().map_err(errno)?;
        let key = (meta.dev(), meta.ino());
        let (ino, data) = {
            let mut ns = self.state.ns.lock();
            let ino = ns.inodes.looked_up(key, rel.clone());
            let data = ns.files.open(key, &rel, true, || Ok(file)).map_err(errno)?;
            (ino, data)
        };
        if flags & libc::O_TRUNC != 0 {
            data.lock().truncate(0).map_err(errno)?;
        }
        let attr = {
            let locked = data.lock();
            let meta = locked.backing().metadata().map_err(errno)?;
            attr(ino, &meta, locked.overlay())
        };
        Ok((attr, self.add_handle(key, data)))
    }

    fn rename_inner(
        &self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        let from = self.child(parent, name)?;
        let to = self.child(newparent, newname)?;
        let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
        let replaced = match fs::symlink_metadata(self.state.real(&to)) {
            Ok(meta) if !exchange => Some((meta.dev(), meta.ino())),
            _ => None,
        };
        let c_from = cpath(&self.state.real(&from))?;
        let c_to = cpath(&self.state.real(&to))?;
        // SAFETY: both paths are NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                c_from.as_ptr(),
                libc::AT_FDCWD,
                c_to.as_ptr(),
                flags.bits(),
            )
        };
        if rc != 0 {
            return Err(errno(io::Error::last_os_error()));
        }
        let mut ns = self.state.ns.lock();
        if exchange {
            ns.inodes.exchanged(&from, &to);
            ns.files.exchanged(&from, &to);
        } else {
            ns.inodes.renamed(&from, &to);
            ns.files.renamed(&from, &to);
        }
        if let Some(key) = replaced {
            ns.files.collect(key);
        }
        Ok(())
    }

    fn read_dir(&self, ino: INodeNo) -> Result<Vec<DirEntry>> {
        let real = self.state.real(&self.path(ino)?);
        let mut entries = vec![
            DirEntry {
                ino: ino.0,
                kind: FileType::Directory,
                name: ".".into(),
            },
            DirEntry {
                ino: ino.0,
                kind: FileType::Directory,
                name: "..".into(),
            },
        ];
        for entry in fs::read_dir(&real).map_err(errno)? {
            let entry = entry.map_err(errno)?;
            let kind = entry
                .file_type()
                .ok()
                .and_then(FileType::from_std)
                .unwrap_or(FileType::RegularFile);
            entries.push(DirEntry {
                // Only shown to readdir callers; lookups assign our numbers.
                ino: std::os::unix::fs::DirEntryExt::ino(&entry),
                kind,
                name: entry.file_name(),
            });
        }
        Ok(entries)
    }

    fn made(&self, req: &Request, rel: PathBuf, reply: ReplyEntry) {
        chown_to_caller(&self.state.real(&rel), req);
        match self.entry(rel) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }
}

impl Filesystem for LazyFs {
    fn destroy(&mut self) {
        // Unmounting cleanly is a clean shutdown: the cache reaches the disk.
        if let Err(e) = self.state.sync(Path::new("")) {
            eprintln!("raftq-lazyfs: sync at unmount failed: {e}");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name).and_then(|rel| self.entry(rel)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.state.ns.lock().inodes.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.getattr_inner(ino, fh) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        match self.setattr_inner(ino, fh, set) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .path(ino)
            .and_then(|rel| fs::read_link(self.state.real(&rel)).map_err(errno))
        {
            Ok(target) => reply.data(target.as_os_str().as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let made = self.child(parent, name).and_then(|rel| {
            let c = cpath(&self.state.real(&rel))?;
            // SAFETY: `c` is a NUL-terminated path that outlives the call.
            let rc = unsafe { libc::mknod(c.as_ptr(), mode & !umask, libc::dev_t::from(rdev)) };
            if rc != 0 {
                return Err(errno(io::Error::last_os_error()));
            }
            Ok(rel)
        });
        match made {
            Ok(rel) => self.made(req, rel, reply),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let made = self.child(parent, name).and_then(|rel| {
            fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(self.state.real(&rel))
                .map_err(errno)?;
            Ok(rel)
        });
        match made {
            Ok(rel) => self.made(req, rel, reply),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let done = self.child(parent, name).and_then(|rel| {
            let real = self.state.real(&rel);
            let meta = fs::symlink_metadata(&real).map_err(errno)?;
            fs::remove_file(&real).map_err(errno)?;
            // Unsynced data of a file nobody can reach any more is dropped.
            self.state.ns.lock().files.collect((meta.dev(), meta.ino()));
            Ok(())
        });
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self
            .child(parent, name)
            .and_then(|rel| fs::remove_dir(self.state.real(&rel)).map_err(errno))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let made = self.child(parent, link_name).and_then(|rel| {
            std::os::unix::fs::symlink(target, self.state.real(&rel)).map_err(errno)?;
            Ok(rel)
        });
        match made {
            Ok(rel) => self.made(req, rel, reply),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.rename_inner(parent, name, newparent, newname, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let opened = self.open_data(ino, true).and_then(|(key, data)| {
            let fh = self.add_handle(key, data.clone());
            // The kernel sends O_TRUNC here or as a setattr first; either way
            // it is a data change that waits for fsync like a write.
            if flags.0 & libc::O_TRUNC != 0 {
                if let Err(e) = data.lock().truncate(0) {
                    self.drop_handle(fh);
                    return Err(errno(e));
                }
            }
            Ok(fh)
        });
        match opened {
            Ok(fh) => reply.opened(fh, FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self
            .handle(fh)
            .and_then(|(_, data)| data.lock().read(offset, size).map_err(errno))
        {
            Ok(buf) => reply.data(&buf),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        buf: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let written = self.handle(fh).and_then(|(_, data)| {
            let mut data = data.lock();
            data.write(offset, buf, flags.0 & libc::O_APPEND != 0)
                .map_err(errno)?;
            // O_SYNC and O_DSYNC make every write its own fsync.
            if flags.0 & libc::O_DSYNC != 0 {
                data.sync().map_err(errno)?;
            }
            Ok(())
        });
        match written {
            Ok(()) => reply.written(buf.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is not a sync: nothing to do.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.drop_handle(fh);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self
            .handle(fh)
            .and_then(|(_, data)| data.lock().sync().map_err(errno))
        {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // A snapshot at opendir keeps readdir offsets stable while the
        // directory changes.
        match self.read_dir(ino) {
            Ok(entries) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                self.dirs.lock().insert(fh, Arc::new(entries));
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(entries) = self.dirs.lock().get(&fh.0).cloned() else {
            reply.error(Errno::EBADF);
            return;
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, e) in entries.iter().enumerate().skip(skip) {
            if reply.add(INodeNo(e.ino), (i + 1) as u64, e.kind, &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.lock().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Names are durable as soon as they change (see the crate docs).
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match statvfs(&self.state.root) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // The kernel checks permissions itself (default_permissions).
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.create_inner(req, parent, name, mode, umask, flags) {
            Ok((attr, fh)) => {
                reply.created(&TTL, &attr, Generation(0), fh, FopenFlags::FOPEN_DIRECT_IO)
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Plain allocation only: it can grow the file, which is a data change
        // like ftruncate. Callers of posix_fallocate fall back to writing
        // zeros on EOPNOTSUPP.
        let done = match mode {
            0 => self.handle(fh).and_then(|(_, data)| {
                let mut data = data.lock();
                let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
                let size = match data.overlay() {
                    Some((size, _)) => size,
                    None => data.backing().metadata().map_err(errno)?.len(),
                };
                if end > size {
                    data.truncate(end).map_err(errno)?;
                }
                Ok(())
            }),
            libc::FALLOC_FL_KEEP_SIZE => Ok(()),
            _ => Err(Errno::EOPNOTSUPP),
        };
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

impl LazyFs {
    fn drop_handle(&self, fh: FileHandle) {
        let handle = self.handles.lock().remove(&fh.0);
        if let Some(handle) = handle {
            drop(handle.data);
            self.state.ns.lock().files.released(handle.key);
        }
    }
}

/// Opens the backing file of `key` read-write, checking that `real` still
/// names it.
fn open_backing(real: &Path, key: Key) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(real)?;
    let meta = file.metadata()?;
    if (meta.dev(), meta.ino()) != key {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    Ok(file)
}

/// Files and directories made for another user belong to that user, as on a
/// file system that is not a passthrough run by root.
fn chown_to_caller(real: &Path, req: &Request) {
    if req.uid() != 0 {
        if let Err(e) = std::os::unix::fs::lchown(real, Some(req.uid()), Some(req.gid())) {
            eprintln!("raftq-lazyfs: chown {}: {e}", real.display());
        }
    }
}

fn cpath(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

fn statvfs(path: &Path) -> io::Result<libc::statvfs> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: an all-zero statvfs is a valid value for the call to fill in.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `s` is a valid, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(s)
}

fn set_times(real: &Path, atime: Option<TimeOrNow>, mtime: Option<TimeOrNow>) -> io::Result<()> {
    let spec = |t: Option<TimeOrNow>| match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos().into(),
            }
        }
    };
    let times = [spec(atime), spec(mtime)];
    let c = CString::new(real.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is NUL-terminated and `times` holds the two entries the call reads.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    let nanos = Duration::from_nanos(nsecs.clamp(0, 999_999_999) as u64);
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos
    }
}

fn attr(ino: u64, meta: &Metadata, overlay: Option<(u64, SystemTime)>) -> FileAttr {
    let kind = FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile);
    let mtime = time(meta.mtime(), meta.mtime_nsec());
    let ctime = time(meta.ctime(), meta.ctime_nsec());
    let (size, blocks, mtime, ctime) = match overlay {
        Some((size, t)) => (size, size.div_ceil(512), t, t),
        None => (meta.size(), meta.blocks(), mtime, ctime),
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks,
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime,
        ctime,
        crtime: ctime,
        kind,
        perm: (meta.mode() & 0o7777) as u16,
        nlink: meta.nlink() as u32,
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: meta.rdev() as u32,
        blksize: meta.blksize() as u32,
        flags: 0,
    }
}
