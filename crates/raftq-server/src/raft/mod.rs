//! openraft wiring: the type configuration, the state machine, when it
//! snapshots, and the gRPC transport between peers.

pub mod background;
pub mod snapshot_requests;
pub mod snapshot_trigger;
pub mod state_machine;
pub mod transport;
pub mod types;
