//! Public gRPC services, one module per RPC family.

pub mod admin;
pub mod commit;
pub mod consume;
mod consume_window;
pub mod info;
pub mod limits;
pub mod membership;
pub mod publish;
pub mod publish_key;
pub mod queue_service;
pub mod read;
pub mod read_index;
pub mod stream;

/// Largest gRPC response we send or read back from a peer (a page of reads);
/// requests are limited by `max_request_bytes`, see `limits`.
pub const MAX_GRPC_MESSAGE: usize = 64 * 1024 * 1024;
