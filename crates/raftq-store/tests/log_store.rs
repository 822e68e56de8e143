//! The log store keeps what it acknowledged, across a reopen of the database.

mod common;

use common::{reopen, Tc};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, RaftLogReader, Vote};
use raftq_store::NodeStore;

fn entry(term: u64, index: u64) -> Entry<Tc> {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(format!("e{index}")),
    }
}

/// The indexes of the entries a read of `range` returns.
async fn indexes(
    log: &mut raftq_store::LogStore<Tc>,
    range: impl std::ops::RangeBounds<u64> + Clone + std::fmt::Debug + Send + Sync,
) -> Vec<u64> {
    log.try_get_log_entries(range)
        .await
        .expect("read")
        .iter()
        .map(|e| e.log_id.index)
        .collect()
}

async fn append(store: &mut raftq_store::LogStore<Tc>, entries: Vec<Entry<Tc>>) {
    // Returns only once openraft's flushed-callback fired, i.e. after our flush.
    store
        .blocking_append(entries)
        .await
        .expect("append flushed");
}

#[tokio::test]
async fn appended_entries_and_vote_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let node = NodeStore::open(dir.path()).expect("open");
        let mut log = node.log_store::<Tc>(7).expect("log");
        append(&mut log, (1..=5).map(|i| entry(1, i)).collect()).await;
        log.save_vote(&Vote::new(3, 2)).await.expect("vote");
        // A different group in the same Db must not see group 7's entries.
        let mut other = node.log_store::<Tc>(8).expect("log");
        assert!(other
            .try_get_log_entries(0..100)
            .await
            .expect("read")
            .is_empty());
    }
    let node = reopen(dir.path()).await;
    let mut log = node.log_store::<Tc>(7).expect("log");
    let entries = log.try_get_log_entries(1..=5).await.expect("read");
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[4].log_id, log_id(1, 1, 5));
    assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(3, 2)));
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 5)));
    assert_eq!(node.groups_on_disk(), vec![7, 8]);
}

#[tokio::test]
async fn truncate_and_purge_keep_the_log_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeStore::open(dir.path()).expect("open");
    let mut log = node.log_store::<Tc>(1).expect("log");
    append(&mut log, (1..=10).map(|i| entry(1, i)).collect()).await;
    log.truncate(log_id(1, 1, 8)).await.expect("truncate");
    assert_eq!(
        log.get_log_state().await.expect("state").last_log_id,
        Some(log_id(1, 1, 7))
    );
    log.purge(log_id(1, 1, 3)).await.expect("purge");
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 3)));
    let left = indexes(&mut log, 0..100).await;
    assert_eq!(left, vec![4, 5, 6, 7]);
    // Purging everything still reports the purge point as the last log id.
    log.purge(log_id(1, 1, 7)).await.expect("purge all");
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 7)));
}

#[tokio::test]
async fn concurrent_appends_of_many_groups_share_flushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeStore::open(dir.path()).expect("open");
    let mut tasks = Vec::new();
    for group in 0..50u64 {
        let mut log = node.log_store::<Tc>(group).expect("log");
        tasks.push(tokio::spawn(async move {
            for i in 1..=20 {
                append(&mut log, vec![entry(1, i)]).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let stats = node.committer().stats();
    let flushes = stats.flushes.load(std::sync::atomic::Ordering::Relaxed);
    let writes = stats
        .flushed_writes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(writes, 50 * 20);
    // Not a timing assertion: with 50 concurrent writers, group commit must merge
    // at least some completions into shared flushes.
    assert!(flushes < writes, "flushes {flushes} vs writes {writes}");
}

/// Waits (boundedly) for the log cleaner to leave `n` entries on disk.
async fn wait_for_entries_on_disk(log: &raftq_store::LogStore<Tc>, n: usize) {
    for _ in 0..1000 {
        if log.entries_on_disk() == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(log.entries_on_disk(), n, "purged entries were not deleted");
}

#[tokio::test]
async fn entries_at_or_below_the_purge_point_are_never_read_back_even_before_they_are_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let node = NodeStore::open(dir.path()).expect("open");
        let mut log = node.log_store::<Tc>(1).expect("log");
        append(&mut log, (1..=6).map(|i| entry(1, i)).collect()).await;
        log.purge(log_id(1, 1, 4)).await.expect("purge");
        wait_for_entries_on_disk(&log, 2).await;
        // Stand-ins for entries the cleaner has not deleted yet.
        append(&mut log, (1..=4).map(|i| entry(1, i)).collect()).await;
        let read = indexes(&mut log, 0..100).await;
        assert_eq!(read, vec![5, 6]);
    }
    // The purge point is durable, so a restarted node hides them too.
    let node = reopen(dir.path()).await;
    let mut log = node.log_store::<Tc>(1).expect("log");
    let read = indexes(&mut log, ..=5).await;
    assert_eq!(read, vec![5]);
    // And its cleaner deletes them without waiting for another purge.
    wait_for_entries_on_disk(&log, 2).await;
    // With everything purged, leftovers do not count as the last entry.
    log.purge(log_id(1, 1, 6)).await.expect("purge all");
    append(&mut log, vec![entry(1, 3)]).await;
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 6)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 6)));
}

fn big_entry(term: u64, index: u64, bytes: usize) -> Entry<Tc> {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal("x".repeat(bytes)),
    }
}

#[tokio::test]
async fn one_replication_read_carries_a_bounded_number_of_bytes_but_at_least_one_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeStore::open(dir.path()).expect("open");
    let mut log = node.log_store::<Tc>(3).expect("log");
    let mib = 1 << 20;
    append(
        &mut log,
        (1..=6).map(|i| big_entry(1, i, 3 * mib)).collect(),
    )
    .await;
    let mut reader = log.get_log_reader().await;
    let first = reader.limited_get_log_entries(1, 7).await.expect("read");
    // 3 MiB, then 6 MiB: past the 4 MiB budget after the second entry.
    assert_eq!(first.len(), 2);
    let huge = big_entry(1, 7, 3 * raftq_store::REPLICATION_BATCH_BYTES);
    append(&mut log, vec![huge]).await;
    let alone = reader.limited_get_log_entries(7, 8).await.expect("read");
    assert_eq!(alone.len(), 1, "an entry over the budget still goes, alone");
    let all = reader.try_get_log_entries(1..8).await.expect("read");
    assert_eq!(all.len(), 7, "plain reads are not bounded");
}

#[tokio::test]
async fn a_truncated_suffix_never_comes_back_and_its_replacement_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeStore::open(dir.path()).expect("open");
    let mut log = node.log_store::<Tc>(4).expect("log");
    append(&mut log, (1..=10).map(|i| entry(1, i)).collect()).await;
    log.truncate(log_id(1, 1, 6)).await.expect("truncate");
    assert_eq!(indexes(&mut log, 0..100).await, vec![1, 2, 3, 4, 5]);
    append(&mut log, (6..=8).map(|i| entry(2, i)).collect()).await;
    let entries = log.try_get_log_entries(0..100).await.expect("read");
    assert_eq!(entries.len(), 8);
    assert_eq!(entries[5].log_id, log_id(2, 1, 6));
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id, Some(log_id(2, 1, 8)));
    drop(log);
    drop(node);
    let node = reopen(dir.path()).await;
    let mut log = node.log_store::<Tc>(4).expect("log");
    let entries = log.try_get_log_entries(0..100).await.expect("read");
    assert_eq!(entries.len(), 8);
    assert_eq!(entries[7].log_id, log_id(2, 1, 8));
}
