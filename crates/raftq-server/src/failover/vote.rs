//! A follower that refuses a candidate for its shorter log stands at once, in a
//! term above the candidate's, and does not send the refusal.
//!
//! When a leader goes silent with entries in flight, one follower often holds
//! an entry another lacks. If the shorter log stands first (term t+1), the
//! longer one refuses it, and openraft 0.9 leaves the refusing node's vote at
//! term t (`Engine::handle_vote_req` returns before `update_vote` when the log
//! check fails). When that node stands later it stands in t+1 as well, where the
//! first candidate has voted for itself: nobody wins, and the next round comes
//! an election timeout later. Standing at once, twice if need be so that our
//! term passes the candidate's, lets the node that can win do so within a vote
//! round trip.
//!
//! The refusal is not sent (the RPC fails as if lost): a candidate refused for
//! its log sets openraft's `seen_greater_log`, which adds 2 x
//! `election_timeout_max` to its next election timeout.
//!
//! It only moves an election in time and drops a message Raft tolerates losing,
//! so safety stays openraft's. It acts only while the leader we know has been
//! silent for a whole lease, so a candidate cut off from a live leader never
//! makes us depose that leader.

use std::time::Duration;

use crate::raft::types::NodeId;

/// A log position, ordered by term, then index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPos {
    pub term: u64,
    pub index: u64,
}

/// A vote request and this node's answer to it.
#[derive(Debug, Clone, Copy)]
pub struct VoteSeen {
    pub candidate_term: u64,
    pub candidate_last: Option<LogPos>,
    pub granted: bool,
    pub our_last: Option<LogPos>,
}

/// This node in the group before it answered the vote.
#[derive(Debug, Clone, Copy)]
pub struct Voter {
    pub term: u64,
    pub follower: bool,
    /// The leader it knew, if another node.
    pub leader: Option<NodeId>,
}

/// How many elections to start by hand after answering, so that our term passes
/// the candidate's; 0 leaves the election to openraft. `leader_silence` is how
/// long the known leader has been silent (`None`: no leader, or never heard).
pub fn elections_to_start(
    seen: VoteSeen,
    voter: Voter,
    leader_silence: Option<Duration>,
    lease: Duration,
) -> u64 {
    let leader_silent = leader_silence.is_none_or(|d| d >= lease);
    let outlogged = seen.our_last > seen.candidate_last;
    if !voter.follower
        || seen.granted
        || !outlogged
        || !leader_silent
        || seen.candidate_term <= voter.term
    {
        return 0;
    }
    let needed = seen.candidate_term + 1 - voter.term;
    // A candidate many terms ahead is not the one-round split this is for.
    if needed > 3 {
        return 0;
    }
    needed
}
