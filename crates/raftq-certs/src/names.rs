//! The names certificates carry: node and user URIs, user names, and the
//! hosts a node answers at.

use std::net::IpAddr;

use rcgen::string::Ia5String;
use rcgen::SanType;

use crate::CertError;

pub(crate) const NODE_URI_PREFIX: &str = "urn:raftq:node:";
pub(crate) const USER_URI_PREFIX: &str = "urn:raftq:user:";

const MAX_USER_LEN: usize = 64;
// RFC 1035's limits, which resolvers and TLS libraries enforce.
const MAX_DNS_NAME_LEN: usize = 253;
const MAX_DNS_LABEL_LEN: usize = 63;

/// The URI SAN that names node `id`.
pub fn node_uri(id: u64) -> String {
    format!("{NODE_URI_PREFIX}{id}")
}

/// The URI SAN that names `user` (validate it first).
pub fn user_uri(user: &str) -> String {
    format!("{USER_URI_PREFIX}{user}")
}

/// Refuses names that could not be a file name, a URI segment or an ACL
/// entry as they are: 1 to 64 ASCII letters, digits, '.', '-' or '_'.
pub fn validate_user(user: &str) -> Result<(), CertError> {
    let ok = (1..=MAX_USER_LEN).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    // "." and ".." would name directories in `client-<user>.pem`-style paths
    // and in any tool that keys files by user.
    if ok && user != "." && user != ".." {
        Ok(())
    } else {
        Err(CertError::InvalidUser(user.to_string()))
    }
}

pub(crate) fn parse_node_id(uri: &str) -> Option<u64> {
    let digits = uri.strip_prefix(NODE_URI_PREFIX)?;
    // u64's parser takes a leading '+': one id, one spelling.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn parse_user(uri: &str) -> Option<String> {
    let user = uri.strip_prefix(USER_URI_PREFIX)?;
    validate_user(user).ok()?;
    Some(user.to_string())
}

pub(crate) fn uri_san(uri: String) -> Result<SanType, CertError> {
    Ok(SanType::URI(Ia5String::try_from(uri)?))
}

/// The SANs of a node answering at `hosts`: each host once, as an IP
/// address when it is one, then `localhost` and `127.0.0.1` so that local
/// tools and a node's own health checks verify without extra flags.
pub(crate) fn host_sans(hosts: &[String]) -> Result<Vec<SanType>, CertError> {
    let mut sans: Vec<SanType> = Vec::new();
    let defaults = ["localhost".to_string(), "127.0.0.1".to_string()];
    for host in hosts.iter().chain(&defaults) {
        let san = host_san(host)?;
        if !sans.iter().any(|s| same_host(s, &san)) {
            sans.push(san);
        }
    }
    Ok(sans)
}

fn same_host(a: &SanType, b: &SanType) -> bool {
    match (a, b) {
        (SanType::DnsName(a), SanType::DnsName(b)) => a.as_str().eq_ignore_ascii_case(b.as_str()),
        _ => a == b,
    }
}

fn host_san(host: &str) -> Result<SanType, CertError> {
    // `[::1]` is how IPv6 addresses appear in `host:port` lists.
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    validate_dns_name(host)?;
    Ok(SanType::DnsName(Ia5String::try_from(host)?))
}

fn validate_dns_name(host: &str) -> Result<(), CertError> {
    let invalid = |why| CertError::InvalidHost {
        host: host.to_string(),
        why,
    };
    if host.is_empty() {
        return Err(invalid("empty"));
    }
    if host.len() > MAX_DNS_NAME_LEN {
        return Err(invalid("longer than 253 characters"));
    }
    if host.contains(':') {
        return Err(invalid(
            "not an IP address or DNS name (give the host without a port)",
        ));
    }
    // A wildcard covers one leftmost label, e.g. every pod of a headless
    // Kubernetes service; TLS libraries accept it nowhere else.
    let rest = host.strip_prefix("*.").unwrap_or(host);
    for label in rest.split('.') {
        let valid_label = (1..=MAX_DNS_LABEL_LEN).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid_label {
            return Err(invalid(
                "not an IP address or DNS name (labels of 1 to 63 letters, digits, '-' or '_', joined by '.')",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_checked() {
        for ok in ["alice", "a", "svc.billing-1_x", &"u".repeat(64)] {
            assert!(validate_user(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a b",
            "a/b",
            "a:b",
            "é",
            "alice\n",
            &"u".repeat(65),
        ] {
            assert!(
                matches!(validate_user(bad), Err(CertError::InvalidUser(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn node_ids_have_one_spelling() {
        assert_eq!(parse_node_id("urn:raftq:node:7"), Some(7));
        assert_eq!(parse_node_id(&node_uri(u64::MAX)), Some(u64::MAX));
        for bad in [
            "urn:raftq:node:",
            "urn:raftq:node:+7",
            "urn:raftq:node:-7",
            "urn:raftq:node:7x",
            "urn:raftq:node:18446744073709551616",
            "urn:raftq:user:7",
            "URN:RAFTQ:NODE:7",
        ] {
            assert_eq!(parse_node_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn users_read_back_only_when_valid() {
        assert_eq!(parse_user(&user_uri("bob")), Some("bob".into()));
        assert_eq!(parse_user("urn:raftq:user:"), None);
        assert_eq!(parse_user("urn:raftq:user:a/b"), None);
        assert_eq!(parse_user("urn:raftq:node:1"), None);
    }

    fn strings(hosts: &[&str]) -> Vec<String> {
        hosts.iter().map(|h| h.to_string()).collect()
    }

    #[test]
    fn hosts_become_ip_and_dns_sans_with_local_defaults() {
        let sans = host_sans(&strings(&["node1.example.com", "10.0.0.5", "[::1]"])).unwrap();
        assert_eq!(
            sans,
            vec![
                SanType::DnsName("node1.example.com".try_into().unwrap()),
                SanType::IpAddress("10.0.0.5".parse().unwrap()),
                SanType::IpAddress("::1".parse().unwrap()),
                SanType::DnsName("localhost".try_into().unwrap()),
                SanType::IpAddress("127.0.0.1".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn hosts_appear_once() {
        let sans = host_sans(&strings(&["LOCALHOST", "127.0.0.1", "a", "a"])).unwrap();
        assert_eq!(
            sans,
            vec![
                SanType::DnsName("LOCALHOST".try_into().unwrap()),
                SanType::IpAddress("127.0.0.1".parse().unwrap()),
                SanType::DnsName("a".try_into().unwrap()),
            ]
        );
    }

    #[test]
    fn bad_hosts_are_refused() {
        for bad in [
            "",
            "node1:7001",
            "a..b",
            "-a.b",
            "a b",
            "nödé",
            "a.*.b",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(
                    host_sans(&strings(&[bad])),
                    Err(CertError::InvalidHost { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(host_sans(&strings(&["*.raftq.default.svc.cluster.local"])).is_ok());
    }
}
