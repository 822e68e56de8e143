//! What can be published: anything that converts to a payload, or a full
//! [`PublishMessage`] with headers.

use std::collections::HashMap;

use bytes::Bytes;
use raftq_proto::v1::PublishMessage;

/// Converts into a message to publish. Implemented for payload types (no
/// headers) and for [`PublishMessage`] itself.
///
/// ```
/// use raftq_client::{message_with_headers, IntoMessage};
/// let plain = "hello".into_message();
/// assert!(plain.headers.is_empty());
/// let tagged = message_with_headers("hello", [("type", "greeting")]);
/// assert_eq!(tagged.headers["type"], "greeting");
/// ```
pub trait IntoMessage {
    fn into_message(self) -> PublishMessage;
}

impl IntoMessage for PublishMessage {
    fn into_message(self) -> PublishMessage {
        self
    }
}

macro_rules! payload_types {
    ($($t:ty),*) => {$(
        impl IntoMessage for $t {
            fn into_message(self) -> PublishMessage {
                PublishMessage {
                    payload: Bytes::from(self),
                    headers: HashMap::new(),
                }
            }
        }
    )*};
}

payload_types!(Bytes, Vec<u8>, String);

impl IntoMessage for &str {
    fn into_message(self) -> PublishMessage {
        self.as_bytes().into_message()
    }
}

impl IntoMessage for &[u8] {
    fn into_message(self) -> PublishMessage {
        PublishMessage {
            payload: Bytes::copy_from_slice(self),
            headers: HashMap::new(),
        }
    }
}

/// A message with headers.
pub fn message_with_headers<K: Into<String>, V: Into<String>>(
    payload: impl Into<Bytes>,
    headers: impl IntoIterator<Item = (K, V)>,
) -> PublishMessage {
    PublishMessage {
        payload: payload.into(),
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
    }
}
