//! What a queue stores and hands out.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Position of a message in its queue: dense, starting at 0, assigned at publish
/// and never reused, so it identifies a message across failovers.
pub type Offset = u64;

/// Identifies an attached consumer. The server chooses it and keeps it unique.
pub type ConsumerId = u64;

/// A message as published: opaque payload plus string headers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Opaque bytes; `Bytes` so that handing a message to a consumer is a cheap clone.
    pub payload: Bytes,
    /// Application headers; ordered so that every replica serializes them identically.
    pub headers: BTreeMap<String, String>,
}

impl Message {
    /// A message without headers.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self {
            payload: payload.into(),
            headers: BTreeMap::new(),
        }
    }

    /// Adds a header, replacing any previous value under the same name.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Payload length as counted by `max_message_bytes` and `max_bytes`.
    pub fn size(&self) -> u64 {
        self.payload.len() as u64
    }
}

/// One delivery of a message to a consumer, produced by dispatch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The message's offset; the consumer settles by it.
    pub offset: Offset,
    /// The message as published.
    pub message: Message,
    /// Earlier deliveries of this message that ended without an ack.
    pub delivery_count: u32,
    /// `delivery_count > 0`: the message may have been processed before.
    pub redelivered: bool,
    /// Leader time of the publish.
    pub publish_time_ms: u64,
}

/// A stored message seen by `browse`, without consuming it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredView {
    /// The message's offset.
    pub offset: Offset,
    /// The message as published.
    pub message: Message,
    /// Deliveries so far that ended without an ack.
    pub delivery_count: u32,
    /// Leader time of the publish.
    pub publish_time_ms: u64,
}
