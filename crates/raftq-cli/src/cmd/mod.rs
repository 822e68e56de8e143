//! One module per command.

pub mod auth;
pub mod cert;
pub mod cluster;
pub mod consume;
pub mod consume_stream;
pub mod publish;
pub mod queue;
pub mod read;
pub mod replicas;
