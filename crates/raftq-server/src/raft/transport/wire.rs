//! Encoding of openraft messages inside protobuf `bytes` (bincode 2, serde).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map(Bytes::from)
}

/// Payloads come from peers: lengths inside them are bounded by the
/// payload's own size (see `raftq_store::decode_untrusted`), never trusted.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    raftq_store::decode_untrusted(bytes)
}
