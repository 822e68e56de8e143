//! Public gRPC services, one module per RPC family.

pub mod admin;
pub mod commit;
pub mod consume;
mod consume_window;
pub mod info;
pub mod publish;
pub mod queue_service;
pub mod read;
pub mod stream;

/// Largest gRPC message we accept or send: a publish batch of many messages, or a
/// snapshot chunk. Single messages are limited by each queue's max_message_bytes.
pub const MAX_GRPC_MESSAGE: usize = 64 * 1024 * 1024;
