//! The file system through the kernel: what readers see before a power cut,
//! and what is left after one.

mod support;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use support::{Lazy, Totals};

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

#[test]
fn unsynced_writes_are_read_back_then_lost_on_cut() {
    let Some(lazy) = Lazy::mount("unsynced_writes_are_read_back_then_lost_on_cut") else {
        return;
    };
    let path = lazy.path("log");
    let mut f = rw(&path);
    f.write_all(b"synced").expect("write");
    f.sync_all().expect("fsync");
    f.write_all(b"+unsynced").expect("write");
    f.write_all_at(b"S", 0).expect("pwrite");

    assert_eq!(read(&path), b"Synced+unsynced", "readers see unsynced data");
    assert_eq!(f.metadata().expect("fstat").len(), 15);
    assert_eq!(
        read(&lazy.backing_path("log")),
        b"synced",
        "not written through"
    );
    assert_eq!(
        lazy.stats(""),
        Totals {
            files: 1,
            bytes: 4096
        }
    );

    let lost = lazy.cut("");
    assert_eq!(lost.files, 1);
    assert_eq!(read(&path), b"synced");
    assert_eq!(fs::metadata(&path).expect("stat").len(), 6);
    // The handle that was open across the cut reads the synced state too.
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(0)).expect("seek");
    f.read_to_end(&mut buf).expect("read");
    assert_eq!(buf, b"synced");
    assert_eq!(lazy.stats(""), Totals::default());

    // fdatasync is a sync too.
    f.write_all_at(b"data", 6).expect("pwrite");
    f.sync_data().expect("fdatasync");
    lazy.cut("");
    assert_eq!(read(&path), b"synceddata");
}

#[test]
fn growing_or_shrinking_without_fsync_is_undone_by_a_cut() {
    let Some(lazy) = Lazy::mount("growing_or_shrinking_without_fsync_is_undone_by_a_cut") else {
        return;
    };
    let original: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let grown = lazy.path("grown");
    let shrunk = lazy.path("shrunk");
    for path in [&grown, &shrunk] {
        let f = rw(path);
        f.write_all_at(&original, 0).expect("write");
        f.sync_all().expect("fsync");
    }

    // Preallocated the way sled does it (set_len), then written into.
    let f = rw(&grown);
    f.set_len(1 << 20).expect("set_len");
    f.write_all_at(b"tail", 500_000).expect("pwrite");
    assert_eq!(fs::metadata(&grown).expect("stat").len(), 1 << 20);
    let now = read(&grown);
    assert_eq!(&now[..10_000], &original[..]);
    assert!(now[10_000..500_000].iter().all(|&b| b == 0));
    assert_eq!(&now[500_000..500_004], b"tail");

    // Shrunk, then grown again: the cut-off bytes must read as zeros.
    let g = rw(&shrunk);
    g.set_len(100).expect("shrink");
    g.set_len(5000).expect("grow");
    let now = read(&shrunk);
    assert_eq!(&now[..100], &original[..100]);
    assert!(now[100..].iter().all(|&b| b == 0));

    lazy.cut("");
    assert_eq!(fs::metadata(&grown).expect("stat").len(), 10_000);
    assert_eq!(read(&grown), original);
    assert_eq!(read(&shrunk), original);

    // And once fsynced, a shrink sticks.
    g.set_len(100).expect("shrink");
    g.sync_all().expect("fsync");
    lazy.cut("");
    assert_eq!(read(&shrunk), &original[..100]);
}

#[test]
fn files_created_without_fsync_are_empty_after_a_cut() {
    let Some(lazy) = Lazy::mount("files_created_without_fsync_are_empty_after_a_cut") else {
        return;
    };
    fs::create_dir_all(lazy.path("d/e")).expect("mkdir");
    fs::write(lazy.path("d/e/new"), b"never synced").expect("write");
    assert_eq!(read(&lazy.path("d/e/new")), b"never synced");

    // The classic: write a temporary file, rename it over, no fsync.
    fs::write(lazy.path("d/current"), b"old").expect("write");
    File::open(lazy.path("d/current"))
        .expect("open")
        .sync_all()
        .expect("fsync");
    fs::write(lazy.path("d/current.tmp"), b"new").expect("write");
    fs::rename(lazy.path("d/current.tmp"), lazy.path("d/current")).expect("rename");
    assert_eq!(read(&lazy.path("d/current")), b"new");

    // The same with an fsync before the rename survives.
    let mut f = File::create(lazy.path("d/safe.tmp")).expect("create");
    f.write_all(b"safe").expect("write");
    f.sync_all().expect("fsync");
    drop(f);
    fs::rename(lazy.path("d/safe.tmp"), lazy.path("d/safe")).expect("rename");

    lazy.cut("");
    // Names survive (metadata is durable at once); unsynced contents do not.
    assert!(lazy.path("d/e").is_dir());
    assert_eq!(read(&lazy.path("d/e/new")), b"");
    assert_eq!(read(&lazy.path("d/current")), b"", "renamed before fsync");
    assert!(!lazy.path("d/current.tmp").exists());
    assert_eq!(read(&lazy.path("d/safe")), b"safe");
}

#[test]
fn a_cut_of_one_subdirectory_leaves_the_others_alone() {
    let Some(lazy) = Lazy::mount("a_cut_of_one_subdirectory_leaves_the_others_alone") else {
        return;
    };
    for node in ["node1", "node2", "node10"] {
        fs::create_dir(lazy.path(node)).expect("mkdir");
        let mut f = File::create(lazy.path(&format!("{node}/db"))).expect("create");
        f.write_all(b"durable ").expect("write");
        f.sync_all().expect("fsync");
        f.write_all(node.as_bytes()).expect("write");
    }
    assert_eq!(lazy.stats("node1").files, 1);
    assert_eq!(lazy.stats("").files, 3);

    // `node1` is a whole path component: node10 is not under it.
    let lost = lazy.cut("/node1");
    assert_eq!(lost.files, 1);
    assert_eq!(read(&lazy.path("node1/db")), b"durable ");
    assert_eq!(read(&lazy.path("node2/db")), b"durable node2");
    assert_eq!(read(&lazy.path("node10/db")), b"durable node10");

    // A file follows its directory's rename for later subtree cuts.
    fs::rename(lazy.path("node2"), lazy.path("node1/moved")).expect("rename");
    lazy.cut("node1");
    assert_eq!(read(&lazy.path("node1/moved/db")), b"durable ");
    assert_eq!(read(&lazy.path("node10/db")), b"durable node10");

    lazy.cut("");
    assert_eq!(read(&lazy.path("node10/db")), b"durable ");
}

#[test]
fn sync_command_and_clean_unmount_write_unsynced_data_out() {
    let Some(mut lazy) = Lazy::mount("sync_command_and_clean_unmount_write_unsynced_data_out")
    else {
        return;
    };
    fs::create_dir(lazy.path("a")).expect("mkdir");
    fs::write(lazy.path("a/x"), b"by sync command").expect("write");
    fs::write(lazy.path("y"), b"untouched by a subtree sync").expect("write");
    let synced = lazy.ctl(support::Ctl::Sync("a".into()));
    assert_eq!(synced.files, 1);
    assert_eq!(read(&lazy.backing_path("a/x")), b"by sync command");
    assert_eq!(read(&lazy.backing_path("y")), b"");
    lazy.cut("");
    assert_eq!(read(&lazy.path("a/x")), b"by sync command");

    fs::write(lazy.path("z"), b"by unmount").expect("write");
    let status = lazy.terminate();
    assert!(status.success(), "raftq-lazyfs exited with {status}");
    assert!(!support::is_mounted(&lazy.mnt));
    assert_eq!(read(&lazy.backing_path("z")), b"by unmount");
    assert!(!lazy.control.exists(), "control socket removed at exit");
}

#[test]
fn handles_open_across_a_cut_and_unlinked_files_do_not_break_it() {
    let Some(lazy) = Lazy::mount("handles_open_across_a_cut_and_unlinked_files_do_not_break_it")
    else {
        return;
    };
    let kept = rw(&lazy.path("kept"));
    kept.write_all_at(b"0123456789", 0).expect("write");
    kept.sync_all().expect("fsync");
    kept.write_all_at(b"abc", 20).expect("write");

    let gone = rw(&lazy.path("gone"));
    gone.write_all_at(b"unlinked but open", 0).expect("write");
    fs::remove_file(lazy.path("gone")).expect("unlink");
    let mut buf = [0; 17];
    gone.read_exact_at(&mut buf, 0).expect("read unlinked");
    assert_eq!(&buf, b"unlinked but open");
    assert_eq!(gone.metadata().expect("fstat").len(), 17);

    lazy.cut("");
    assert_eq!(kept.metadata().expect("fstat").len(), 10);
    // Writing on through a handle that lived across the cut works.
    kept.write_all_at(b"X", 0).expect("write after cut");
    kept.sync_all().expect("fsync after cut");
    assert_eq!(read(&lazy.path("kept")), b"X123456789");
    assert_eq!(gone.metadata().expect("fstat").len(), 0);
    drop(gone);
    assert_eq!(lazy.stats("").files, 0);
    assert_eq!(
        fs::read_dir(&lazy.mnt).expect("read_dir").count(),
        1,
        "only `kept` is left"
    );
}

#[test]
fn open_with_truncate_is_a_data_change_too() {
    let Some(lazy) = Lazy::mount("open_with_truncate_is_a_data_change_too") else {
        return;
    };
    let path = lazy.path("f");
    fs::write(&path, b"first").expect("write");
    File::open(&path).expect("open").sync_all().expect("fsync");
    let mut f = File::create(&path).expect("create (O_TRUNC)");
    assert_eq!(read(&path), b"");
    f.write_all(b"2nd").expect("write");
    let mut appender = OpenOptions::new().append(true).open(&path).expect("append");
    appender.write_all(b"+appended").expect("append");
    assert_eq!(read(&path), b"2nd+appended");
    lazy.cut("");
    assert_eq!(read(&path), b"first");

    // O_DSYNC makes every write durable by itself.
    let mut dsync = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DSYNC)
        .open(&path)
        .expect("open O_DSYNC");
    dsync.write_all(b"FIRST").expect("write");
    lazy.cut("");
    assert_eq!(read(&path), b"FIRST");
}

#[test]
fn std_fs_calls_and_statfs_work() {
    let Some(lazy) = Lazy::mount("std_fs_calls_and_statfs_work") else {
        return;
    };
    fs::create_dir_all(lazy.path("a/b/c")).expect("create_dir_all");
    fs::write(lazy.path("a/b/c/f"), b"x").expect("write");
    fs::write(lazy.path("a/g"), b"y").expect("write");
    std::os::unix::fs::symlink("b/c/f", lazy.path("a/link")).expect("symlink");
    assert_eq!(read(&lazy.path("a/link")), b"x");
    let mut names: Vec<String> = fs::read_dir(lazy.path("a"))
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["b", "g", "link"]);
    let meta = fs::metadata(lazy.path("a/b/c/f")).expect("metadata");
    assert!(meta.is_file());
    assert_eq!(meta.len(), 1);
    let mut perms = meta.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    fs::set_permissions(lazy.path("a/b/c/f"), perms).expect("chmod");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(lazy.path("a/b/c/f"))
                .expect("stat")
                .permissions()
        ) & 0o777,
        0o600
    );
    fs::rename(lazy.path("a/b"), lazy.path("b2")).expect("rename dir");
    assert_eq!(read(&lazy.path("b2/c/f")), b"x");
    fs::remove_file(lazy.path("a/g")).expect("remove_file");
    fs::remove_dir_all(lazy.path("b2")).expect("remove_dir_all");
    fs::remove_dir_all(lazy.path("a")).expect("remove_dir_all");
    assert_eq!(fs::read_dir(&lazy.mnt).expect("read_dir").count(), 0);
    assert_eq!(fs::read_dir(&lazy.backing).expect("read_dir").count(), 0);

    let mount = statvfs(&lazy.mnt);
    let backing = statvfs(&lazy.backing);
    assert!(mount.f_blocks > 0 && mount.f_bsize > 0);
    assert_eq!(mount.f_blocks, backing.f_blocks);
}

/// sync_file_range(2) never reaches a FUSE file system, and on a real disk
/// it neither flushes the disk's cache nor writes metadata: it is not a
/// durability point here either. sled 0.34 on Linux syncs its log with it on
/// `Db::flush`; see the crate docs.
#[test]
fn sync_file_range_is_not_a_sync() {
    let Some(lazy) = Lazy::mount("sync_file_range_is_not_a_sync") else {
        return;
    };
    let f = rw(&lazy.path("f"));
    f.write_all_at(b"written", 0).expect("write");
    // SAFETY: a valid open descriptor; the range is plain integers.
    let rc = unsafe {
        libc::sync_file_range(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
            7,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    assert_eq!(lazy.stats("").files, 1, "still unsynced");
    lazy.cut("");
    assert_eq!(read(&lazy.path("f")), b"");
}

/// Random writes, truncations, syncs, reopens and cuts, checked against a
/// model of what readers see and what is durable.
#[test]
fn random_operations_match_a_model() {
    let Some(lazy) = Lazy::mount("random_operations_match_a_model") else {
        return;
    };
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let paths = [lazy.path("one"), lazy.path("two")];
    let mut current: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut durable: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut files: Vec<File> = paths.iter().map(|p| rw(p)).collect();
    for step in 0..1500u64 {
        let i = next(2) as usize;
        match next(20) {
            0..=9 => {
                let offset = next(70_000);
                let len = if next(5) == 0 {
                    next(40_000)
                } else {
                    next(600)
                };
                let data: Vec<u8> = (0..len).map(|j| (j ^ step) as u8 | 1).collect();
                files[i].write_all_at(&data, offset).expect("pwrite");
                let end = (offset + len) as usize;
                if current[i].len() < end {
                    current[i].resize(end, 0);
                }
                current[i][offset as usize..end].copy_from_slice(&data);
            }
            10..=11 => {
                let size = next(80_000);
                files[i].set_len(size).expect("set_len");
                current[i].resize(size as usize, 0);
            }
            12 => {
                files[i].sync_data().expect("fdatasync");
                durable[i] = current[i].clone();
            }
            13 => {
                lazy.cut("");
                current = durable.clone();
            }
            14 => files[i] = rw(&paths[i]),
            _ => {
                let offset = next(80_000);
                let len = next(20_000) as usize;
                let mut buf = vec![0; len];
                let n = read_at_most(&files[i], &mut buf, offset);
                let lo = (offset as usize).min(current[i].len());
                let hi = (offset as usize + len).min(current[i].len());
                assert_eq!(&buf[..n], &current[i][lo..hi], "step {step}");
            }
        }
        assert_eq!(
            files[i].metadata().expect("fstat").len(),
            current[i].len() as u64,
            "step {step}"
        );
    }
    for i in 0..2 {
        assert_eq!(read(&paths[i]), current[i]);
    }
    lazy.cut("");
    for i in 0..2 {
        assert_eq!(read(&paths[i]), durable[i]);
        assert_eq!(
            read(&lazy.backing.join(paths[i].file_name().expect("name"))),
            durable[i]
        );
    }
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) => panic!("pread: {e}"),
        }
    }
    done
}

fn statvfs(path: &Path) -> libc::statvfs {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: all-zero is a valid statvfs for the call to fill in.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `s` is writable.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    assert_eq!(
        rc,
        0,
        "statvfs {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    s
}

/// Several writers fsync in their own directories on the multithreaded
/// mount while other directories are cut again and again: cuts stay in
/// their subtree and nothing deadlocks.
#[test]
fn concurrent_writers_keep_what_they_fsynced_through_cuts_elsewhere() {
    let Some(lazy) =
        Lazy::mount("concurrent_writers_keep_what_they_fsynced_through_cuts_elsewhere")
    else {
        return;
    };
    const RECORD: usize = 1000;
    const RECORDS: usize = 300;
    fs::create_dir(lazy.path("victim")).expect("mkdir");
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let dir = lazy.path(&format!("w{t}"));
            fs::create_dir(&dir).expect("mkdir");
            std::thread::spawn(move || {
                let mut f = File::create(dir.join("log")).expect("create");
                let mut synced = 0;
                for i in 0..RECORDS {
                    f.write_all(&[(t * 50 + i % 50) as u8; RECORD])
                        .expect("write");
                    if i % 5 == 4 {
                        f.sync_data().expect("fdatasync");
                        synced = i + 1;
                    }
                }
                synced
            })
        })
        .collect();
    let mut cuts = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        fs::write(lazy.path("victim/f"), b"doomed").expect("write victim");
        lazy.cut("victim");
        assert_eq!(read(&lazy.path("victim/f")), b"");
        cuts += 1;
    }
    let synced: Vec<usize> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    assert!(cuts > 0);
    lazy.cut("");
    for (t, synced) in synced.into_iter().enumerate() {
        let log = read(&lazy.path(&format!("w{t}/log")));
        assert_eq!(log.len(), synced * RECORD, "writer {t}");
        for (i, record) in log.chunks(RECORD).enumerate() {
            assert!(record.iter().all(|&b| b == (t * 50 + i % 50) as u8));
        }
    }
}
