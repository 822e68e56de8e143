//! openraft wiring: the type configuration, the state machine and when it
//! snapshots.

pub mod background;
pub mod snapshot_trigger;
pub mod state_machine;
pub mod types;
