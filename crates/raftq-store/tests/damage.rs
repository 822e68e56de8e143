//! Damage to a node's data is found, never passed on: a log or vote that lost
//! what had been flushed, a flipped bit, a truncated file.

mod common;

use std::path::Path;
use std::time::Duration;

use common::Tc;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, RaftLogReader, Vote};
use raftq_store::{NodeStore, StoreError};

fn entry(index: u64, bytes: usize) -> Entry<Tc> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(format!("{index:08}").repeat(bytes / 8)),
    }
}

async fn append(
    node: &NodeStore,
    group: u64,
    indexes: std::ops::RangeInclusive<u64>,
    bytes: usize,
) {
    let mut log = node.log_store::<Tc>(group).expect("log");
    log.blocking_append(indexes.map(|i| entry(i, bytes)).collect::<Vec<_>>())
        .await
        .expect("append flushed");
}

/// Opens once the previous instance's threads have let go of the database;
/// damage is returned at once.
async fn open(path: &Path) -> Result<NodeStore, StoreError> {
    for _ in 0..100 {
        match NodeStore::open(path) {
            Err(e) if !e.is_damage() => tokio::time::sleep(Duration::from_millis(20)).await,
            other => return other,
        }
    }
    NodeStore::open(path)
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

#[tokio::test]
async fn a_log_that_lost_flushed_entries_is_damaged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = tempfile::tempdir().expect("tempdir");
    {
        let node = open(dir.path()).await.expect("open");
        append(&node, 7, 1..=5, 64).await;
        append(&node, 8, 1..=3, 64).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The database as it was, kept aside: what sled recovers to when it
    // drops a damaged tail.
    copy_dir(&dir.path().join("db"), &saved.path().join("db"));
    {
        let node = open(dir.path()).await.expect("reopen");
        append(&node, 7, 6..=10, 64).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::remove_dir_all(dir.path().join("db")).expect("rm");
    copy_dir(&saved.path().join("db"), &dir.path().join("db"));
    let node = open(dir.path()).await.expect("the database itself opens");
    let damage = node
        .inspect_group(7)
        .expect_err("group 7 lost entries 6..=10");
    assert_eq!(damage.group, 7);
    assert!(
        damage.what.contains("ends at index 5") && damage.what.contains("index 10"),
        "{damage}"
    );
    assert!(damage.file.ends_with("db"), "{damage}");
    node.inspect_group(8).expect("group 8 lost nothing");
    // Discarded to be rebuilt, the group starts clean in the same process.
    node.remove_group(7).expect("discard");
    node.inspect_group(7).expect("nothing left to find damaged");
    append(&node, 7, 1..=2, 64).await;
    node.inspect_group(7)
        .expect("a rebuilt log is checked afresh");
}

#[tokio::test]
async fn a_lost_vote_is_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = tempfile::tempdir().expect("tempdir");
    {
        let node = open(dir.path()).await.expect("open");
        let mut log = node.log_store::<Tc>(3).expect("log");
        log.save_vote(&Vote::new(4, 1)).await.expect("vote");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    copy_dir(&dir.path().join("db"), &saved.path().join("db"));
    {
        let node = open(dir.path()).await.expect("reopen");
        let mut log = node.log_store::<Tc>(3).expect("log");
        log.save_vote(&Vote::new(9, 2)).await.expect("vote");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::remove_dir_all(dir.path().join("db")).expect("rm");
    copy_dir(&saved.path().join("db"), &dir.path().join("db"));
    let node = open(dir.path()).await.expect("open");
    let damage = node.inspect_group(3).expect_err("the term 9 vote is gone");
    assert!(
        damage.what.contains("term 4") && damage.what.contains("term 9"),
        "{damage}"
    );
}

#[tokio::test]
async fn truncation_and_deletion_are_no_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let node = open(dir.path()).await.expect("open");
        append(&node, 1, 1..=10, 64).await;
        append(&node, 2, 1..=10, 64).await;
        let mut log = node.log_store::<Tc>(1).expect("log");
        log.truncate(log_id(1, 1, 6)).await.expect("truncate");
        node.remove_group(2).expect("remove");
        node.inspect_group(1)
            .expect("a truncated log is as it should be");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node = open(dir.path()).await.expect("reopen");
    node.inspect_group(1).expect("still, after a restart");
    node.inspect_group(2)
        .expect("a deleted group is no damaged group");
}

#[tokio::test]
async fn a_database_that_lost_everything_is_unusable() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let node = open(dir.path()).await.expect("open");
        append(&node, 5, 1..=4, 64).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::remove_dir_all(dir.path().join("db")).expect("rm");
    let err = open(dir.path()).await.err().expect("refused");
    assert!(matches!(err, StoreError::Unusable { .. }), "{err}");
    assert!(err.to_string().contains("lost everything"), "{err}");
}

#[tokio::test]
async fn a_database_marked_damaged_while_running_is_unusable_from_then_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let node = open(dir.path()).await.expect("open");
        append(&node, 5, 1..=4, 64).await;
        node.mark_damaged("corruption encountered at a page")
            .expect("mark");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..2 {
        let err = open(dir.path()).await.err().expect("refused");
        assert!(matches!(err, StoreError::Unusable { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("found damaged while the node ran: corruption encountered at a page"),
            "{err}"
        );
    }
}

/// What reading every group back gives after the damage: either the damage
/// is reported (the database refuses to open, a group fails its check, or a
/// read fails), or every entry the ledger saw flushed is there, intact.
/// The one outcome that must never happen: a group that passes its check
/// and reads back fewer entries, silently.
async fn assert_never_silent(path: &Path, groups: u64, entries: u64, bytes: usize) -> &'static str {
    let node = match open(path).await {
        Err(e) if e.is_damage() => return "refused",
        Err(e) => panic!("not a damage report: {e}"),
        Ok(node) => node,
    };
    let mut outcome = "intact";
    for group in 1..=groups {
        if node.inspect_group(group).is_err() {
            outcome = "group damaged";
            continue;
        }
        let mut log = node.log_store::<Tc>(group).expect("log");
        match log.try_get_log_entries(1..=entries).await {
            Err(_) => outcome = "read failed",
            Ok(read) => {
                let intact: Vec<u64> = read.iter().map(|e| e.log_id.index).collect();
                assert_eq!(
                    intact,
                    (1..=entries).collect::<Vec<_>>(),
                    "group {group} passed its check but lost entries silently"
                );
                for e in &read {
                    assert_eq!(
                        e,
                        &entry(e.log_id.index, bytes),
                        "group {group}: entry changed"
                    );
                }
            }
        }
    }
    outcome
}

async fn build_damageable(path: &Path, groups: u64, entries: u64, bytes: usize) {
    {
        let node = open(path).await.expect("open");
        for batch in 0..entries / 10 {
            for group in 1..=groups {
                append(&node, group, batch * 10 + 1..=batch * 10 + 10, bytes).await;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Damages a copy of a node's database at `trials` points spread over
/// sled's file, one copy each, and checks every outcome.
async fn damage_across_the_file(trials: u64, damage: fn(&Path, u64, f64)) -> Vec<&'static str> {
    let (groups, entries, bytes) = (3, 120, 1200);
    let base = tempfile::tempdir().expect("tempdir");
    build_damageable(base.path(), groups, entries, bytes).await;
    let db_len = std::fs::metadata(base.path().join("db/db"))
        .expect("db file")
        .len();
    let mut outcomes = Vec::new();
    for trial in 0..trials {
        let dir = tempfile::tempdir().expect("tempdir");
        let copy = dir.path().join("node");
        copy_dir(base.path(), &copy);
        let at = (trial as f64 + 0.5) / trials as f64;
        damage(&copy.join("db/db"), db_len, at);
        outcomes.push(assert_never_silent(&copy, groups, entries, bytes).await);
    }
    outcomes
}

#[tokio::test]
async fn flipped_bits_in_the_database_never_pass_silently() {
    let outcomes = damage_across_the_file(10, |file, len, at| {
        let mut content = std::fs::read(file).expect("read");
        let at = (len as f64 * at) as usize;
        for i in 0..3 {
            if let Some(b) = content.get_mut(at + i * 101) {
                *b ^= 0x10;
            }
        }
        std::fs::write(file, content).expect("write");
    })
    .await;
    eprintln!("outcomes of flips across the file: {outcomes:?}");
}

#[tokio::test]
async fn a_truncated_database_never_passes_silently() {
    let outcomes = damage_across_the_file(8, |file, len, keep| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(file)
            .expect("open db file")
            .set_len((len as f64 * keep) as u64)
            .expect("truncate");
    })
    .await;
    eprintln!("outcomes of truncations: {outcomes:?}");
}

#[tokio::test]
async fn a_removal_a_stop_interrupted_is_finished_at_the_next_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let node = open(dir.path()).await.expect("open");
        append(&node, 7, 1..=5, 64).await;
        append(&node, 8, 1..=3, 64).await;
        let mut log = node.log_store::<Tc>(7).expect("log");
        log.save_committed(Some(log_id(1, 1, 5)))
            .await
            .expect("commit point");
        node.begin_removal(7).expect("the removal recorded");
        // The node stops here: half a removal could leave a commit point
        // whose log is gone, which no replica ever was.
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node = open(dir.path()).await.expect("reopen");
    assert_eq!(node.groups_on_disk(), vec![8], "group 7 removed at open");
    let mut log = node.log_store::<Tc>(7).expect("log");
    assert_eq!(log.get_log_state().await.expect("state").last_log_id, None);
    assert_eq!(log.read_committed().await.expect("committed"), None);
    node.inspect_group(8).expect("group 8 untouched");
    let mut log = node.log_store::<Tc>(8).expect("log");
    assert_eq!(
        log.get_log_state().await.expect("state").last_log_id,
        Some(log_id(1, 1, 3))
    );
}
