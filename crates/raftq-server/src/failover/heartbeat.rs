//! The node heartbeat each node sends each peer a few times a second, whatever
//! its number of groups: the failover content of [`Beat`], the alarms, and the
//! sender's data dir incarnation (see `meta::identity`).

use serde::{Deserialize, Serialize};

use crate::failover::supervisor::Beat;
use crate::raft::types::GroupId;
use crate::repair::book::DamageNote;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeHeartbeat {
    pub boot: u64,
    pub quiesced: Vec<(GroupId, u64)>,
    pub refresh: Vec<GroupId>,
    /// The sender's memory and disk alarms: publishes are refused cluster-wide
    /// while any node has one.
    pub alarms: Vec<crate::alarms::Alarm>,
    pub incarnation: u64,
    /// The sender's damaged replicas, for everyone's cluster status.
    pub damaged: Vec<DamageNote>,
}

impl NodeHeartbeat {
    pub fn new(
        beat: Beat,
        alarms: Vec<crate::alarms::Alarm>,
        incarnation: u64,
        damaged: Vec<DamageNote>,
    ) -> Self {
        Self {
            boot: beat.boot,
            quiesced: beat.quiesced,
            refresh: beat.refresh,
            alarms,
            incarnation,
            damaged,
        }
    }

    /// Its failover content, its alarms, the sender's incarnation and its
    /// damaged replicas.
    pub fn split(self) -> (Beat, Vec<crate::alarms::Alarm>, u64, Vec<DamageNote>) {
        let beat = Beat {
            boot: self.boot,
            quiesced: self.quiesced,
            refresh: self.refresh,
        };
        (beat, self.alarms, self.incarnation, self.damaged)
    }
}
