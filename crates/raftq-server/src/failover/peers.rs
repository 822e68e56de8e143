//! What this node knows of each peer's health: when it last heard from it, and
//! whether its connection has been refused since. The one definition of "a peer
//! is down" lives here, for cluster status, read routing and quiet groups alike.

use std::collections::HashMap;
use std::time::Duration;

use crate::raft::types::NodeId;

/// Virtual or real time since the node's clock started.
pub type Time = Duration;

/// A peer silent this long is down. Node heartbeats go out five times as often,
/// so a healthy but loaded peer stays up; a longer bound would leave quiet
/// groups of a paused leader without elections for longer.
pub const DOWN_AFTER: Duration = Duration::from_millis(1000);

#[derive(Debug, Default)]
pub struct Peers {
    last_heard: HashMap<NodeId, Time>,
    /// Peers whose connection was refused or reset since they were last heard:
    /// no process listens (a paused or cut-off peer times out instead).
    refused: HashMap<NodeId, Time>,
}

impl Peers {
    pub fn heard(&mut self, peer: NodeId, now: Time) {
        let last = self.last_heard.entry(peer).or_insert(now);
        *last = (*last).max(now);
        self.refused.remove(&peer);
    }

    /// True when this is the first refusal since the peer was last heard.
    pub fn refused(&mut self, peer: NodeId, now: Time) -> bool {
        let first = !self.refused.contains_key(&peer);
        self.refused.entry(peer).or_insert(now);
        first
    }

    pub fn last_heard(&self, peer: NodeId) -> Option<Time> {
        self.last_heard.get(&peer).copied()
    }

    /// Time since `peer` was last heard; `None` if never.
    pub fn silence(&self, peer: NodeId, now: Time) -> Option<Duration> {
        self.last_heard(peer).map(|t| now.saturating_sub(t))
    }

    /// Its process refused a connection since it was last heard, or it has been
    /// silent for [`DOWN_AFTER`] (or never heard at all).
    pub fn is_down(&self, peer: NodeId, now: Time) -> bool {
        self.refused.contains_key(&peer) || self.silence(peer, now).is_none_or(|s| s >= DOWN_AFTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Time {
        Duration::from_millis(n)
    }

    #[test]
    fn down_when_refused_or_silent_and_up_again_when_heard() {
        let mut p = Peers::default();
        assert!(p.is_down(1, ms(0)), "never heard");
        p.heard(1, ms(100));
        assert!(!p.is_down(1, ms(1099)));
        assert!(p.is_down(1, ms(1100)), "silent for DOWN_AFTER");
        p.heard(1, ms(1200));
        assert!(p.refused(1, ms(1250)));
        assert!(!p.refused(1, ms(1260)), "one refusal until heard again");
        assert!(p.is_down(1, ms(1250)), "refused: down at once");
        p.heard(1, ms(1300));
        assert!(!p.is_down(1, ms(1300)));
    }

    #[test]
    fn a_late_report_does_not_move_last_heard_back() {
        let mut p = Peers::default();
        p.heard(1, ms(500));
        p.heard(1, ms(400));
        assert_eq!(p.last_heard(1), Some(ms(500)));
    }
}
