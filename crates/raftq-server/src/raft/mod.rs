//! openraft wiring: the type configuration and the state machine.

pub mod state_machine;
pub mod types;
