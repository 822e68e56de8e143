//! One place that fixes the on-disk encoding (bincode 2, standard config), so the
//! log, votes and snapshots can never drift apart in format.

use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
}

/// What decoding one input byte can legitimately claim: bincode counts a
/// value at its size in memory, so a one-byte varint claims a u64's 8 bytes.
pub(crate) const CLAIM_PER_BYTE: u64 = 8;

/// Runs `$body` with `$cfg` bound to the standard config limited to what
/// `$len` input bytes can claim, rounded up to a power of 8 (the limit is a
/// type parameter, so it takes one of a few fixed values).
macro_rules! with_input_limit {
    ($len:expr, $cfg:ident => $body:expr) => {{
        let claim = ($len as u64).saturating_mul($crate::codec::CLAIM_PER_BYTE);
        let standard = bincode::config::standard();
        if claim <= 1 << 20 {
            let $cfg = standard.with_limit::<{ 1 << 20 }>();
            $body
        } else if claim <= 1 << 23 {
            let $cfg = standard.with_limit::<{ 1 << 23 }>();
            $body
        } else if claim <= 1 << 26 {
            let $cfg = standard.with_limit::<{ 1 << 26 }>();
            $body
        } else if claim <= 1 << 29 {
            let $cfg = standard.with_limit::<{ 1 << 29 }>();
            $body
        } else if claim <= 1 << 32 {
            let $cfg = standard.with_limit::<{ 1 << 32 }>();
            $body
        } else {
            let $cfg = standard.with_limit::<{ 1 << 35 }>();
            $body
        }
    }};
}
pub(crate) use with_input_limit;

/// Decodes bytes that may come from a peer or a damaged disk. Unlimited,
/// bincode allocates whatever a length prefix claims before reading it: 11
/// bytes claiming a 1 TiB string abort the process. The limit follows from
/// the input's length, so a valid value always fits and a forged length
/// fails as `LimitExceeded` after at most a bounded (lazily zeroed)
/// allocation.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    with_input_limit!(bytes.len(), config => {
        bincode::serde::decode_from_slice(bytes, config).map(|(v, _)| v)
    })
}

/// Log indexes as big-endian keys keep sled's byte order equal to index order.
pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub(crate) fn key_index(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Bytes `value` takes encoded, without encoding it (a payload counts its
/// length, not a copy).
pub(crate) fn encoded_size<T: Serialize>(value: &T) -> usize {
    let mut size = bincode::enc::write::SizeWriter::default();
    match bincode::serde::encode_into_writer(value, &mut size, bincode::config::standard()) {
        Ok(()) => size.bytes_written,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_length_is_an_error_not_an_allocation() {
        // A String claiming 1 TiB (varint tag 253: a u64 follows), then 2 bytes.
        let mut forged = vec![253u8];
        forged.extend_from_slice(&(1u64 << 40).to_le_bytes());
        forged.extend_from_slice(b"ab");
        assert!(decode::<String>(&forged).is_err());
        // The same inside a tuple, as a field of a larger value.
        let mut nested = vec![7u8, 0];
        nested.extend_from_slice(&forged);
        assert!(decode::<(u8, u8, String)>(&nested).is_err());
    }

    #[test]
    fn every_valid_value_fits_its_limit() {
        // Small integers are one byte each but claimed at 8: the worst case.
        let small: Vec<u64> = (0..200_000).map(|i| i % 100).collect();
        let bytes = encode(&small).expect("encode");
        assert_eq!(decode::<Vec<u64>>(&bytes).expect("decode"), small);
        let blob = vec![0xabu8; 3 << 20];
        let text = ("x".repeat(1 << 20), blob, true, u64::MAX);
        let bytes = encode(&text).expect("encode");
        assert_eq!(
            decode::<(String, Vec<u8>, bool, u64)>(&bytes).expect("decode"),
            text
        );
        assert_eq!(decode::<()>(&[]).expect("the empty input"), ());
    }
}
