//! A follower that refuses a candidate for its shorter log stands at once, in
//! a term above the candidate's, and does not send the refusal.
//!
//! When a leader goes silent while entries are in flight, one follower often
//! holds an entry the other lacks. If the one with the shorter log stands
//! first (term t+1), the other refuses it, and openraft 0.9 leaves the
//! refusing node's vote at term t (`Engine::handle_vote_req` returns before
//! `update_vote` when the log check fails). So when that node stands later,
//! it stands in t+1 too, where the first candidate has already voted for
//! itself: nobody wins, and the next round comes an election timeout and a
//! tick later. That was the 822 ms class of W5p faults
//! (`bench/results/failover.md`).
//!
//! Standing at once, by hand, twice if need be so that our term passes the
//! candidate's, lets the node that can win do so within a vote round trip.
//! The refusal itself is not sent (the RPC fails instead, as if lost): a
//! candidate refused for its log sets openraft's `seen_greater_log`, which
//! adds 2 x `election_timeout_max` to its election timeout until its own next
//! tick election, and so made it stand late in a later fault.
//!
//! It only moves an election in time and drops a message Raft already
//! tolerates losing, so safety is openraft's as ever; it acts only while the
//! leader we know has been silent for a whole lease, so a candidate cut off
//! from a live leader never makes us depose that leader.

use std::time::Duration;

use openraft::raft::{VoteRequest, VoteResponse};
use openraft::ServerState;

use crate::node::{Group, Node};
use crate::raft::types::NodeId;

/// What this node was before it handled a vote request.
#[derive(Debug, Clone, Copy)]
pub struct Before {
    pub term: u64,
    pub follower: bool,
    /// Time since we last heard from the leader we know; `None` if we know
    /// none or never heard from it.
    pub leader_silence: Option<Duration>,
}

impl Before {
    pub fn of(node: &Node, group: &Group) -> Self {
        let watch = group.raft.metrics();
        let metrics = watch.borrow();
        let leader_silence = metrics
            .current_leader
            .filter(|l| *l != node.id)
            .and_then(|l| node.liveness.since(l));
        Self {
            term: metrics.current_term,
            follower: metrics.state == ServerState::Follower,
            leader_silence,
        }
    }
}

/// How many elections to start by hand after answering `req` with `resp`, so
/// that our term passes the candidate's; 0 to leave the election to openraft.
pub fn elections_to_start(
    req: &VoteRequest<NodeId>,
    resp: &VoteResponse<NodeId>,
    before: Before,
    lease: Duration,
) -> u64 {
    let candidate_term = req.vote.leader_id().get_term();
    let leader_silent = before.leader_silence.is_none_or(|d| d >= lease);
    let outlogged = resp.last_log_id > req.last_log_id;
    if !before.follower
        || resp.vote_granted
        || !outlogged
        || !leader_silent
        || candidate_term <= before.term
    {
        return 0;
    }
    let needed = candidate_term + 1 - before.term;
    // A candidate many terms ahead is not the one-round split this is for.
    if needed > 3 {
        return 0;
    }
    needed
}

/// Acts on [`elections_to_start`] after this node answered a vote request;
/// true when it stands, and the refusal should then not be sent.
pub fn after_vote(
    node: &Node,
    group: &Group,
    req: &VoteRequest<NodeId>,
    resp: &VoteResponse<NodeId>,
    before: Before,
) -> bool {
    let lease = Duration::from_millis(node.config.election_timeout_max_ms);
    let n = elections_to_start(req, resp, before, lease);
    if n == 0 {
        return false;
    }
    tracing::info!(
        group = group.id,
        candidate_term = req.vote.leader_id().get_term(),
        our_term = before.term,
        elections = n,
        "refused a candidate with a shorter log while the leader is silent: standing at once"
    );
    node.metrics.outrun_elections.inc();
    let raft = group.raft.clone();
    tokio::spawn(async move {
        for _ in 0..n {
            // Each trigger makes openraft stand again, one term higher.
            if raft.trigger().elect().await.is_err() {
                return;
            }
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId, Vote};

    const LEASE: Duration = Duration::from_millis(220);

    fn log(term: u64, index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    fn req(term: u64, last: Option<LogId<NodeId>>) -> VoteRequest<NodeId> {
        VoteRequest::new(Vote::new(term, 2), last)
    }

    fn refused(our_term: u64, last: Option<LogId<NodeId>>) -> VoteResponse<NodeId> {
        VoteResponse::new(Vote::new_committed(our_term, 1), last, false)
    }

    fn stands(req: VoteRequest<NodeId>, resp: VoteResponse<NodeId>, before: Before) -> u64 {
        elections_to_start(&req, &resp, before, LEASE)
    }

    fn follower(term: u64, silence_ms: Option<u64>) -> Before {
        Before {
            term,
            follower: true,
            leader_silence: silence_ms.map(Duration::from_millis),
        }
    }

    #[test]
    fn a_shorter_log_candidate_one_term_ahead_makes_us_stand_twice() {
        let n = stands(
            req(6, log(5, 100)),
            refused(5, log(5, 101)),
            follower(5, Some(400)),
        );
        assert_eq!(n, 2);
    }

    #[test]
    fn nothing_while_the_leader_was_heard_within_its_lease() {
        let n = stands(
            req(6, log(5, 100)),
            refused(5, log(5, 101)),
            follower(5, Some(100)),
        );
        assert_eq!(n, 0);
    }

    #[test]
    fn nothing_when_the_candidate_is_as_long_or_the_vote_was_granted() {
        let before = follower(5, None);
        let equal = stands(req(6, log(5, 101)), refused(5, log(5, 101)), before);
        let granted = stands(
            req(6, log(5, 100)),
            VoteResponse::new(Vote::new(6, 2), log(5, 101), true),
            before,
        );
        assert_eq!((equal, granted), (0, 0));
    }

    #[test]
    fn nothing_unless_a_follower_behind_the_candidates_term() {
        let ask = || (req(6, log(5, 100)), refused(6, log(5, 101)));
        let candidate = Before {
            follower: false,
            ..follower(5, None)
        };
        for before in [candidate, follower(6, None), follower(1, None)] {
            let (r, resp) = ask();
            assert_eq!(stands(r, resp, before), 0, "{before:?}");
        }
    }
}
