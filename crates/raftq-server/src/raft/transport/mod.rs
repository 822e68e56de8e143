//! The Raft transport between peers over gRPC: the two lanes to each peer
//! ([`pool`]), the client side of openraft's network traits ([`client`]), the
//! server side ([`server`]), small control-lane calls ([`control`]) and the
//! encoding of payloads ([`wire`]).

pub mod client;
pub mod control;
pub mod pool;
pub mod server;
pub mod wire;
