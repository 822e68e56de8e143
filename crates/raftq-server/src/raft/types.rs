//! The one openraft type configuration shared by every group on a node: the
//! metadata group (0) and each queue's group carry a [`GroupCommand`].

use serde::{Deserialize, Serialize};

use crate::meta::catalog::{CatalogCommand, CatalogOutcome};

openraft::declare_raft_types!(
    pub TypeConfig:
        D = GroupCommand,
        R = GroupResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        // A file, so a snapshot of a large backlog is written, read and sent in
        // chunks instead of being held in memory whole.
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub use crate::ids::{GroupId, NodeId, METADATA_GROUP};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GroupCommand {
    Catalog(CatalogCommand),
    Queue(raftq_queue::Command),
}

impl GroupCommand {
    /// Message bytes a command carries: what makes an entry large, known
    /// without encoding it.
    pub fn payload_bytes(&self) -> usize {
        match self {
            GroupCommand::Queue(raftq_queue::Command::Publish { messages, .. }) => messages
                .iter()
                .map(|m| {
                    let headers: usize = m.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
                    m.payload.len() + headers
                })
                .sum(),
            _ => 0,
        }
    }
}

/// Message bytes an entry carries: what makes it large, known without
/// encoding it.
pub fn entry_bytes(entry: &openraft::Entry<TypeConfig>) -> usize {
    match &entry.payload {
        openraft::EntryPayload::Normal(cmd) => cmd.payload_bytes(),
        _ => 0,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GroupResponse {
    Catalog(CatalogOutcome),
    Queue(raftq_queue::Outcome),
    /// Blank and membership entries, or a command sent to the wrong kind of group.
    None,
}
