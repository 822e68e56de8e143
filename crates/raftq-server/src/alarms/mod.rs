//! Memory and disk alarms, as RabbitMQ has them: past a node's memory limit or
//! under its free-disk limit, publishes are refused cluster-wide with
//! RESOURCE_EXHAUSTED naming the node and the resource, while consumers and
//! acks keep working so the backlog drains. Each node samples itself
//! (`monitor`) and tells its peers in its node heartbeat.

pub mod monitor;
mod probe;

pub use probe::{keep_large_allocations_mapped, release_freed_memory};

use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::raft::types::NodeId;

/// A peer's alarms count while its heartbeats arrive; a peer silent this long
/// no longer blocks anyone (it is down, and its replicas are not taking writes).
pub const PEER_ALARM_TTL: Duration = Duration::from_secs(5);

/// An alarm clears only once the pressure is this far (in percent of the
/// limit) below it, so a node hovering at its limit does not flap.
const CLEAR_MARGIN_PERCENT: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resource {
    Memory,
    Disk,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::Disk => "disk",
        }
    }
}

/// One raised alarm and the reading that raised it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    pub resource: Resource,
    /// Memory: resident bytes. Disk: free bytes.
    pub reading: u64,
    /// Memory: the most resident bytes allowed. Disk: the least free bytes.
    pub limit: u64,
}

impl fmt::Display for Alarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b / (1024 * 1024);
        match self.resource {
            Resource::Memory => write!(
                f,
                "memory alarm: {} MiB resident, limit {} MiB",
                mib(self.reading),
                mib(self.limit)
            ),
            Resource::Disk => write!(
                f,
                "disk alarm: {} MiB free, limit {} MiB",
                mib(self.reading),
                mib(self.limit)
            ),
        }
    }
}

/// The thresholds of one node; `None` turns an alarm off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub disk_free_bytes: Option<u64>,
}

/// One look at the node's resources; `None` where it could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub resident_bytes: Option<u64>,
    pub disk_free_bytes: Option<u64>,
}

/// Which alarms are raised, judged sample by sample with hysteresis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlarmState {
    raised: Vec<Alarm>,
}

impl AlarmState {
    /// Takes a sample; returns the alarms raised and cleared by it.
    pub fn observe(&mut self, sample: Sample, limits: Limits) -> (Vec<Alarm>, Vec<Alarm>) {
        let mut raised = Vec::new();
        let mut cleared = Vec::new();
        let readings = [
            (Resource::Memory, sample.resident_bytes, limits.memory_bytes),
            (
                Resource::Disk,
                sample.disk_free_bytes,
                limits.disk_free_bytes,
            ),
        ];
        for (resource, reading, limit) in readings {
            let was = self.raised.iter().position(|a| a.resource == resource);
            let (Some(reading), Some(limit)) = (reading, limit) else {
                // Off, or unreadable: an alarm nobody can see is no reason to
                // refuse writes.
                if let Some(i) = was {
                    cleared.push(self.raised.remove(i));
                }
                continue;
            };
            let alarm = Alarm {
                resource,
                reading,
                limit,
            };
            let margin = limit / 100 * CLEAR_MARGIN_PERCENT;
            let (over, clear) = match resource {
                Resource::Memory => (reading > limit, reading < limit.saturating_sub(margin)),
                Resource::Disk => (reading < limit, reading > limit.saturating_add(margin)),
            };
            match was {
                None if over => {
                    raised.push(alarm.clone());
                    self.raised.push(alarm);
                }
                Some(i) if clear => cleared.push(self.raised.remove(i)),
                Some(i) => self.raised[i] = alarm,
                None => {}
            }
        }
        (raised, cleared)
    }

    pub fn raised(&self) -> &[Alarm] {
        &self.raised
    }
}

struct PeerAlarms {
    alarms: Vec<Alarm>,
    heard: Instant,
}

/// What this node knows of alarms: its own, and its peers' from heartbeats.
#[derive(Default)]
pub struct Alarms {
    own: Mutex<AlarmState>,
    peers: Mutex<HashMap<NodeId, PeerAlarms>>,
    last: Mutex<(Sample, Option<Limits>)>,
}

impl Alarms {
    pub fn own(&self) -> Vec<Alarm> {
        self.own.lock().raised().to_vec()
    }

    /// The latest sample and the limits it was judged by (none before the
    /// first sample).
    pub fn last_sample(&self) -> (Sample, Option<Limits>) {
        *self.last.lock()
    }

    fn observe(&self, sample: Sample, limits: Limits) -> (Vec<Alarm>, Vec<Alarm>) {
        *self.last.lock() = (sample, Some(limits));
        self.own.lock().observe(sample, limits)
    }

    pub fn heard_from(&self, peer: NodeId, alarms: Vec<Alarm>, now: Instant) {
        self.peers
            .lock()
            .insert(peer, PeerAlarms { alarms, heard: now });
    }

    /// A peer's alarms as last heard, while they still count.
    pub fn of_peer(&self, peer: NodeId, now: Instant) -> Vec<Alarm> {
        self.peers
            .lock()
            .get(&peer)
            .filter(|p| now.duration_since(p.heard) < PEER_ALARM_TTL)
            .map(|p| p.alarms.clone())
            .unwrap_or_default()
    }

    /// Why a publish must be refused now, if it must: the first alarm of
    /// this node, else of a peer heard from lately.
    pub fn blocking(&self, me: NodeId, now: Instant) -> Option<(NodeId, Alarm)> {
        if let Some(alarm) = self.own.lock().raised().first() {
            return Some((me, alarm.clone()));
        }
        // On every publish: no allocation unless a peer is in alarm.
        self.peers
            .lock()
            .iter()
            .filter(|(_, p)| now.duration_since(p.heard) < PEER_ALARM_TTL)
            .filter_map(|(id, p)| p.alarms.first().map(|a| (*id, a)))
            .min_by_key(|(id, _)| *id)
            .map(|(id, a)| (id, a.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn limits() -> Limits {
        Limits {
            memory_bytes: Some(100 * MIB),
            disk_free_bytes: Some(100 * MIB),
        }
    }

    fn sample(resident: u64, free: u64) -> Sample {
        Sample {
            resident_bytes: Some(resident * MIB),
            disk_free_bytes: Some(free * MIB),
        }
    }

    #[test]
    fn alarms_raise_past_the_limit_and_clear_only_below_the_margin() {
        let mut s = AlarmState::default();
        assert_eq!(s.observe(sample(50, 500), limits()), (vec![], vec![]));
        let (raised, _) = s.observe(sample(101, 99), limits());
        assert_eq!(raised.len(), 2);
        // At the limit again, but not below it by the margin: still raised.
        assert_eq!(s.observe(sample(98, 102), limits()), (vec![], vec![]));
        assert_eq!(s.raised()[0].reading, 98 * MIB);
        let (_, cleared) = s.observe(sample(90, 110), limits());
        assert_eq!(cleared.len(), 2);
        assert!(s.raised().is_empty());
    }

    #[test]
    fn an_alarm_turned_off_or_unreadable_clears() {
        let mut s = AlarmState::default();
        s.observe(sample(200, 10), limits());
        assert_eq!(s.raised().len(), 2);
        let off = Limits {
            memory_bytes: None,
            disk_free_bytes: Some(100 * MIB),
        };
        let unreadable = Sample {
            resident_bytes: Some(200 * MIB),
            disk_free_bytes: None,
        };
        let (_, cleared) = s.observe(unreadable, off);
        assert_eq!(cleared.len(), 2);
    }

    #[test]
    fn peers_block_while_heard_from_and_not_after() {
        let alarms = Alarms::default();
        let now = Instant::now();
        assert!(alarms.blocking(1, now).is_none());
        let alarm = Alarm {
            resource: Resource::Disk,
            reading: MIB,
            limit: 2 * MIB,
        };
        alarms.heard_from(3, vec![alarm.clone()], now);
        assert_eq!(alarms.blocking(1, now), Some((3, alarm)));
        assert!(alarms.blocking(1, now + PEER_ALARM_TTL).is_none());
        alarms.heard_from(3, vec![], now);
        assert!(alarms.blocking(1, now).is_none());
    }

    #[test]
    fn the_reason_names_resource_reading_and_limit() {
        let alarm = Alarm {
            resource: Resource::Memory,
            reading: 300 * MIB,
            limit: 256 * MIB,
        };
        assert_eq!(
            alarm.to_string(),
            "memory alarm: 300 MiB resident, limit 256 MiB"
        );
    }
}
