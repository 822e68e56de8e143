//! Generated gRPC types for raftq: the public API (`raftq.v1`) and the node-to-node
//! Raft transport (`raftq.internal.v1`).

/// Public API: `QueueService` and `AdminService`.
pub mod v1 {
    tonic::include_proto!("raftq.v1");
}

/// Node-to-node transport. Not stable, not for clients.
pub mod internal {
    tonic::include_proto!("raftq.internal.v1");
}

/// Response metadata that carries what a client acts on, typed, beside the
/// status message (which is for people and may be reworded).
pub mod metadata {
    /// On UNAVAILABLE: `not-applied` (refused before anything was proposed:
    /// any request may be resent) or `maybe-applied` (it may have taken
    /// effect: resend only what is idempotent).
    pub const RETRY: &str = "raftq-retry";
    pub const NOT_APPLIED: &str = "not-applied";
    pub const MAYBE_APPLIED: &str = "maybe-applied";
    /// The queue's leader, when the answering node knows it: node id and the
    /// address clients reach it at.
    pub const LEADER_ID: &str = "raftq-leader-id";
    pub const LEADER_ADDR: &str = "raftq-leader-addr";
    /// On RESOURCE_EXHAUSTED from a memory or disk alarm: the resource
    /// (`memory` or `disk`) and the node whose alarm refused the publish. The
    /// request was not applied; it may be sent again once the alarm clears.
    pub const ALARM: &str = "raftq-alarm";
    pub const ALARM_NODE: &str = "raftq-alarm-node";

    use tonic::metadata::MetadataMap;

    /// The leader named in `meta`: node id and address, when both are there.
    pub fn leader(meta: &MetadataMap) -> Option<(u64, String)> {
        let id = meta.get(LEADER_ID)?.to_str().ok()?.parse().ok()?;
        let addr = meta.get(LEADER_ADDR)?.to_str().ok()?;
        (!addr.is_empty()).then(|| (id, addr.to_string()))
    }

    /// The alarm named in `meta`: resource and node in alarm.
    pub fn alarm(meta: &MetadataMap) -> Option<(String, u64)> {
        let resource = meta.get(ALARM)?.to_str().ok()?.to_string();
        let node = meta.get(ALARM_NODE)?.to_str().ok()?.parse().ok()?;
        Some((resource, node))
    }
}

/// What a failed call's typed causes say about the connection, for client and
/// server alike (never read from error text).
pub mod transport {
    use std::error::Error;
    use std::io::ErrorKind;

    /// Whether some cause of `status` is an I/O error of a kind `wanted` accepts,
    /// directly or inside an HTTP/2 error.
    pub fn io_cause(status: &tonic::Status, wanted: impl Fn(ErrorKind) -> bool) -> bool {
        let mut cause: Option<&(dyn Error + 'static)> = status.source();
        while let Some(e) = cause {
            let io = e
                .downcast_ref::<std::io::Error>()
                .or_else(|| e.downcast_ref::<h2::Error>().and_then(|h| h.get_io()));
            if io.is_some_and(|io| wanted(io.kind())) {
                return true;
            }
            cause = e.source();
        }
        false
    }

    /// Whether the call never reached the peer: no connection could be made,
    /// so it cannot have taken effect there.
    pub fn never_connected(status: &tonic::Status) -> bool {
        io_cause(status, |kind| {
            matches!(
                kind,
                ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
            )
        })
    }
}

/// Encoded `FileDescriptorSet` of every raftq proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/raftq_descriptor.bin"));
