//! sled 0.34 on the mount, killed and then hit by a power cut, as a raftq
//! node's data directory will be.
//!
//! sled runs in a child process (this test binary, re-run with
//! `SLED_CHILD_ENV` set) so that it can die by SIGKILL with its files open,
//! as a node does.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::Lazy;

const SLED_CHILD_ENV: &str = "RAFTQ_LAZYFS_SLED_CHILD";

fn open(path: &Path) -> sled::Db {
    sled::Config::new()
        .path(path)
        // As raftq-store opens it: durability only where the program asks.
        .flush_every_ms(None)
        .open()
        .expect("open sled")
}

fn insert(db: &sled::Db, prefix: &str) {
    for i in 0..200u32 {
        db.insert(format!("{prefix}{i:04}"), vec![i as u8; 100])
            .expect("insert");
    }
}

fn count(db: &sled::Db, prefix: &str) -> usize {
    db.scan_prefix(prefix).count()
}

/// Runs in the child; a no-op in a normal test run.
///
/// `seed`: writes `a` keys and closes sled cleanly (its drop fsyncs).
/// `crash`: writes `b` keys and calls `Db::flush`, then, with `+fsync`, also
/// fsyncs sled's file itself; then writes `c` keys without any flush, says
/// READY and waits to be killed.
#[test]
fn sled_child() {
    let Ok(spec) = std::env::var(SLED_CHILD_ENV) else {
        return;
    };
    let (phase, path) = spec.split_once(':').expect("PHASE:PATH");
    let path = Path::new(path);
    let db = open(path);
    match phase {
        "seed" => {
            insert(&db, "a");
            db.flush().expect("flush");
        }
        "crash" | "crash+fsync" => {
            insert(&db, "b");
            db.flush().expect("flush");
            if phase == "crash+fsync" {
                std::fs::File::open(path.join("db"))
                    .expect("open sled's file")
                    .sync_all()
                    .expect("fsync sled's file");
            }
            insert(&db, "c");
            println!("READY");
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        other => panic!("unknown phase {other}"),
    }
}

fn child(phase: &str, path: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args(["sled_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(SLED_CHILD_ENV, format!("{phase}:{}", path.display()))
        .stdout(Stdio::piped());
    cmd
}

/// Returns the a, b and c keys found after a SIGKILL of sled in `phase` and
/// a power cut of the whole mount, and the unsynced bytes sled's log file
/// had when it was killed.
fn kill_cut_reopen(lazy: &Lazy, phase: &str) -> (usize, usize, usize, u64) {
    let path = lazy.path(phase);
    let status = child("seed", &path)
        .stdout(Stdio::null())
        .status()
        .expect("seed");
    assert!(status.success(), "seed child: {status}");

    let mut crash = child(phase, &path).spawn().expect("crash child");
    // libtest's own lines come first; READY ends one of them.
    let ready = BufReader::new(crash.stdout.take().expect("stdout"))
        .lines()
        .map_while(Result::ok)
        .any(|line| line.trim_end().ends_with("READY"));
    assert!(ready, "the sled child exited before it was ready");
    // sled's log file alone (its `conf` is never fsynced by sled).
    let unsynced = lazy.stats(&format!("{phase}/db")).bytes;
    crash.kill().expect("SIGKILL sled");
    crash.wait().expect("wait");

    lazy.cut("");
    let db = open(&path);
    (count(&db, "a"), count(&db, "b"), count(&db, "c"), unsynced)
}

#[test]
fn sled_keeps_what_was_fsynced_and_loses_the_rest() {
    let Some(lazy) = Lazy::mount("sled_keeps_what_was_fsynced_and_loses_the_rest") else {
        return;
    };
    let (a, b, c, unsynced) = kill_cut_reopen(&lazy, "crash+fsync");
    assert_eq!((a, b, c), (200, 200, 0), "fsynced a and b, lost c");
    assert_eq!(unsynced, 0, "nothing of b was left unsynced");
}

/// sled 0.34's `Db::flush` ends with sync_file_range(2), not fsync, so what it
/// flushed is still in the (simulated) disk cache and a power cut loses it.
/// If this starts failing, sled's flush has become a real sync.
#[test]
fn sled_flush_alone_does_not_survive_a_power_cut() {
    let Some(lazy) = Lazy::mount("sled_flush_alone_does_not_survive_a_power_cut") else {
        return;
    };
    let (a, b, c, unsynced) = kill_cut_reopen(&lazy, "crash");
    assert!(unsynced > 0, "b was flushed by sled but not fsynced");
    assert_eq!(
        (a, b, c),
        (200, 0, 0),
        "only a, fsynced by a clean close, is left"
    );
}
