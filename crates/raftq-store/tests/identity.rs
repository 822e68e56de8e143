//! A data dir keeps its identity across a reopen; a new one has none.

mod common;

use common::reopen;
use raftq_store::{Identity, NodeStore};

#[tokio::test]
async fn an_identity_survives_reopening_and_a_new_dir_has_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = Identity {
        node_id: 3,
        incarnation: 77,
        cluster_id: Some("c1".into()),
    };
    {
        let store = NodeStore::open(dir.path()).expect("open");
        assert_eq!(store.identity().expect("read"), None);
        assert!(store.is_blank());
        store.record_identity(&id).expect("record");
    }
    let store = reopen(dir.path()).await;
    assert_eq!(store.identity().expect("read"), Some(id));
}
