//! Helpers shared by the storage tests.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::io::Cursor;

use raftq_store::NodeStore;

/// The node's threads release their handles on the Db shortly after the last
/// store is dropped; wait for the lock like a restarted process would.
pub async fn reopen(path: &std::path::Path) -> NodeStore {
    let mut reopened = NodeStore::open(path);
    for _ in 0..100 {
        if reopened.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        reopened = NodeStore::open(path);
    }
    reopened.expect("reopen")
}

// The type configuration of the log-store tests: string entries.
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
