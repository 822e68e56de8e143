//! Snapshot files: what was committed is what a reopened node finds, and
//! nothing else is left on disk.

mod common;

use common::reopen;
use raftq_store::{read_value, NodeStore};

fn snapshot_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
        .expect("snapshot dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn the_last_committed_snapshot_survives_reopen_and_replaces_the_one_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let node = NodeStore::open(dir.path()).expect("open");
        let store = node.snapshot_store(7).expect("store");
        for round in 0..3u64 {
            let pending = store.write_value(&vec![round; 1000]).expect("write");
            store
                .commit(pending, format!("meta{round}").into_bytes())
                .await
                .expect("commit");
        }
        assert_eq!(
            snapshot_files(dir.path()).len(),
            1,
            "older snapshots removed"
        );
    }
    let node = reopen(dir.path()).await;
    let store = node.snapshot_store(7).expect("store");
    let stored = store.load().expect("load").expect("a snapshot");
    assert_eq!(stored.meta, b"meta2");
    let value: Vec<u64> = read_value(&stored.path).expect("decode");
    assert_eq!(value, vec![2; 1000]);
}

#[tokio::test]
async fn uncommitted_files_are_removed_on_reopen_and_never_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let node = NodeStore::open(dir.path()).expect("open");
        let store = node.snapshot_store(3).expect("store");
        let committed = store.write_value(&"kept").expect("write");
        store
            .commit(committed, b"m".to_vec())
            .await
            .expect("commit");
        // A crash while writing (or receiving) the next one leaves a partial file.
        let _partial = store.write_value(&"half written").expect("write");
        assert_eq!(snapshot_files(dir.path()).len(), 2);
    }
    let node = reopen(dir.path()).await;
    let store = node.snapshot_store(3).expect("store");
    assert_eq!(snapshot_files(dir.path()).len(), 1, "partial file removed");
    let stored = store.load().expect("load").expect("a snapshot");
    assert_eq!(read_value::<String>(&stored.path).expect("decode"), "kept");
}

#[tokio::test]
async fn a_removed_group_leaves_no_snapshot_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeStore::open(dir.path()).expect("open");
    let store = node.snapshot_store(12).expect("store");
    let pending = store.write_value(&1u8).expect("write");
    store.commit(pending, Vec::new()).await.expect("commit");
    // Group 1's files must not be mistaken for group 12's (or the reverse).
    let other = node.snapshot_store(1).expect("store");
    let pending = other.write_value(&2u8).expect("write");
    other.commit(pending, Vec::new()).await.expect("commit");
    node.remove_group(12).expect("remove");
    assert!(node
        .snapshot_store(12)
        .expect("store")
        .load()
        .expect("load")
        .is_none());
    assert_eq!(snapshot_files(dir.path()).len(), 1);
    assert!(other.load().expect("load").is_some());
}

#[tokio::test]
async fn a_damaged_snapshot_file_is_an_error_never_a_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeStore::open(dir.path()).expect("open");
    let store = node.snapshot_store(5).expect("store");
    let value: Vec<u64> = (0..5000).collect();
    let pending = store.write_value(&value).expect("write");
    store
        .commit(pending, b"meta".to_vec())
        .await
        .expect("commit");
    let path = store.load().expect("load").expect("a snapshot").path;
    let whole = std::fs::read(&path).expect("read");
    assert_eq!(read_value::<Vec<u64>>(&path).expect("intact"), value);
    // A flip anywhere, in the data or in the trailer, and a cut anywhere.
    for at in [
        0,
        whole.len() / 3,
        whole.len() / 2,
        whole.len() - 6,
        whole.len() - 1,
    ] {
        let mut flipped = whole.clone();
        flipped[at] ^= 0x04;
        std::fs::write(&path, &flipped).expect("write");
        let err = read_value::<Vec<u64>>(&path).expect_err("flip caught");
        assert!(err.is_damage(), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
    for keep in [1, whole.len() / 2, whole.len() - 4, whole.len() - 1] {
        std::fs::write(&path, &whole[..keep]).expect("write");
        let err = read_value::<Vec<u64>>(&path).expect_err("cut caught");
        assert!(err.is_damage(), "{err}");
    }
}
