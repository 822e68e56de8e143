//! The node heartbeat each node sends each peer a few times a second, whatever
//! its number of groups: the failover content of [`Beat`] and the alarms.

use serde::{Deserialize, Serialize};

use crate::failover::supervisor::Beat;
use crate::raft::types::GroupId;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeHeartbeat {
    pub boot: u64,
    pub quiesced: Vec<(GroupId, u64)>,
    pub refresh: Vec<GroupId>,
    /// The sender's memory and disk alarms: publishes are refused cluster-wide
    /// while any node has one.
    pub alarms: Vec<crate::alarms::Alarm>,
}

impl NodeHeartbeat {
    pub fn new(beat: Beat, alarms: Vec<crate::alarms::Alarm>) -> Self {
        Self {
            boot: beat.boot,
            quiesced: beat.quiesced,
            refresh: beat.refresh,
            alarms,
        }
    }

    /// Its failover content, and its alarms.
    pub fn split(self) -> (Beat, Vec<crate::alarms::Alarm>) {
        let beat = Beat {
            boot: self.boot,
            quiesced: self.quiesced,
            refresh: self.refresh,
        };
        (beat, self.alarms)
    }
}
