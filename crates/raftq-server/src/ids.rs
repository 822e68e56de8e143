//! Node and group identifiers, shared by every layer.

pub type NodeId = u64;
pub type GroupId = u64;

/// Group 0 holds the catalog: nodes and queue definitions.
pub const METADATA_GROUP: GroupId = 0;
