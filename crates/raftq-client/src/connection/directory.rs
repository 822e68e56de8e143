//! What the client has learned about the cluster: node id → address (from
//! `ClusterStatus` and leader hints) and queue → leader address (from
//! `GetQueue`, publish answers and hints). Everything here is a hint: a wrong
//! entry costs one forwarded request or one failed attempt, never correctness.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Do not ask the cluster for a queue's leader more often than this: during an
/// election there is none to find, and every caller would ask at once.
const LOOKUP_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Default)]
pub(crate) struct Directory {
    nodes: Mutex<HashMap<u64, String>>,
    leaders: Mutex<HashMap<String, String>>,
    lookups: Mutex<HashMap<String, Instant>>,
}

/// A node address a client elsewhere can use: not a wildcard listen address.
fn usable(addr: &str) -> bool {
    !(addr.is_empty()
        || addr.starts_with("0.0.0.0:")
        || addr.starts_with("[::]:")
        || !addr.contains(':'))
}

impl Directory {
    pub(crate) fn set_node(&self, id: u64, addr: &str) {
        if id != 0 && usable(addr) {
            self.nodes.lock().insert(id, addr.to_string());
        }
    }

    pub(crate) fn node_addr(&self, id: u64) -> Option<String> {
        self.nodes.lock().get(&id).cloned()
    }

    /// Every known node address, by node id.
    pub(crate) fn node_addrs(&self) -> Vec<String> {
        let nodes = self.nodes.lock();
        let mut ids: Vec<&u64> = nodes.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| nodes.get(id).cloned())
            .collect()
    }

    pub(crate) fn leader(&self, queue: &str) -> Option<String> {
        self.leaders.lock().get(queue).cloned()
    }

    pub(crate) fn set_leader_addr(&self, queue: &str, addr: &str) {
        if usable(addr) {
            self.leaders
                .lock()
                .insert(queue.to_string(), addr.to_string());
        }
    }

    /// Records `leader_id` as the queue's leader; false when its address is not
    /// known yet (0, "no leader", forgets the cached one).
    pub(crate) fn set_leader_id(&self, queue: &str, leader_id: u64) -> bool {
        if leader_id == 0 {
            self.leaders.lock().remove(queue);
            return true;
        }
        match self.node_addr(leader_id) {
            Some(addr) => {
                self.set_leader_addr(queue, &addr);
                true
            }
            None => false,
        }
    }

    /// Forgets the cached leader after it failed us, unless a newer one was
    /// learned meanwhile.
    pub(crate) fn forget_leader(&self, queue: &str, failed_addr: &str) {
        let mut leaders = self.leaders.lock();
        if leaders.get(queue).is_some_and(|a| a == failed_addr) {
            leaders.remove(queue);
        }
    }

    /// Learns the leader a server named (typed, in an UNAVAILABLE answer).
    pub(crate) fn learn_leader(&self, queue: Option<&str>, id: u64, addr: &str) -> bool {
        self.set_node(id, addr);
        if let Some(q) = queue {
            self.set_leader_addr(q, addr);
        }
        true
    }

    /// Whether a leader lookup for `queue` may run now (and records that it does).
    pub(crate) fn lookup_due(&self, queue: &str, now: Instant) -> bool {
        let mut lookups = self.lookups.lock();
        match lookups.get(queue) {
            Some(last) if now.saturating_duration_since(*last) < LOOKUP_INTERVAL => false,
            _ => {
                lookups.insert(queue.to_string(), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_ids_resolve_through_known_nodes() {
        let d = Directory::default();
        assert!(!d.set_leader_id("q", 2), "node 2's address is unknown");
        d.set_node(2, "10.0.0.2:7001");
        assert!(d.set_leader_id("q", 2));
        assert_eq!(d.leader("q").as_deref(), Some("10.0.0.2:7001"));
        assert!(d.set_leader_id("q", 0));
        assert_eq!(d.leader("q"), None, "no leader forgets the old one");
    }

    #[test]
    fn forgetting_keeps_a_newer_leader() {
        let d = Directory::default();
        d.set_leader_addr("q", "a:1");
        d.set_leader_addr("q", "b:2");
        d.forget_leader("q", "a:1");
        assert_eq!(d.leader("q").as_deref(), Some("b:2"));
        d.forget_leader("q", "b:2");
        assert_eq!(d.leader("q"), None);
    }

    #[test]
    fn hints_teach_both_node_and_leader() {
        let d = Directory::default();
        assert!(d.learn_leader(Some("q"), 3, "c:3"));
        assert_eq!(d.leader("q").as_deref(), Some("c:3"));
        assert_eq!(d.node_addr(3).as_deref(), Some("c:3"));
    }

    #[test]
    fn wildcard_addresses_are_not_used() {
        let d = Directory::default();
        d.set_node(1, "0.0.0.0:7001");
        d.set_node(0, "a:1");
        assert_eq!(d.node_addrs(), Vec::<String>::new());
    }

    #[test]
    fn lookups_are_rate_limited_per_queue() {
        let d = Directory::default();
        let t = Instant::now();
        assert!(d.lookup_due("q", t));
        assert!(!d.lookup_due("q", t + Duration::from_millis(10)));
        assert!(d.lookup_due("other", t));
        assert!(d.lookup_due("q", t + LOOKUP_INTERVAL));
    }
}
