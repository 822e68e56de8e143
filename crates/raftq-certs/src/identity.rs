//! The identity a verified peer certificate names. The server calls these
//! after rustls has checked the chain, so they only read, never verify.

use x509_parser::extensions::GeneralName;
use x509_parser::parse_x509_certificate;

use crate::names::{parse_node_id, parse_user};

/// The node id of a `urn:raftq:node:<id>` URI SAN. None when there is
/// none, the DER does not parse, or several ids are named: an ambiguous
/// certificate names nobody.
pub fn node_id_of(cert_der: &[u8]) -> Option<u64> {
    only_one(uris(cert_der)?.iter().filter_map(|u| parse_node_id(u)))
}

/// The user of a `urn:raftq:user:<name>` URI SAN, under the same rules as
/// [`node_id_of`].
pub fn user_of(cert_der: &[u8]) -> Option<String> {
    only_one(uris(cert_der)?.iter().filter_map(|u| parse_user(u)))
}

fn uris(cert_der: &[u8]) -> Option<Vec<String>> {
    let (_, cert) = parse_x509_certificate(cert_der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    Some(
        san.value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some(uri.to_string()),
                _ => None,
            })
            .collect(),
    )
}

fn only_one<T: PartialEq>(mut found: impl Iterator<Item = T>) -> Option<T> {
    let first = found.next()?;
    if found.all(|other| other == first) {
        Some(first)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_names_nobody() {
        assert_eq!(node_id_of(b""), None);
        assert_eq!(user_of(b"not a certificate"), None);
    }

    #[test]
    fn several_ids_name_nobody() {
        assert_eq!(only_one([1, 2].into_iter()), None);
        assert_eq!(only_one([3, 3].into_iter()), Some(3));
        assert_eq!(only_one(std::iter::empty::<u8>()), None);
    }
}
