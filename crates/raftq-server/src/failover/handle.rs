//! The supervisor as the rest of the node reaches it: the peer transport
//! reports what it sees, status and routing ask whether a peer is down, and the
//! driver takes the actions. One lock, held only for a decision.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use crate::failover::peers::Time;
use crate::failover::supervisor::{Action, Beat, Groups, Settings, Supervisor};
use crate::failover::vote::{VoteSeen, Voter};
use crate::raft::types::{GroupId, NodeId};

pub struct Failover {
    core: Mutex<Supervisor>,
    started: Instant,
    /// Wakes the driver: new actions, or a new deadline.
    pub(crate) wake: Notify,
    /// Read on every proposal, so kept outside the lock.
    draining: AtomicBool,
    pub(crate) handed_off: watch::Sender<bool>,
}

impl Failover {
    pub fn new(settings: Settings) -> Self {
        Self {
            core: Mutex::new(Supervisor::new(settings, rand::random())),
            started: Instant::now(),
            wake: Notify::new(),
            draining: AtomicBool::new(false),
            handed_off: watch::channel(false).0,
        }
    }

    pub fn now(&self) -> Time {
        self.started.elapsed()
    }

    /// Any Raft traffic from or answered by `peer`.
    pub fn heard(&self, peer: NodeId) {
        let now = self.now();
        self.core.lock().heard(peer, now);
    }

    /// An AppendEntries (or snapshot) for `group` came from its leader.
    pub fn append_from(&self, group: GroupId, leader: NodeId) {
        let now = self.now();
        self.core.lock().append_from(group, leader, now);
    }

    /// `peer` refused or reset a connection: its process is gone.
    pub fn refused(&self, peer: NodeId) {
        let now = self.now();
        self.core.lock().refused(peer, now);
        self.wake.notify_one();
    }

    pub fn is_down(&self, peer: NodeId) -> bool {
        let now = self.now();
        self.core.lock().is_down(peer, now)
    }

    /// Time since `peer` was last heard; zero for this node, `None` if never.
    pub fn silence(&self, peer: NodeId) -> Option<Duration> {
        let now = self.now();
        self.core.lock().silence(peer, now)
    }

    /// Set on SIGTERM: this node proposes nothing more and hands off leadership.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn quiesced_count(&self) -> usize {
        self.core.lock().quiesced_count()
    }

    pub fn beat_for(&self, peer: NodeId) -> Beat {
        self.core.lock().beat_for(peer)
    }

    pub fn node_heartbeat(&self, from: NodeId, beat: &Beat, groups: &impl Groups) {
        let now = self.now();
        self.core.lock().node_heartbeat(from, beat, now, groups);
        self.wake.notify_one();
    }

    /// This node answered a vote; true when it stands itself and the answer
    /// must not be sent (see `failover::vote`).
    pub fn vote_answered(&self, group: GroupId, voter: Voter, seen: VoteSeen) -> bool {
        let now = self.now();
        let stands = self.core.lock().vote_answered(group, voter, seen, now);
        if stands {
            self.wake.notify_one();
        }
        stands
    }

    pub(crate) fn shutdown(&self, groups: &impl Groups) {
        self.draining.store(true, Ordering::SeqCst);
        let now = self.now();
        self.core.lock().shutdown(now, groups);
        self.wake.notify_one();
    }

    /// Runs what is due and returns the actions to apply, with the time of the
    /// next wakeup.
    pub(crate) fn tick(&self, groups: &impl Groups) -> (Vec<Action>, Time) {
        let now = self.now();
        let mut core = self.core.lock();
        core.tick(now, groups);
        (core.take_actions(), core.next_wakeup())
    }
}
