//! raftqd: a raftq node. Every queue is its own Raft group (openraft) stored in
//! the node's sled database; any node accepts any request.
//!
//! The layout, from the edge inwards:
//! - [`server`] serves everything on one port: the public API ([`api`]: one
//!   file per kind of request, plus [`api::limits`] for hostile input) and the
//!   peer transport. [`router`] sends a request to the node that can answer it.
//! - [`boot`] starts a node: its store, the metadata group, its tasks.
//! - [`node`] is what the tasks share: the store, the groups, peer channels,
//!   failover, sessions, metrics and alarms. It holds data and lookups only.
//! - [`failover`]: when Raft timers run and when elections start early. A pure
//!   supervisor decides; one driver task applies its decisions to openraft.
//! - [`leader`]: what a queue group's leader does besides answering requests
//!   (consumer sessions, proposal order, consumer reset, ticks, dead letters).
//! - [`meta`]: the catalog of queues in the metadata group, and reconciling
//!   this node's replicas with it; [`self_healing`]: what the metadata leader
//!   re-places and rebalances by itself.
//! - [`raft`]: openraft wiring: type configuration, the state machine, its
//!   snapshots, and the gRPC transport between peers.
//! - [`repair`]: replicas whose data failed its checks stay out of Raft
//!   until their leader lets them go, then are caught up afresh.
//! - [`tls`]: certificates for clients and peers, reloaded when they change,
//!   and the check that a peer speaks for the node it claims to be; [`auth`]:
//!   users, tokens, per-queue rights and the audit log.
//! - [`alarms`] (memory and disk), [`metrics`], [`config`], [`error`] (the
//!   one mapping of errors to gRPC status codes and typed metadata), [`ids`].
//!
//! The queue semantics themselves live in `raftq-queue` (pure, no I/O) and
//! the storage in `raftq-store`.

// deny, not forbid: the one exception is malloc_trim after a snapshot
// (raft/state_machine.rs), which glibc exposes only as an FFI call.
#![deny(unsafe_code)]
// openraft's trait signatures impose its large `StorageError`; boxing it locally
// would only add conversions at every call.
#![allow(clippy::result_large_err)]

pub mod alarms;
pub mod api;
pub mod auth;
pub mod boot;
pub mod config;
pub mod error;
pub mod failover;
pub mod ids;
pub mod leader;
pub mod meta;
pub mod metrics;
pub mod node;
pub mod raft;
pub mod repair;
pub mod router;
pub mod self_healing;
pub mod server;
pub mod tls;
