//! What the certificates say, read back with x509-parser.

use std::net::IpAddr;

use raftq_certs::{
    create_ca, create_client, create_node, node_id_of, pem_to_der_chain, user_of, CertError, Pem,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::parse_x509_certificate;

fn der(pem: &Pem) -> Vec<u8> {
    pem_to_der_chain(&pem.cert_pem).unwrap().swap_remove(0)
}

fn with_cert<T>(pem: &Pem, f: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
    let der = der(pem);
    let (_, cert) = parse_x509_certificate(&der).unwrap();
    f(&cert)
}

fn common_name(cert: &X509Certificate<'_>) -> String {
    let cn = cert.subject().iter_common_name().next().unwrap();
    cn.as_str().unwrap().to_string()
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(d) => format!("dns:{d}"),
            GeneralName::URI(u) => format!("uri:{u}"),
            GeneralName::IPAddress(b) => {
                let ip: IpAddr = match b.len() {
                    4 => <[u8; 4]>::try_from(*b).unwrap().into(),
                    _ => <[u8; 16]>::try_from(*b).unwrap().into(),
                };
                format!("ip:{ip}")
            }
            other => format!("other:{other}"),
        })
        .collect()
}

fn hosts(hosts: &[&str]) -> Vec<String> {
    hosts.iter().map(|h| h.to_string()).collect()
}

#[test]
fn a_ca_signs_only_certificates_and_crls() {
    let ca = create_ca("raftq test CA", 30).unwrap();
    assert!(ca.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    with_cert(&ca, |cert| {
        assert_eq!(common_name(cert), "raftq test CA");
        assert_eq!(cert.subject(), cert.issuer());
        let bc = cert.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        assert!(!ku.digital_signature());
        let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp())
            / 86_400;
        assert_eq!(days, 30, "30 days, plus the hour backdated");
    });
}

#[test]
fn a_node_certificate_names_its_hosts_and_id() {
    let ca = create_ca("raftq test CA", 30).unwrap();
    let node = create_node(
        &ca,
        7,
        &hosts(&["raftq-1.example.com", "10.1.2.3", "fd00::7"]),
        30,
    )
    .unwrap();
    with_cert(&node, |cert| {
        assert_eq!(common_name(cert), "raftq node 7");
        assert_eq!(
            sans(cert),
            [
                "dns:raftq-1.example.com",
                "ip:10.1.2.3",
                "ip:fd00::7",
                "dns:localhost",
                "ip:127.0.0.1",
                "uri:urn:raftq:node:7",
            ]
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
        with_cert(&ca, |ca_cert| assert_eq!(cert.issuer(), ca_cert.subject()));
    });
    assert_eq!(node_id_of(&der(&node)), Some(7));
    assert_eq!(user_of(&der(&node)), None);
}

#[test]
fn a_client_certificate_names_its_user_only() {
    let ca = create_ca("raftq test CA", 30).unwrap();
    let client = create_client(&ca, "billing-svc.1_a", 30).unwrap();
    with_cert(&client, |cert| {
        assert_eq!(common_name(cert), "billing-svc.1_a");
        assert_eq!(sans(cert), ["uri:urn:raftq:user:billing-svc.1_a"]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
    });
    assert_eq!(user_of(&der(&client)), Some("billing-svc.1_a".into()));
    assert_eq!(node_id_of(&der(&client)), None);
}

#[test]
fn identities_are_read_from_certificates_of_any_ca() {
    // Whether to trust the CA is rustls's call, made before these run.
    let other_ca = create_ca("someone else's CA", 30).unwrap();
    let node = create_node(&other_ca, 3, &[], 30).unwrap();
    let client = create_client(&other_ca, "mallory", 30).unwrap();
    assert_eq!(node_id_of(&der(&node)), Some(3));
    assert_eq!(user_of(&der(&client)), Some("mallory".into()));
    assert_eq!(node_id_of(&der(&other_ca)), None);
    assert_eq!(user_of(&der(&other_ca)), None);
}

#[test]
fn bad_user_names_are_refused() {
    let ca = create_ca("raftq test CA", 30).unwrap();
    for bad in ["", "a b", "../x", "al:ice", "ünï", &"x".repeat(65)] {
        assert!(
            matches!(create_client(&ca, bad, 30), Err(CertError::InvalidUser(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn bad_hosts_validity_and_names_are_refused() {
    let ca = create_ca("raftq test CA", 30).unwrap();
    assert!(matches!(
        create_node(&ca, 1, &hosts(&["node1:7001"]), 30),
        Err(CertError::InvalidHost { .. })
    ));
    assert!(matches!(
        create_node(&ca, 1, &[], 0),
        Err(CertError::InvalidValidity(0))
    ));
    assert!(matches!(
        create_ca("raftq test CA", u32::MAX),
        Err(CertError::InvalidValidity(_))
    ));
    assert!(matches!(
        create_ca(" ", 30),
        Err(CertError::InvalidCommonName(_))
    ));
}

#[test]
fn only_a_ca_with_its_own_key_signs() {
    let ca = create_ca("raftq test CA", 30).unwrap();
    let other = create_ca("other CA", 30).unwrap();
    let mixed = Pem {
        cert_pem: ca.cert_pem.clone(),
        key_pem: other.key_pem.clone(),
    };
    assert!(matches!(
        create_client(&mixed, "alice", 30),
        Err(CertError::CaKeyMismatch)
    ));

    let leaf = create_client(&ca, "alice", 30).unwrap();
    assert!(matches!(
        create_client(&leaf, "bob", 30),
        Err(CertError::InvalidCa(_))
    ));

    let garbage = Pem {
        cert_pem: "nothing here".into(),
        key_pem: ca.key_pem.clone(),
    };
    assert!(matches!(
        create_node(&garbage, 1, &[], 30),
        Err(CertError::InvalidCa(_))
    ));
    let no_key = Pem {
        cert_pem: ca.cert_pem.clone(),
        key_pem: String::new(),
    };
    assert!(matches!(
        create_node(&no_key, 1, &[], 30),
        Err(CertError::InvalidCaKey(_))
    ));
}

#[test]
fn a_certificate_naming_two_nodes_names_none() {
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = [
        "urn:raftq:node:1",
        "urn:raftq:node:2",
        "urn:raftq:user:a",
        "urn:raftq:user:b",
    ]
    .into_iter()
    .map(|u| rcgen::SanType::URI(u.try_into().unwrap()))
    .collect();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    assert_eq!(node_id_of(cert.der()), None);
    assert_eq!(user_of(cert.der()), None);
}
