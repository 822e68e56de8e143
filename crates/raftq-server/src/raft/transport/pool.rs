//! Two lazily connected gRPC channels per peer address, each its own TCP
//! connection, shared by every Raft group: a control lane for what keeps
//! leadership and liveness (heartbeats, votes, read index, small appends) and a
//! bulk lane for what can be large (big appends, snapshots, forwarded client
//! requests). A 32 MiB batch on the wire never delays a heartbeat behind it in
//! one TCP stream, so it cannot cause the election it would otherwise cause.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::raft::types::{GroupId, NodeId};
use crate::tls::reload::Reloading;

/// Which connection to a peer a request travels on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Lane {
    Control,
    Bulk,
}

/// AppendEntries payloads up to this size are control traffic: one batch of
/// small messages, or a heartbeat.
pub const CONTROL_PAYLOAD_MAX: usize = 256 * 1024;

impl Lane {
    pub fn for_payload(bytes: usize) -> Lane {
        if bytes <= CONTROL_PAYLOAD_MAX {
            Lane::Control
        } else {
            Lane::Bulk
        }
    }
}

#[derive(Default)]
pub struct ChannelPool {
    channels: Mutex<HashMap<(String, Lane), Channel>>,
    /// With TLS: this node's identity and the cluster's CA, and the
    /// generation of them the channels above were made with.
    tls: Option<Arc<Reloading>>,
    tls_generation: AtomicU64,
    /// Raft RPCs sent, by kind: the idle cost of many groups is mostly
    /// heartbeats (empty AppendEntries), so it is worth watching.
    pub sent: PeerRpcCounts,
    /// Snapshot bytes sent so far per (group, follower), while a transfer is
    /// on its way: catch-up progress for queue info.
    pub snapshot_progress: SnapshotProgress,
}

#[derive(Default)]
pub struct SnapshotProgress(Mutex<HashMap<(GroupId, NodeId), u64>>);

impl SnapshotProgress {
    /// A chunk ending at byte `end` arrived; `done` ends the transfer.
    pub fn chunk_sent(&self, group: GroupId, to: NodeId, end: u64, done: bool) {
        let mut sent = self.0.lock();
        if done {
            sent.remove(&(group, to));
        } else {
            sent.insert((group, to), end);
        }
    }

    pub fn sent(&self, group: GroupId, to: NodeId) -> u64 {
        let sent = self.0.lock();
        sent.get(&(group, to)).copied().unwrap_or(0)
    }
}

#[derive(Default)]
pub struct PeerRpcCounts {
    pub append_entries: AtomicU64,
    pub votes: AtomicU64,
    pub snapshots: AtomicU64,
    /// Empty appends that keep a follower's election timer at bay during a
    /// long transfer to it.
    pub keepalives: AtomicU64,
}

/// HTTP/2 receive windows for every connection a node opens or accepts.
/// The 64 KiB default is smaller than one batch of 256 messages, so each
/// AppendEntries or publish would wait a round trip for a window update
/// half-way.
pub const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

impl ChannelPool {
    pub fn new(tls: Option<Arc<Reloading>>) -> Self {
        Self {
            tls,
            ..Default::default()
        }
    }

    pub fn get(&self, addr: &str, lane: Lane) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.channels.lock();
        if let Some(tls) = &self.tls {
            // Certificates were reloaded: dial again with the new ones (open
            // requests finish on the channels they hold).
            let generation = tls.generation();
            if self.tls_generation.swap(generation, Ordering::AcqRel) != generation {
                channels.clear();
            }
        }
        let key = (addr.to_string(), lane);
        if let Some(ch) = channels.get(&key) {
            return Ok(ch.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.peer_client().domain_name(host_of(addr)))?;
        }
        let endpoint = endpoint
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            // Keepalive pings notice a peer that vanished without a FIN (SIGSTOP,
            // a cut cable) well before TCP would.
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true)
            .initial_stream_window_size(Some(STREAM_WINDOW))
            .initial_connection_window_size(Some(CONNECTION_WINDOW));
        let ch = endpoint.connect_lazy();
        channels.insert(key, ch.clone());
        Ok(ch)
    }
}

/// The host of `host:port` (IPv6 without its brackets): the name the peer's
/// certificate must carry.
fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}
