//! raftq's own storage on the mount: what it acknowledged (a log append's
//! callback fired, a vote saved) survives a SIGKILL and a power cut, small
//! entries and one large enough for sled to keep as a blob file alike. This
//! is design.md's "confirmed means durable" at the level of one disk: sled's
//! flush alone does not give it (see sled_power_cut.rs).
//!
//! The store runs in a child process (this test binary, re-run with
//! `STORE_CHILD_ENV` set) so that it dies by SIGKILL with its files open.

mod support;

use std::io::{BufRead, BufReader, Cursor};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, RaftLogReader, Vote};
use raftq_store::NodeStore;
use support::Lazy;

const STORE_CHILD_ENV: &str = "RAFTQ_LAZYFS_STORE_CHILD";
const GROUP: u64 = 7;
const ENTRIES: u64 = 30;
/// Past a quarter of sled's segment: kept in a blob file of its own.
const LARGE_ENTRY: u64 = 21;

openraft::declare_raft_types!(
    pub Tc:
        D = String,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<Tc>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

fn entry(index: u64) -> Entry<Tc> {
    let size = if index == LARGE_ENTRY { 300_000 } else { 100 };
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(format!("{index:08}").repeat(size / 8)),
    }
}

/// Runs in the child; a no-op in a normal test run. Appends every entry
/// (each call returns once the store acknowledged it), saves a vote, says
/// READY and waits to be killed.
#[tokio::test]
async fn store_child() {
    let Ok(path) = std::env::var(STORE_CHILD_ENV) else {
        return;
    };
    let node = NodeStore::open(&path).expect("open the store");
    let mut log = node.log_store::<Tc>(GROUP).expect("log");
    for index in 1..=ENTRIES {
        log.blocking_append(vec![entry(index)])
            .await
            .expect("acknowledged");
    }
    log.save_vote(&Vote::new(5, 1)).await.expect("vote saved");
    println!("READY");
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

#[tokio::test]
async fn what_the_store_acknowledged_survives_a_power_cut() {
    let Some(lazy) = Lazy::mount("what_the_store_acknowledged_survives_a_power_cut") else {
        return;
    };
    let path = lazy.path("node1");
    run_child_until_ready(&path);
    let lost = lazy.cut("");
    eprintln!("power cut: {} unsynced bytes lost", lost.bytes);

    let node = NodeStore::open(&path).expect("the store opens after the cut");
    node.inspect_group(GROUP)
        .expect("no damage: what the ledger saw acknowledged is there");
    let mut log = node.log_store::<Tc>(GROUP).expect("log");
    let read = log
        .try_get_log_entries(1..=ENTRIES)
        .await
        .expect("every acknowledged entry reads back");
    assert_eq!(read, (1..=ENTRIES).map(entry).collect::<Vec<_>>());
    assert_eq!(
        log.read_vote().await.expect("vote"),
        Some(Vote::new(5, 1)),
        "the saved vote survives"
    );
}

/// Starts the child on `path`, waits for READY, then SIGKILLs it.
fn run_child_until_ready(path: &Path) {
    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .args(["store_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(STORE_CHILD_ENV, path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("store child");
    // libtest's own lines come first; READY ends one of them.
    let ready = BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .map_while(Result::ok)
        .any(|line| line.trim_end().ends_with("READY"));
    if !ready {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the store child exited before it was ready");
    }
    child.kill().expect("SIGKILL the store");
    child.wait().expect("wait");
}
