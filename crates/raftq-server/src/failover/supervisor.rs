//! The failover core: every decision this node makes about Raft timers and
//! early elections, as a pure state machine. Inputs are what the node observes
//! (a peer heard or refusing connections, a peer's node heartbeat, a vote it
//! answered, its groups' Raft metrics, a shutdown signal) and the time; outputs
//! are [`Action`]s for the driver to apply to openraft. Nothing here reads a
//! clock, sleeps or does I/O, so the scenarios in `tests/failover/` run it on
//! virtual time.
//!
//! Three decisions live here:
//! - Quiet groups (see `quiet`): timers off while idle, on again when the
//!   leader's node is down.
//! - A dead leader's groups: its peers learn at once that its process is gone
//!   (connections refused), but openraft 0.9 would wait for the lease plus a
//!   full election timeout before anyone stands. A follower of each group the
//!   dead node led stands as soon as the lease has run out, one at a time in
//!   node-id order, so the vote is not split.
//! - A candidate with a shorter log (see `vote`).
//! - Hand-off on shutdown: openraft 0.9 has no leadership transfer, and its
//!   lease makes followers refuse votes while they still hear the leader. So
//!   the leader goes silent and asks the follower with the most log to
//!   campaign right when the lease has run out.
//!
//! None of it is needed for safety: it moves elections in time and drops a
//! message Raft tolerates losing. A wrong guess costs one election.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use crate::failover::peers::{Peers, Time};
use crate::failover::quiet::{leader_may_quiesce, Quiet, QuietGroups, QUIET_AFTER};
use crate::failover::vote::{elections_to_start, VoteSeen, Voter};
use crate::raft::types::{GroupId, NodeId, METADATA_GROUP};

/// How often followed leaders' health and pending refreshes are looked at.
pub const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How often every local group is looked at for quiescence: quiescing late
/// costs nothing, and looking costs per group.
pub const GROUP_CHECK_EVERY: Duration = Duration::from_millis(300);
/// Node heartbeats to each peer: five per [`crate::failover::peers::DOWN_AFTER`].
pub const NODE_HEARTBEAT_EVERY: Duration = Duration::from_millis(200);
/// Between the followers' turns to stand for a dead leader's group, in rank
/// order: long enough for the first one's election (a vote round trip and an
/// fsync) to be heard, so the next does not depose it with a needless term.
pub const STAGGER: Duration = Duration::from_millis(150);
/// Past the lease, for clock jitter between our view and the voters'.
pub const LEASE_SLACK: Duration = Duration::from_millis(20);
/// Past the lease, before a follower asked to take over stands.
pub const HAND_OFF_MARGIN: Duration = Duration::from_millis(50);
/// How often a hand-off in progress is looked at.
const HAND_OFF_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub me: NodeId,
    /// openraft's leader lease: `election_timeout_max`.
    pub lease: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    /// Candidate or learner.
    Other,
}

/// A group's Raft state as its metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub id: GroupId,
    pub role: Role,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub voters: Vec<NodeId>,
    pub last_index: u64,
    pub applied: u64,
    /// A leader's followers and the last index each matched (`None`: unknown).
    pub matched: Vec<(NodeId, Option<u64>)>,
}

/// The node's groups, viewed when a decision needs them.
pub trait Groups {
    fn ids(&self) -> Vec<GroupId>;
    fn view(&self, id: GroupId) -> Option<GroupView>;
}

/// A node heartbeat's failover content, as sent or received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Beat {
    /// Changes each time the sender's process starts.
    pub boot: u64,
    /// Groups the sender leads and has quiesced, with the term it leads in.
    pub quiesced: Vec<(GroupId, u64)>,
    /// Groups the sender follows quietly whose leader is the receiver: one
    /// heartbeat each, please.
    pub refresh: Vec<GroupId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The group's leader refuses connections and its lease has run out.
    LeaderGone { leader: NodeId },
    /// We refused a candidate for its shorter log while the leader is silent.
    ShorterLogCandidate { candidate_term: u64, our_term: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Turn the group's openraft timers (heartbeats, election timeout) on or off.
    Timers { group: GroupId, on: bool },
    /// The leader of `leader`'s quiet groups is down: timers back on for them.
    Wake {
        leader: NodeId,
        groups: Vec<GroupId>,
    },
    /// Send the group's followers one heartbeat now.
    Heartbeat { group: GroupId },
    /// Stand for election now, `times` times in a row (each one term higher),
    /// with timers on.
    Elect {
        group: GroupId,
        times: u64,
        why: Why,
    },
    /// Stop heartbeating and electing in the group: we are handing it off.
    Silence { group: GroupId },
    /// Ask `follower` to stand for the group once `wait` has passed.
    AskToCampaign {
        group: GroupId,
        follower: NodeId,
        wait: Duration,
    },
    /// A group we lead has no follower to hand it to.
    NoFollower { group: GroupId },
    /// The hand-off is over: `moved` of the `groups` handed have another leader.
    HandOffDone { groups: usize, moved: usize },
}

/// A dead peer's groups, between its refusal and our standing for them.
#[derive(Debug, Clone, Copy)]
enum DeadLeader {
    /// Its lease runs out at `until`; `heard_at` is when it was last heard
    /// before the refusal: heard since means it was a blip or a restart.
    Waiting {
        heard_at: Option<Time>,
        until: Time,
    },
    Standing,
}

#[derive(Debug, Clone, Copy)]
struct Candidacy {
    group: GroupId,
    dead: NodeId,
    at: Time,
}

#[derive(Debug)]
struct HandOff {
    groups: Vec<GroupId>,
    deadline: Time,
}

#[derive(Debug)]
pub struct Supervisor {
    settings: Settings,
    boot: u64,
    peers: Peers,
    quiet: QuietGroups,
    dead_leaders: HashMap<NodeId, DeadLeader>,
    candidacies: Vec<Candidacy>,
    hand_off: Option<HandOff>,
    draining: bool,
    last_tick: Time,
    next_check: Time,
    next_group_check: Time,
    out: Vec<Action>,
}

impl Supervisor {
    pub fn new(settings: Settings, boot: u64) -> Self {
        Self {
            settings,
            boot,
            peers: Peers::default(),
            quiet: QuietGroups::default(),
            dead_leaders: HashMap::new(),
            candidacies: Vec::new(),
            hand_off: None,
            draining: false,
            last_tick: Time::ZERO,
            next_check: Time::ZERO,
            next_group_check: Time::ZERO,
            out: Vec::new(),
        }
    }

    /// The actions decided since last taken, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    /// Any Raft traffic from or answered by `peer`.
    pub fn heard(&mut self, peer: NodeId, now: Time) {
        self.peers.heard(peer, now);
    }

    /// An AppendEntries for `group` came from `leader`: the answer to a refresh
    /// we asked for, if any.
    pub fn append_from(&mut self, group: GroupId, leader: NodeId, now: Time) {
        self.peers.heard(leader, now);
        if !self.quiet.refresh.is_empty() {
            self.quiet.heard.insert((group, leader));
        }
    }

    /// `peer` refused (or reset) a connection: its process is gone. The groups
    /// it led get a candidate from here once its lease has run out.
    pub fn refused(&mut self, peer: NodeId, now: Time) {
        self.peers.refused(peer, now);
        if self.dead_leaders.contains_key(&peer) {
            return;
        }
        let heard_at = self.peers.last_heard(peer);
        let lease = self.settings.lease;
        let heard = self.peers.silence(peer, now).unwrap_or(lease);
        let until = now + lease.saturating_sub(heard) + LEASE_SLACK;
        self.dead_leaders
            .insert(peer, DeadLeader::Waiting { heard_at, until });
    }

    pub fn is_down(&self, peer: NodeId, now: Time) -> bool {
        peer != self.settings.me && self.peers.is_down(peer, now)
    }

    pub fn silence(&self, peer: NodeId, now: Time) -> Option<Duration> {
        if peer == self.settings.me {
            return Some(Duration::ZERO);
        }
        self.peers.silence(peer, now)
    }

    pub fn draining(&self) -> bool {
        self.draining
    }

    pub fn quiesced_count(&self) -> usize {
        self.quiet.state.len()
    }

    /// When [`Self::tick`] next has something to do.
    pub fn next_wakeup(&self) -> Time {
        let waits = self.dead_leaders.values().filter_map(|d| match d {
            DeadLeader::Waiting { until, .. } => Some(*until),
            DeadLeader::Standing => None,
        });
        let stands = self.candidacies.iter().map(|c| c.at);
        let hand_off = self
            .hand_off
            .as_ref()
            .map(|h| h.deadline.min(self.last_tick + HAND_OFF_POLL));
        waits
            .chain(stands)
            .chain(hand_off)
            .fold(self.next_check, Time::min)
    }

    /// What a node heartbeat to `peer` carries.
    pub fn beat_for(&self, peer: NodeId) -> Beat {
        Beat {
            boot: self.boot,
            quiesced: self.quiet.led(),
            // Asked again every beat until answered: a lost beat or heartbeat
            // must not leave a follower behind.
            refresh: self.quiet.refresh.get(&peer).cloned().unwrap_or_default(),
        }
    }

    /// A peer's node heartbeat: follow the groups it quiesced, wake the ones it
    /// no longer lists, and answer its restart and refresh requests.
    pub fn node_heartbeat(&mut self, from: NodeId, beat: &Beat, now: Time, groups: &impl Groups) {
        self.peers.heard(from, now);
        let restarted = self.quiet.peer_boots.insert(from, beat.boot) != Some(beat.boot);
        if restarted {
            // A (re)started follower knows which entries it holds are committed
            // only from the leader, which sends nothing while quiet: one
            // heartbeat per quiesced group tells it (and starts its catch-up).
            for (group, _) in self.quiet.led() {
                self.out.push(Action::Heartbeat { group });
            }
        }
        for &group in &beat.refresh {
            if groups.view(group).is_some_and(|v| v.role == Role::Leader) {
                self.out.push(Action::Heartbeat { group });
            }
        }
        let listed: HashMap<GroupId, u64> = beat.quiesced.iter().copied().collect();
        for &(group, term) in &beat.quiesced {
            let following = Quiet::Following { leader: from, term };
            if self.quiet.state.get(&group) == Some(&following) {
                continue;
            }
            let Some(view) = groups.view(group) else {
                continue;
            };
            let follows = view.role != Role::Leader
                && view.term <= term
                && view.leader.is_none_or(|l| l == from);
            if follows {
                let asked = self.quiet.refresh.entry(from).or_default();
                if !asked.contains(&group) {
                    asked.push(group);
                }
                self.out.push(Action::Timers { group, on: false });
                self.quiet.state.insert(group, following);
            }
        }
        for group in self.quiet.following(from) {
            if !listed.contains_key(&group) {
                self.quiet.state.remove(&group);
                self.out.push(Action::Timers { group, on: true });
            }
        }
    }

    /// This node answered a vote request; true when it stands itself and the
    /// answer must not be sent.
    pub fn vote_answered(
        &mut self,
        group: GroupId,
        voter: Voter,
        seen: VoteSeen,
        now: Time,
    ) -> bool {
        let leader_silence = voter
            .leader
            .filter(|l| *l != self.settings.me)
            .and_then(|l| self.peers.silence(l, now));
        let times = elections_to_start(seen, voter, leader_silence, self.settings.lease);
        if times == 0 {
            return false;
        }
        self.out.push(Action::Elect {
            group,
            times,
            why: Why::ShorterLogCandidate {
                candidate_term: seen.candidate_term,
                our_term: voter.term,
            },
        });
        true
    }

    /// SIGTERM: propose nothing more, and hand every group we lead to its most
    /// up-to-date follower.
    pub fn shutdown(&mut self, now: Time, groups: &impl Groups) {
        self.draining = true;
        let wait = self.settings.lease + HAND_OFF_MARGIN;
        let mut handed = Vec::new();
        for id in sorted(groups.ids()) {
            let Some(view) = groups.view(id).filter(|v| v.role == Role::Leader) else {
                continue;
            };
            self.out.push(Action::Silence { group: id });
            match best_follower(&view, self.settings.me) {
                Some(follower) => {
                    self.out.push(Action::AskToCampaign {
                        group: id,
                        follower,
                        wait,
                    });
                    handed.push(id);
                }
                None => self.out.push(Action::NoFollower { group: id }),
            }
        }
        // Bounded: a follower that cannot win (no quorum, say) must not keep
        // this node alive.
        self.hand_off = Some(HandOff {
            groups: handed,
            deadline: now + wait * 3,
        });
        self.check_hand_off(now, groups);
    }

    /// Everything that falls due by `now`.
    pub fn tick(&mut self, now: Time, groups: &impl Groups) {
        self.last_tick = now;
        self.stand_for_dead_leaders(now, groups);
        if now >= self.next_check {
            self.next_check = now + CHECK_EVERY;
            if now >= self.next_group_check {
                self.next_group_check = now + GROUP_CHECK_EVERY;
                self.check_groups(now, groups);
            }
            self.prune_refresh(groups);
            self.wake_groups_of_down_leaders(now);
        }
        self.check_hand_off(now, groups);
    }

    fn stand_for_dead_leaders(&mut self, now: Time, groups: &impl Groups) {
        let due: Vec<(NodeId, Option<Time>)> = self
            .dead_leaders
            .iter()
            .filter_map(|(dead, d)| match d {
                DeadLeader::Waiting { heard_at, until } if *until <= now => {
                    Some((*dead, *heard_at))
                }
                _ => None,
            })
            .collect();
        let mut ids = None;
        for (dead, heard_at) in due {
            if self.draining || self.peers.last_heard(dead) != heard_at {
                self.dead_leaders.remove(&dead);
                continue;
            }
            self.dead_leaders.insert(dead, DeadLeader::Standing);
            for id in ids
                .get_or_insert_with(|| sorted(groups.ids()))
                .iter()
                .copied()
            {
                let Some(view) = groups.view(id).filter(|v| v.leader == Some(dead)) else {
                    continue;
                };
                if let Some(rank) = rank_among_survivors(&view.voters, self.settings.me, dead) {
                    self.candidacies.push(Candidacy {
                        group: id,
                        dead,
                        at: now + STAGGER * rank as u32,
                    });
                }
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = self.candidacies.drain(..).partition(|c| c.at <= now);
        self.candidacies = later;
        for c in due {
            // Someone else stood first and won, or the old leader is back.
            if groups
                .view(c.group)
                .is_some_and(|v| v.leader == Some(c.dead))
            {
                self.quiet.state.remove(&c.group);
                self.out.push(Action::Elect {
                    group: c.group,
                    times: 1,
                    why: Why::LeaderGone { leader: c.dead },
                });
            }
        }
        let standing: HashSet<NodeId> = self.candidacies.iter().map(|c| c.dead).collect();
        self.dead_leaders
            .retain(|dead, d| matches!(d, DeadLeader::Waiting { .. }) || standing.contains(dead));
    }

    fn check_groups(&mut self, now: Time, groups: &impl Groups) {
        let ids = sorted(groups.ids());
        let known: HashSet<GroupId> = ids.iter().copied().collect();
        self.quiet.state.retain(|g, _| known.contains(g));
        self.quiet.activity.retain(|g, _| known.contains(g));
        for id in ids {
            if id == METADATA_GROUP {
                continue;
            }
            if let Some(view) = groups.view(id) {
                self.check_group(&view, now);
            }
        }
    }

    fn check_group(&mut self, v: &GroupView, now: Time) {
        let leading = v.role == Role::Leader;
        let wake = match (leading, self.quiet.state.get(&v.id).copied()) {
            (true, Some(Quiet::Leading { term, last_index })) => {
                term != v.term || last_index != v.last_index
            }
            (false, Some(Quiet::Leading { .. })) | (true, Some(Quiet::Following { .. })) => true,
            (false, Some(Quiet::Following { leader, term })) => {
                v.term > term || v.leader.is_some_and(|l| l != leader)
            }
            (true, None) => {
                let idle_for = self.quiet.idle_for(v.id, v.last_index, now);
                if idle_for < QUIET_AFTER || self.draining {
                    return;
                }
                let matched: Vec<u64> = v.matched.iter().map(|(_, m)| m.unwrap_or(0)).collect();
                if leader_may_quiesce(v.last_index, v.applied, &matched, idle_for) {
                    self.out.push(Action::Timers {
                        group: v.id,
                        on: false,
                    });
                    self.quiet.state.insert(
                        v.id,
                        Quiet::Leading {
                            term: v.term,
                            last_index: v.last_index,
                        },
                    );
                }
                return;
            }
            (false, None) => false,
        };
        if wake {
            self.quiet.state.remove(&v.id);
            self.out.push(Action::Timers {
                group: v.id,
                on: true,
            });
        }
    }

    /// Drops refresh requests that were answered (an AppendEntries came from
    /// the leader since) or no longer apply.
    fn prune_refresh(&mut self, groups: &impl Groups) {
        if self.quiet.refresh.is_empty() {
            return;
        }
        let heard = std::mem::take(&mut self.quiet.heard);
        let state = &self.quiet.state;
        self.quiet.refresh.retain(|leader, asked| {
            asked.retain(|g| {
                let still_quiet =
                    matches!(state.get(g), Some(Quiet::Following { leader: l, .. }) if l == leader);
                still_quiet && !heard.contains(&(*g, *leader)) && groups.view(*g).is_some()
            });
            !asked.is_empty()
        });
    }

    fn wake_groups_of_down_leaders(&mut self, now: Time) {
        for leader in self.quiet.followed_leaders() {
            if self.peers.is_down(leader, now) {
                let groups = self.quiet.following(leader);
                for g in &groups {
                    self.quiet.state.remove(g);
                }
                self.out.push(Action::Wake { leader, groups });
            }
        }
    }

    fn check_hand_off(&mut self, now: Time, groups: &impl Groups) {
        let Some(hand_off) = &self.hand_off else {
            return;
        };
        let me = self.settings.me;
        let still_ours = |g: &GroupId| groups.view(*g).is_some_and(|v| v.leader == Some(me));
        let ours = hand_off.groups.iter().filter(|g| still_ours(g)).count();
        if ours == 0 || now >= hand_off.deadline {
            self.out.push(Action::HandOffDone {
                groups: hand_off.groups.len(),
                moved: hand_off.groups.len() - ours,
            });
            self.hand_off = None;
        }
    }
}

fn sorted(mut ids: Vec<GroupId>) -> Vec<GroupId> {
    ids.sort_unstable();
    ids
}

/// Our rank among the voters that remain when `dead` is gone, lowest id first.
pub fn rank_among_survivors(voters: &[NodeId], me: NodeId, dead: NodeId) -> Option<usize> {
    let mut alive: Vec<NodeId> = voters.iter().copied().filter(|v| *v != dead).collect();
    alive.sort_unstable();
    alive.iter().position(|v| *v == me)
}

/// The follower whose log matches ours furthest (ties: lowest id).
fn best_follower(view: &GroupView, me: NodeId) -> Option<NodeId> {
    view.matched
        .iter()
        .filter(|(id, _)| *id != me)
        .max_by_key(|(id, matched)| (*matched, std::cmp::Reverse(*id)))
        .map(|(id, _)| *id)
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on_off = |on: bool| if on { "on" } else { "off" };
        match self {
            Action::Timers { group, on } => write!(f, "timers group={group} {}", on_off(*on)),
            Action::Wake { leader, groups } => {
                let list: Vec<String> = groups.iter().map(u64::to_string).collect();
                write!(f, "wake leader={leader} groups={}", list.join(","))
            }
            Action::Heartbeat { group } => write!(f, "heartbeat group={group}"),
            Action::Elect { group, times, why } => {
                write!(f, "elect group={group} times={times} ")?;
                match why {
                    Why::LeaderGone { leader } => write!(f, "leader-gone={leader}"),
                    Why::ShorterLogCandidate {
                        candidate_term,
                        our_term,
                    } => write!(
                        f,
                        "shorter-log-candidate term={candidate_term} ours={our_term}"
                    ),
                }
            }
            Action::Silence { group } => write!(f, "silence group={group}"),
            Action::AskToCampaign {
                group,
                follower,
                wait,
            } => write!(
                f,
                "ask-to-campaign group={group} follower={follower} wait={}ms",
                wait.as_millis()
            ),
            Action::NoFollower { group } => write!(f, "no-follower group={group}"),
            Action::HandOffDone { groups, moved } => {
                write!(f, "hand-off-done groups={groups} moved={moved}")
            }
        }
    }
}
