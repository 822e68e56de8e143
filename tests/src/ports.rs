//! Free TCP ports for test nodes.
//!
//! Ports come from below the kernel's ephemeral range (32768-60999 by default):
//! a port handed out by `bind(0)` and released could be taken, before `raftqd`
//! binds it, by the source port of any outgoing connection on the machine, and a
//! node restarted on "its" port would then fail to listen. Below that range only
//! an explicit `bind` can take a port, and each one is checked free before use.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;

const FIRST: u16 = 20_000;
const LAST: u16 = 32_000;

/// Next candidate; starts at a per-process random point so that test binaries
/// run one after another (or by two developers at once) rarely collide.
fn cursor() -> &'static AtomicU16 {
    static CURSOR: OnceLock<AtomicU16> = OnceLock::new();
    CURSOR.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seed = nanos ^ std::process::id().wrapping_mul(2_654_435_761);
        AtomicU16::new(FIRST + (seed % u32::from(LAST - FIRST)) as u16)
    })
}

/// A port on 127.0.0.1 that nobody listens on right now, distinct from every
/// other port this process handed out before (until the range wraps around).
pub fn free_port() -> u16 {
    for _ in 0..(LAST - FIRST) {
        let port = cursor().fetch_add(1, Ordering::Relaxed);
        let port = if (FIRST..LAST).contains(&port) {
            port
        } else {
            // Wrapped past the range (after 12,000 ports): restart at its
            // bottom. Two threads racing here may both get FIRST; the bind()
            // check below catches that only if the first one listens already.
            cursor().store(FIRST + 1, Ordering::Relaxed);
            FIRST
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1 in {FIRST}..{LAST}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_outside_the_ephemeral_range() {
        let ports: std::collections::BTreeSet<u16> = (0..200).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 200);
        assert!(ports.iter().all(|p| (FIRST..LAST).contains(p)));
    }
}
