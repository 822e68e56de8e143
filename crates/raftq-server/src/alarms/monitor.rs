//! Samples this node's memory and free disk every second and raises or clears
//! its alarms.

use std::sync::Arc;
use std::time::Duration;

use super::{probe, Limits, Sample};
use crate::node::Node;

pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Share of the memory this process may use (the machine's or its cgroup's)
/// that the memory alarm allows by default, as RabbitMQ's high watermark.
pub const DEFAULT_MEMORY_SHARE_PERCENT: u64 = 60;

/// Memory within this share of its limit is worth giving back to the system
/// before it is measured: the alarm should judge what is in use, not what the
/// allocator kept.
const TRIM_FROM_PERCENT: u64 = 90;

/// The limits this node runs with: `memory_limit_mib` of `None` means the
/// default share of total memory, 0 turns an alarm off.
pub fn limits(memory_limit_mib: Option<u64>, disk_free_limit_mib: u64) -> Limits {
    const MIB: u64 = 1024 * 1024;
    let memory_bytes = match memory_limit_mib {
        Some(0) => None,
        Some(mib) => Some(mib.saturating_mul(MIB)),
        None => probe::total_memory_bytes().map(|t| t / 100 * DEFAULT_MEMORY_SHARE_PERCENT),
    };
    let disk_free_bytes =
        (disk_free_limit_mib > 0).then(|| disk_free_limit_mib.saturating_mul(MIB));
    Limits {
        memory_bytes,
        disk_free_bytes,
    }
}

pub async fn run(node: Arc<Node>) {
    let limits = limits(
        node.config().memory_limit_mib,
        node.config().disk_free_limit_mib,
    );
    tracing::info!(
        memory_limit_bytes = ?limits.memory_bytes,
        disk_free_limit_bytes = ?limits.disk_free_bytes,
        "resource alarms armed"
    );
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (previous, _) = node.alarms().last_sample();
        let trim = match (previous.resident_bytes, limits.memory_bytes) {
            (Some(resident), Some(limit)) => resident >= limit / 100 * TRIM_FROM_PERCENT,
            _ => false,
        };
        let dir = node.config().data_dir.clone();
        let sampled = tokio::task::spawn_blocking(move || {
            if trim {
                probe::release_freed_memory();
            }
            Sample {
                resident_bytes: probe::resident_bytes(),
                disk_free_bytes: probe::free_disk_bytes(&dir),
            }
        })
        .await;
        let Ok(sample) = sampled else {
            continue;
        };
        let (raised, cleared) = node.alarms().observe(sample, limits);
        for alarm in raised {
            node.metrics().alarms_raised.inc();
            tracing::warn!(
                node = node.id(),
                "{alarm}: publishes are refused cluster-wide until it clears (consumers and acks keep working)"
            );
        }
        for alarm in cleared {
            tracing::info!(
                node = node.id(),
                "{} alarm cleared: publishes accepted again",
                alarm.resource.as_str()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_turns_an_alarm_off_and_no_memory_limit_means_a_share_of_memory() {
        let off = limits(Some(0), 0);
        assert_eq!(off.memory_bytes, None);
        assert_eq!(off.disk_free_bytes, None);
        let set = limits(Some(512), 256);
        assert_eq!(set.memory_bytes, Some(512 << 20));
        assert_eq!(set.disk_free_bytes, Some(256 << 20));
        let auto = limits(None, 1)
            .memory_bytes
            .expect("total memory is readable here");
        assert!(auto > 0);
    }
}
