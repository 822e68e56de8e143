//! Whether a node may take part in the cluster under its id, decided before it
//! answers any Raft message. A node with a blank data dir asks its peers what
//! the cluster knows of its id: if a data dir of another incarnation was
//! registered under it, this node is that node after a disk loss. It has
//! forgotten its votes and what it acknowledged, and letting it vote could
//! elect two leaders in one term or lose a committed entry, so it is refused.

use serde::{Deserialize, Serialize};

use crate::ids::NodeId;
use crate::meta::catalog::Catalog;

/// What a peer knows of a node id, from its applied catalog, and who the
/// peer itself is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifyReply {
    pub cluster_id: Option<String>,
    pub incarnation: Option<u64>,
    pub removed: bool,
    /// The answering node's id and data dir incarnation.
    pub answered_by: NodeId,
    pub answerer_incarnation: u64,
}

impl IdentifyReply {
    pub fn from_catalog(catalog: &Catalog, node: NodeId) -> Self {
        Self {
            cluster_id: catalog.cluster_id().map(str::to_string),
            incarnation: catalog.incarnation(node),
            removed: catalog.is_removed(node),
            answered_by: 0,
            answerer_incarnation: 0,
        }
    }
}

/// A joining node's request to become a member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub node: NodeId,
    pub addr: String,
    pub incarnation: u64,
}

/// This node's data dir, as it starts.
#[derive(Debug, Clone, Copy)]
pub struct Starting<'a> {
    pub node: NodeId,
    pub incarnation: u64,
    pub cluster_id: Option<&'a str>,
    /// The data dir was created just now.
    pub blank: bool,
}

/// Why this node must not start, from what its peers answered (peer address,
/// answer); `None` when nothing speaks against it.
pub fn refusal(me: Starting<'_>, answers: &[(String, IdentifyReply)]) -> Option<String> {
    let node = me.node;
    for (peer, answer) in answers {
        let cluster = answer.cluster_id.as_deref().unwrap_or("(unnamed)");
        if answer.removed {
            return Some(format!(
                "node {node} was removed from cluster {cluster} (as {peer} says) and node ids are \
                 never reused: start this node with an empty data dir, a new --id and --join {peer}"
            ));
        }
        if let (Some(mine), Some(theirs)) = (me.cluster_id, answer.cluster_id.as_deref()) {
            if mine != theirs {
                return Some(format!(
                    "this data dir belongs to cluster {mine}, but {peer} is in cluster {theirs}: \
                     start a node of cluster {theirs} with an empty data dir and --join {peer}"
                ));
            }
        }
        match answer.incarnation {
            Some(known) if known != me.incarnation => {
                let what = if me.blank {
                    "this data dir is empty".to_string()
                } else {
                    format!(
                        "this data dir (incarnation {}) is not that one",
                        me.incarnation
                    )
                };
                return Some(format!(
                    "cluster {cluster} (as {peer} says) already has a node {node} with another data \
                     dir (incarnation {known}), and {what}: a node that lost its data has forgotten \
                     its Raft votes and must not rejoin under its old id. Replace it: run \
                     `raftq cluster remove-node {node}`, then start this node with an empty data \
                     dir, a new --id and --join {peer}"
                ));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starting(incarnation: u64, blank: bool) -> Starting<'static> {
        Starting {
            node: 2,
            incarnation,
            cluster_id: None,
            blank,
        }
    }

    fn answer(incarnation: Option<u64>, removed: bool) -> Vec<(String, IdentifyReply)> {
        vec![(
            "n1:7001".into(),
            IdentifyReply {
                cluster_id: Some("c1".into()),
                incarnation,
                removed,
                ..Default::default()
            },
        )]
    }

    #[test]
    fn a_wiped_node_under_a_known_id_is_refused_and_told_how_to_replace_it() {
        let why = refusal(starting(9, true), &answer(Some(7), false)).expect("refused");
        assert!(why.contains("already has a node 2"), "{why}");
        assert!(why.contains("raftq cluster remove-node 2"), "{why}");
    }

    #[test]
    fn its_own_data_dir_a_new_id_or_no_answer_start() {
        assert_eq!(refusal(starting(7, false), &answer(Some(7), false)), None);
        assert_eq!(refusal(starting(9, true), &answer(None, false)), None);
        assert_eq!(refusal(starting(9, true), &[]), None);
    }

    #[test]
    fn a_removed_id_or_another_clusters_data_dir_is_refused() {
        assert!(refusal(starting(9, true), &answer(None, true)).is_some());
        let other = Starting {
            cluster_id: Some("c0"),
            ..starting(7, false)
        };
        let why = refusal(other, &answer(Some(7), false)).expect("refused");
        assert!(why.contains("belongs to cluster c0"), "{why}");
    }
}
