//! When a group builds a snapshot: once the log applied since the last one is
//! as large as the state itself, within a floor and a cap.
//!
//! A snapshot writes the whole state, so counting entries (openraft's own
//! policy) makes a growing queue pay more and more for each one: at 2,000
//! entries a queue of 450,000 messages rewrote about 100 MB every few seconds
//! and lost a fifth of its publish rate. Tying the interval to the state's size
//! bounds that cost to one byte of snapshot per byte of log. The floor keeps
//! small queues from snapshotting at every entry; the cap bounds what a replica
//! keeps in its unpurged log (sled holds much of it in memory) and replays on a
//! restart.

/// Estimated bytes of one stored message beyond its payload in a snapshot:
/// its slot (offset, times, delivery count, headers pointer) and framing.
pub const STATE_BYTES_PER_MESSAGE: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotTrigger {
    /// Never snapshot before this much log (bytes) has been applied.
    pub min_log_bytes: u64,
    /// Always snapshot once this much log (bytes) has been applied.
    pub max_log_bytes: u64,
}

impl SnapshotTrigger {
    /// Bytes of log since the last snapshot at which the next one is due.
    pub fn threshold(&self, state_bytes: u64) -> u64 {
        let cap = self.max_log_bytes.max(self.min_log_bytes);
        state_bytes.clamp(self.min_log_bytes, cap)
    }

    pub fn is_due(&self, log_bytes_since_snapshot: u64, state_bytes: u64) -> bool {
        log_bytes_since_snapshot >= self.threshold(state_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    fn trigger() -> SnapshotTrigger {
        SnapshotTrigger {
            min_log_bytes: 16 * MIB,
            max_log_bytes: 128 * MIB,
        }
    }

    #[test]
    fn small_state_waits_for_the_floor_and_large_state_for_the_cap() {
        let t = trigger();
        assert!(!t.is_due(16 * MIB - 1, 0));
        assert!(t.is_due(16 * MIB, 0));
        assert!(!t.is_due(50 * MIB, 60 * MIB));
        assert!(t.is_due(60 * MIB, 60 * MIB));
        assert!(t.is_due(128 * MIB, 10_000 * MIB));
    }

    #[test]
    fn a_cap_below_the_floor_means_the_floor() {
        let t = SnapshotTrigger {
            min_log_bytes: 10,
            max_log_bytes: 5,
        };
        assert_eq!(t.threshold(0), 10);
        assert_eq!(t.threshold(1_000), 10);
    }

    proptest! {
        #[test]
        fn threshold_stays_between_floor_and_cap(
            min in 0u64..1 << 40, extra in 0u64..1 << 40, state in any::<u64>()
        ) {
            let t = SnapshotTrigger { min_log_bytes: min, max_log_bytes: min + extra };
            let th = t.threshold(state);
            prop_assert!(th >= min && th <= min + extra);
        }

        /// Below the cap, a snapshot never writes more bytes than the log it
        /// replaces: write amplification of at most one.
        #[test]
        fn below_the_cap_the_interval_is_at_least_the_state(
            min in 0u64..1 << 30, extra in 0u64..1 << 40, state in 0u64..1 << 40
        ) {
            let t = SnapshotTrigger { min_log_bytes: min, max_log_bytes: min + extra };
            if state <= min + extra {
                prop_assert!(t.threshold(state) >= state);
            }
        }

        #[test]
        fn a_larger_state_never_snapshots_sooner(
            a in any::<u64>(), b in any::<u64>(), log in any::<u64>()
        ) {
            let t = trigger();
            let (small, large) = (a.min(b), a.max(b));
            prop_assert!(t.threshold(small) <= t.threshold(large));
            if t.is_due(log, large) {
                prop_assert!(t.is_due(log, small));
            }
        }
    }
}
