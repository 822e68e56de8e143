//! Everything that happened in a run, as the clients saw it: every publish
//! attempt and its outcome, every delivery, every ack and its outcome, every
//! fault, and every leader a node reported. Times are ms since the run began.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Confirmed: stored at `offset`.
    PublishOk {
        t: u64,
        queue: String,
        msg: u64,
        producer: u32,
        seq: u64,
        offset: u64,
        /// Send to confirm.
        lat_ms: u64,
    },
    /// Not confirmed: may or may not have been stored.
    PublishFailed {
        t: u64,
        queue: String,
        msg: u64,
        producer: u32,
        seq: u64,
    },
    Delivered {
        t: u64,
        queue: String,
        msg: u64,
        offset: u64,
        redelivered: bool,
        /// A consumer session: deliveries within one are ordered.
        session: u64,
    },
    /// The ack of `offset` was committed.
    AckOk {
        t: u64,
        queue: String,
        msg: u64,
        offset: u64,
    },
    Fault {
        t: u64,
        end: u64,
        kind: String,
        detail: String,
        /// The queue whose leader the fault targeted, if any.
        queue: Option<String>,
    },
    /// Node `node` returned `msg` at `offset` of a stream. `final_read`: from
    /// the read of the whole stream on every node after the run.
    StreamRead {
        t: u64,
        queue: String,
        node: u64,
        offset: u64,
        msg: u64,
        final_read: bool,
    },
    /// The after-run read of a whole stream on `node` ended: `ok` if it got
    /// to the end, else `detail` says why (its replica is then unverified).
    StreamReplicaRead {
        t: u64,
        queue: String,
        node: u64,
        ok: bool,
        detail: String,
    },
    /// Node `reporter` said `leader` leads `queue` in `term`.
    Leader {
        t: u64,
        queue: String,
        term: u64,
        leader: u64,
        reporter: u64,
    },
}

/// The payload a message carries, from which a delivery is traced back.
pub fn payload(queue: &str, msg: u64, producer: u32, seq: u64) -> String {
    format!("chaos q={queue} m={msg} p={producer} s={seq}")
}

/// `msg` from a payload made by [`payload`]; `None` for anything else.
pub fn msg_of(payload: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(payload).ok()?;
    let rest = text.strip_prefix("chaos ")?;
    rest.split(' ')
        .find_map(|kv| kv.strip_prefix("m="))
        .and_then(|m| m.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        assert_eq!(msg_of(payload("q", 42, 1, 7).as_bytes()), Some(42));
        assert_eq!(msg_of(b"hello"), None);
        assert_eq!(msg_of(&[0xff, 0xfe]), None);
    }

    #[test]
    fn events_are_json_lines() {
        let e = Event::AckOk {
            t: 1,
            queue: "q".into(),
            msg: 2,
            offset: 3,
        };
        let line = serde_json::to_string(&e).unwrap_or_default();
        assert!(line.contains("\"type\":\"ack_ok\""));
        let back: Event = serde_json::from_str(&line).unwrap_or(Event::AckOk {
            t: 0,
            queue: String::new(),
            msg: 0,
            offset: 0,
        });
        assert_eq!(back, e);
    }
}
