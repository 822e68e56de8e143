//! Breaking split votes (bench/results/failover.md).
//!
//! openraft 0.9 draws a node's election timeout once per group, and elections
//! fire only on ticks (every 1.5 heartbeats). After a failed election a
//! candidate stands again 2-3 ticks later, and the other follower often stands
//! in the same term just before or after it, so the vote splits again: one
//! SIGSTOP of a leader in a dozen cost 0.8-4.9 s that way instead of 0.5 s.
//!
//! Vote replies carry the voter's last log id. A candidate whose failed round
//! showed no voter with a longer log is a candidate that can win, so it stands
//! again at once after a short random pause, off the tick grid, a term ahead
//! of anyone who stood in the failed one. A candidate that some voter
//! out-logged is left to openraft, which makes it wait longer so that the
//! better candidate wins. Safety does not depend on any of this: it only moves
//! an election in time.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ServerState;
use rand::Rng;

use crate::node::{Group, Node};

/// A vote round (a request, an fsync of the vote, a reply) ends well within
/// this; a candidate still without a leader after it has failed its round.
const ROUND: Duration = Duration::from_millis(100);
/// The random pause is drawn from zero to this: wider than a vote round trip
/// many times over, well within an election timeout.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// At most this many elections are started here per leaderless spell, so
/// that a node cut off from its peers (whose rounds all fail with no reply)
/// goes back to openraft's pace after a moment.
const MAX_STANDS: u32 = 2;

/// What vote replies said about our candidacies, recorded by the network
/// layer: the latest term in which a voter had a longer log than ours.
#[derive(Debug, Default)]
pub struct VoteReplies {
    outlogged_in: Mutex<Option<u64>>,
}

impl VoteReplies {
    /// A reply to our request in `term`: did that voter have a longer log?
    pub fn record<T: PartialOrd>(&self, term: u64, ours: Option<&T>, theirs: Option<&T>) {
        if theirs > ours {
            let mut latest = self.outlogged_in.lock().unwrap_or_else(|p| p.into_inner());
            *latest = (*latest).max(Some(term));
        }
    }

    fn outlogged_in(&self, term: u64) -> bool {
        *self.outlogged_in.lock().unwrap_or_else(|p| p.into_inner()) == Some(term)
    }
}

/// One group's elections as seen from this node since it last knew a leader.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Spell {
    last_failed_term: Option<u64>,
    stands: u32,
}

impl Spell {
    /// A leader is known again: the next spell starts afresh.
    pub fn leader_known(&mut self) {
        *self = Spell::default();
    }

    /// Our candidacy in `term` produced no leader within a round; `outlogged`
    /// if a voter had a longer log. True when we should stand again now.
    pub fn round_failed(&mut self, term: u64, outlogged: bool) -> bool {
        if self.last_failed_term == Some(term) {
            return false;
        }
        self.last_failed_term = Some(term);
        if outlogged || self.stands >= MAX_STANDS {
            return false;
        }
        self.stands += 1;
        true
    }
}

struct Seen {
    state: ServerState,
    term: u64,
    has_leader: bool,
}

fn seen(group: &Group) -> Seen {
    let metrics = group.raft.server_metrics();
    let m = metrics.borrow();
    Seen {
        state: m.state,
        term: m.vote.leader_id().get_term(),
        has_leader: m.current_leader.is_some(),
    }
}

pub async fn run(node: Arc<Node>, group: Arc<Group>, replies: Arc<VoteReplies>) {
    // Changes only with the vote, the state or the leader: idle groups cost nothing.
    let mut changes = group.raft.server_metrics();
    let mut spell = Spell::default();
    loop {
        let now = seen(&group);
        if now.state == ServerState::Leader || now.has_leader {
            spell.leader_known();
        } else if now.state == ServerState::Candidate {
            tokio::time::sleep(ROUND).await;
            let later = seen(&group);
            let failed = later.state == ServerState::Candidate
                && later.term == now.term
                && !later.has_leader;
            if failed && spell.round_failed(now.term, replies.outlogged_in(now.term)) {
                stand_again(&node, &group, now.term).await;
            }
            // Still a candidate: look again after another round.
            continue;
        }
        if changes.changed().await.is_err() {
            return; // The group has shut down.
        }
    }
}

async fn stand_again(node: &Node, group: &Group, failed_term: u64) {
    if node.draining.load(Ordering::SeqCst) {
        return;
    }
    let pause = rand::thread_rng().gen_range(Duration::ZERO..=MAX_PAUSE);
    group.raft.runtime_config().elect(false);
    tokio::time::sleep(pause).await;
    // A node shutting down keeps its elections off (drain turned them off too).
    if node.draining.load(Ordering::SeqCst) {
        return;
    }
    group.raft.runtime_config().elect(true);
    // Only if nothing happened meanwhile: having voted for another candidate
    // (who may have won without our knowing yet), standing would depose it.
    let now = seen(group);
    if now.state == ServerState::Candidate && now.term == failed_term && !now.has_leader {
        tracing::info!(
            group = group.id,
            term = now.term,
            pause_ms = pause.as_millis() as u64,
            "election failed with no voter ahead of our log: standing again after a random pause"
        );
        let _ = group.raft.trigger().elect().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_no_voter_outlogged_stands_again_once_per_term() {
        let mut s = Spell::default();
        assert!(s.round_failed(5, false));
        // Seeing the same failed term again counts once.
        assert!(!s.round_failed(5, false));
    }

    #[test]
    fn a_candidate_with_a_shorter_log_is_left_to_openraft() {
        let mut s = Spell::default();
        assert!(!s.round_failed(5, true));
        assert!(s.round_failed(6, false));
    }

    #[test]
    fn a_spell_allows_a_bounded_number_of_stands() {
        let mut s = Spell::default();
        let stood = (1..=10).filter(|t| s.round_failed(*t, false)).count();
        assert_eq!(stood as u32, MAX_STANDS);
        s.leader_known();
        assert!(s.round_failed(11, false));
    }

    #[test]
    fn replies_with_a_longer_log_mark_that_term_only() {
        let r = VoteReplies::default();
        r.record(5, Some(&10u64), Some(&10u64));
        r.record(5, Some(&10u64), None);
        assert!(!r.outlogged_in(5));
        r.record(5, Some(&10u64), Some(&11u64));
        assert!(r.outlogged_in(5));
        assert!(!r.outlogged_in(6));
        r.record(4, None, Some(&1u64));
        assert!(
            r.outlogged_in(5),
            "an older term's reply does not move the mark back"
        );
    }
}
