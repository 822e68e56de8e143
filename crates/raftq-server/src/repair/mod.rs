//! Damaged replicas (design.md section 9): a group whose data on this node
//! fails its checks may have lost entries it acknowledged, so it must neither
//! vote nor acknowledge until rebuilt. Found at start (`NodeStore::
//! inspect_group`, a damaged snapshot) or while running (a read that fails
//! its checksum stops the group's Raft), it is kept out of Raft here, its
//! leader takes it out of the group's voters, and only then is its data
//! discarded and the replica caught up afresh as a learner, to become a voter
//! again through the usual replica moves.

pub mod book;
pub mod metadata;
pub mod rebuild;
pub mod release;
pub mod watch;
