//! Failover: how this node turns Raft timers on and off and moves elections
//! earlier than openraft alone would. [`supervisor`] decides, purely, from what
//! [`handle`] is told; [`driver`] is the one task that applies its actions to
//! openraft and sends node heartbeats.

pub mod driver;
pub mod handle;
pub mod heartbeat;
pub mod peers;
pub mod quiet;
pub mod supervisor;
pub mod vote;

pub use handle::Failover;
pub use peers::DOWN_AFTER;
