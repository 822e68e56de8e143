//! Which replicas on this node, and on the peers as heard, are damaged.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, NodeId};

/// One damaged replica, as carried in node heartbeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamageNote {
    pub group: GroupId,
    /// False while it waits for its leader to let it go; true once its data
    /// is discarded and it catches up as a learner.
    pub rebuilding: bool,
    /// The log index of the group configuration that let it go: a voter
    /// again only through a later one.
    pub released_at: u64,
    pub why: String,
}

#[derive(Default)]
pub struct DamageBook {
    own: Mutex<BTreeMap<GroupId, DamageNote>>,
    peers: Mutex<HashMap<NodeId, Vec<DamageNote>>>,
}

impl DamageBook {
    /// Records damage to `group` here; true when it was not known yet.
    pub fn found(&self, group: GroupId, why: String) -> bool {
        let mut own = self.own.lock();
        if own.get(&group).is_some_and(|n| !n.rebuilding) {
            return false;
        }
        own.insert(
            group,
            DamageNote {
                group,
                rebuilding: false,
                released_at: 0,
                why,
            },
        );
        true
    }

    pub fn rebuilding(&self, group: GroupId, released_at: u64) {
        if let Some(note) = self.own.lock().get_mut(&group) {
            note.rebuilding = true;
            note.released_at = released_at;
        }
    }

    pub fn repaired(&self, group: GroupId) {
        self.own.lock().remove(&group);
    }

    /// Damaged and not yet discarded: must not run.
    pub fn is_damaged(&self, group: GroupId) -> bool {
        self.own.lock().get(&group).is_some_and(|n| !n.rebuilding)
    }

    pub fn own(&self) -> Vec<DamageNote> {
        self.own.lock().values().cloned().collect()
    }

    pub fn heard_from(&self, peer: NodeId, notes: Vec<DamageNote>) {
        self.peers.lock().insert(peer, notes);
    }

    pub fn of_peer(&self, peer: NodeId) -> Vec<DamageNote> {
        self.peers.lock().get(&peer).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_is_damaged_until_discarded_and_listed_until_repaired() {
        let book = DamageBook::default();
        assert!(book.found(4, "checksum".into()));
        assert!(!book.found(4, "again".into()), "reported once");
        assert!(book.is_damaged(4));
        book.rebuilding(4, 17);
        assert!(!book.is_damaged(4), "a discarded replica may run again");
        assert_eq!(book.own().len(), 1);
        assert!(book.found(4, "damaged again while rebuilding".into()));
        book.repaired(4);
        assert!(book.own().is_empty());
    }
}
