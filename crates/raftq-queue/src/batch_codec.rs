//! Encoding of a published batch in the Raft log: all payloads in one byte
//! string, then each message's length and headers.
//!
//! A follower (and every node replaying its log) decodes an entry from one
//! buffer. Decoded message by message, each payload became an allocation of its
//! own: a million-message backlog paid a million allocator headers and scattered
//! long-lived 256-byte blocks between short-lived buffers. Decoded this way, an
//! entry's payloads are one allocation and each message's `Bytes` is a slice of
//! it. The price: an entry's buffer is freed only when its last message leaves,
//! which for a queue consumed roughly in order is when it would anyway.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::message::Message;

/// Serializes as a byte string (serde's `Vec<u8>` would be a sequence of u8).
struct Blob<'a>(&'a [u8]);

impl Serialize for Blob<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

pub(crate) fn serialize<S: Serializer>(messages: &[Message], s: S) -> Result<S::Ok, S::Error> {
    let total = messages.iter().map(|m| m.payload.len()).sum();
    let mut blob = Vec::with_capacity(total);
    let mut meta = Vec::with_capacity(messages.len());
    for message in messages {
        blob.extend_from_slice(&message.payload);
        let len = u32::try_from(message.payload.len())
            .map_err(|_| S::Error::custom("payload longer than 4 GiB"))?;
        meta.push((len, &message.headers));
    }
    (Blob(&blob), meta).serialize(s)
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Message>, D::Error> {
    type Meta = Vec<(u32, BTreeMap<String, String>)>;
    let (blob, meta): (Bytes, Meta) = Deserialize::deserialize(d)?;
    let mut messages = Vec::with_capacity(meta.len());
    let mut at = 0usize;
    for (len, headers) in meta {
        // Entries come from peers: lengths that do not add up are an error,
        // never a panic.
        let end = at
            .checked_add(len as usize)
            .filter(|&end| end <= blob.len())
            .ok_or_else(|| D::Error::custom("batch payload lengths exceed the batch"))?;
        messages.push(Message {
            payload: blob.slice(at..end),
            headers,
        });
        at = end;
    }
    if at != blob.len() {
        return Err(D::Error::custom("batch payload bytes left over"));
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Batch(#[serde(with = "super")] Vec<Message>);

    fn round_trip(batch: &Batch) -> Batch {
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(batch, config).unwrap();
        bincode::serde::decode_from_slice(&bytes, config).unwrap().0
    }

    #[test]
    fn payloads_and_headers_survive_and_share_one_buffer() {
        let batch = Batch(vec![
            Message::new("first"),
            Message::new(""),
            Message::new(vec![0u8, 255, 7]).with_header("k", "v"),
        ]);
        let decoded = round_trip(&batch);
        assert_eq!(decoded, batch);
        let base = decoded.0[0].payload.as_ptr() as usize;
        assert_eq!(decoded.0[2].payload.as_ptr() as usize, base + 5);
    }

    #[test]
    fn lengths_beyond_the_buffer_are_refused() {
        let config = bincode::config::standard();
        let forged = (
            Blob(b"abc"),
            vec![
                (2u32, BTreeMap::<String, String>::new()),
                (5, BTreeMap::new()),
            ],
        );
        let bytes = bincode::serde::encode_to_vec(&forged, config).unwrap();
        let result: Result<(Batch, usize), _> = bincode::serde::decode_from_slice(&bytes, config);
        assert!(result.is_err());
        let short = (
            Blob(b"abcdef"),
            vec![(2u32, BTreeMap::<String, String>::new())],
        );
        let bytes = bincode::serde::encode_to_vec(&short, config).unwrap();
        let result: Result<(Batch, usize), _> = bincode::serde::decode_from_slice(&bytes, config);
        assert!(result.is_err());
    }
}
