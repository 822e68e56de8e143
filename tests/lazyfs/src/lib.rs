//! raftq-lazyfs: a FUSE file system that behaves like a disk with a volatile
//! write cache, for power-failure tests (in the spirit of Jepsen's lazyfs).
//!
//! It passes everything through to a backing directory, except file data:
//! what programs write stays in this process's memory until they fsync it,
//! and a *power cut* (a control command) throws away whatever was not
//! fsynced, for the whole mount or for one subdirectory (one node's data
//! directory).
//!
//! # Data
//!
//! - `write`/`pwrite`, `truncate`/`ftruncate`/`set_len` (shrinking or
//!   growing), `O_TRUNC` and `fallocate` (mode 0) change a file's in-memory
//!   state: dirty 4 KiB pages over its backing file, its length and mtime.
//!   Readers see that state at once: contents, `stat` size, `SEEK_END`.
//! - The state reaches the backing file, and survives cuts, on `fsync` or
//!   `fdatasync` of the file (through any handle: data belongs to the file,
//!   not to a descriptor or a path), on each write of an `O_SYNC`/`O_DSYNC`
//!   handle, on the `sync` control command, and at a clean unmount.
//! - `close` is not a sync. Neither is `sync_file_range(2)`: the kernel
//!   never tells a FUSE file system about it, and on a real disk it neither
//!   flushes the drive's cache nor writes metadata. **sled 0.34's
//!   `Db::flush` syncs with it on Linux**, so what it flushes is lost by a
//!   cut unless something fsyncs sled's file (`DIR/db`) afterwards; sled
//!   fsyncs it only when the Db is dropped, on its periodic flush thread
//!   (when `flush_every_ms` is set) and around snapshots and segment
//!   truncation. `tests/sled_power_cut.rs` pins both behaviours.
//! - A cut is all-or-nothing per file since its last sync: no torn pages,
//!   no reordering between files.
//!
//! # Names and attributes
//!
//! Creating, removing and renaming files and directories, symlinks,
//! `chmod`, `chown` and `utimes` go to the backing directory at once, as if
//! the file system journaled them synchronously; fsync of a directory has
//! nothing left to do. So after a cut a file created but never fsynced
//! exists and is empty, and a file written, renamed over another one and not
//! fsynced is the new name with empty contents (ext4's notorious case). A
//! stricter model, where names too are lost unless their directory was
//! fsynced, is not implemented. Hard links and extended attributes are not
//! supported.
//!
//! The backing files are written but never fsynced themselves: the host's
//! page cache stands in for the platter. Only the simulated power loss is
//! modeled, not a crash of the host.
//!
//! # Running it
//!
//! ```text
//! raftq-lazyfs mount --backing DIR --mountpoint MNT [--control SOCKET] [--threads 4]
//! ```
//!
//! runs in the foreground (root, `/dev/fuse` and `fusermount3` needed). It
//! prints `raftq-lazyfs: mounted ...` once the mount is up and the control
//! socket listens (default `MNT.lazyfs.sock`, beside the mountpoint); a
//! script can instead poll `raftq-lazyfs stats` until it succeeds. SIGTERM,
//! SIGINT, SIGHUP or `fusermount3 -u MNT` unmount cleanly (unsynced data is
//! written out) and exit 0. If the process dies (SIGKILL), fusermount3
//! removes the dead mount and unsynced data is lost: a cut of everything.
//! Kill the programs under test before cutting their directory; handles left
//! open across a cut keep working and see the synced state.
//!
//! # Control commands
//!
//! One line per command on the Unix socket, one line back: `ok files=N
//! bytes=M` or `err MESSAGE`. SUBDIR is relative to the mount root (a leading
//! `/` is fine, `..` is refused); it matches whole path components and may
//! also name a single file. Without it a command covers the whole mount.
//!
//! | command        | does                                                      | `files`, `bytes` are      |
//! |----------------|-----------------------------------------------------------|---------------------------|
//! | `cut [SUBDIR]` | power cut: discards unsynced data, files read as backing  | files and bytes lost      |
//! | `sync [SUBDIR]`| writes unsynced data to the backing files                 | files and bytes written   |
//! | `stats [SUBDIR]`| nothing                                                  | files and bytes unsynced  |
//!
//! Bytes count whole 4 KiB pages. From a shell:
//!
//! ```text
//! raftq-lazyfs cut --control /tmp/t/mnt.lazyfs.sock --subdir node3
//! raftq-lazyfs stats --mountpoint /tmp/t/mnt      # the default socket of that mount
//! ```
//!
//! From Rust (this crate as a dependency):
//!
//! ```no_run
//! use raftq_lazyfs::control::{request, Command};
//! let reply = request("/tmp/t/mnt.lazyfs.sock".as_ref(), &Command::Cut("node3".into()))?;
//! assert!(reply.starts_with("ok"));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Kernel caches
//!
//! Regular files are opened with direct I/O and attributes and names are
//! cached for zero seconds, so after a cut the kernel serves nothing stale:
//! every read, `stat` and lookup comes to this process. Shared `mmap` of
//! files on the mount is therefore not supported (raftq and sled use none).

pub mod control;
mod dirty;
mod files;
mod fs;
mod inodes;
pub mod mount;
pub mod state;
