//! Every value raftq keeps on disk (log entries, votes, purge and commit
//! points, snapshot records, the node's identity) is sealed with a CRC32 of
//! its bytes and checked on every read, so a damaged value is reported as
//! damage, never decoded into a state machine. sled checks its own pages too,
//! but it cannot tell us which group a bad page belonged to, and a bug or a
//! bit flipped in memory on the way would pass its check.
//!
//! Layout: one format tag byte, the CRC32 (little-endian) of the payload, the
//! payload (bincode, standard config).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Tags sealed values of this format: bytes from an older raftq (no seal)
/// fail with a clear `Format` error rather than a checksum mismatch.
pub(crate) const FORMAT_TAG: u8 = 0xA2;
const HEADER: usize = 5;

/// Why stored bytes cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("{0} bytes, shorter than a sealed value's header")]
    Short(usize),
    #[error("format tag {0:#04x} is not this raftq's (written by an older version?)")]
    Format(u8),
    #[error("the value does not decode: {0}")]
    Decode(String),
}

pub(crate) fn encode_sealed<T: Serialize>(
    value: &T,
) -> Result<Vec<u8>, bincode::error::EncodeError> {
    let mut out = vec![FORMAT_TAG, 0, 0, 0, 0];
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())?;
    let crc = crc32fast::hash(&out[HEADER..]);
    out[1..HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// The payload of sealed bytes, once its checksum holds.
pub(crate) fn verify(bytes: &[u8]) -> Result<&[u8], Unreadable> {
    if bytes.len() < HEADER {
        return Err(Unreadable::Short(bytes.len()));
    }
    if bytes[0] != FORMAT_TAG {
        return Err(Unreadable::Format(bytes[0]));
    }
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&bytes[1..HEADER]);
    let stored = u32::from_le_bytes(stored);
    let payload = &bytes[HEADER..];
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(Unreadable::Checksum { stored, computed });
    }
    Ok(payload)
}

pub(crate) fn decode_sealed<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Unreadable> {
    let payload = verify(bytes)?;
    crate::codec::decode(payload).map_err(|e| Unreadable::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_sealed_value_reads_back() {
        let value = (42u64, "entry".to_string(), vec![1u8, 2, 3]);
        let sealed = encode_sealed(&value).expect("encode");
        assert_eq!(
            decode_sealed::<(u64, String, Vec<u8>)>(&sealed).expect("decode"),
            value
        );
    }

    #[test]
    fn unsealed_bytes_name_the_format() {
        let plain = crate::codec::encode(&7u64).expect("encode");
        assert!(matches!(
            decode_sealed::<u64>(&[plain[0], 0, 0, 0, 0, 1]),
            Err(Unreadable::Format(_)) | Err(Unreadable::Checksum { .. })
        ));
        assert_eq!(
            decode_sealed::<u64>(&[FORMAT_TAG, 1]),
            Err(Unreadable::Short(2))
        );
    }

    proptest! {
        /// Any single flipped bit anywhere is caught: in the tag, the
        /// checksum or the payload.
        #[test]
        fn every_single_bit_flip_is_caught(
            payload in proptest::collection::vec(any::<u8>(), 0..512),
            bit in any::<proptest::sample::Index>(),
        ) {
            let mut sealed = encode_sealed(&payload).expect("encode");
            let at = bit.index(sealed.len() * 8);
            sealed[at / 8] ^= 1 << (at % 8);
            prop_assert!(decode_sealed::<Vec<u8>>(&sealed).is_err());
        }

        #[test]
        fn any_truncation_is_caught(
            payload in proptest::collection::vec(any::<u8>(), 1..512),
            cut in any::<proptest::sample::Index>(),
        ) {
            let sealed = encode_sealed(&payload).expect("encode");
            let keep = cut.index(sealed.len());
            prop_assert!(decode_sealed::<Vec<u8>>(&sealed[..keep]).is_err());
        }
    }
}
