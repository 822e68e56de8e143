//! The chains verify the way rustls will verify them: rustls-webpki (the
//! verifier under rustls's WebPkiServerVerifier and WebPkiClientVerifier)
//! with ring's algorithms.

use raftq_certs::{create_ca, create_client, create_node, pem_to_der_chain, Pem};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use webpki::{anchor_from_trusted_cert, EndEntityCert, ExtendedKeyUsageValidator, KeyUsage};

fn der(pem: &Pem) -> CertificateDer<'static> {
    CertificateDer::from(pem_to_der_chain(&pem.cert_pem).unwrap().swap_remove(0))
}

fn verifies(leaf: &Pem, root: &Pem, usage: impl ExtendedKeyUsageValidator) -> bool {
    let leaf = der(leaf);
    let root = der(root);
    let anchors = [anchor_from_trusted_cert(&root).unwrap()];
    let cert = EndEntityCert::try_from(&leaf).unwrap();
    cert.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &[],
        UnixTime::now(),
        usage,
        None,
        None,
    )
    .is_ok()
}

fn valid_for(leaf: &Pem, name: &str) -> bool {
    let leaf = der(leaf);
    let cert = EndEntityCert::try_from(&leaf).unwrap();
    let name = ServerName::try_from(name).unwrap();
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

#[test]
fn a_node_certificate_verifies_against_its_ca_only() {
    let ca = create_ca("raftq test CA", 30).unwrap();
    let other = create_ca("raftq test CA", 30).unwrap();
    let node = create_node(&ca, 1, &["raftq-1.internal".into(), "10.0.0.1".into()], 30).unwrap();

    assert!(verifies(&node, &ca, KeyUsage::server_auth()));
    assert!(verifies(&node, &ca, KeyUsage::client_auth()));
    // Same name, different key: the name alone earns no trust.
    assert!(!verifies(&node, &other, KeyUsage::server_auth()));
    assert!(!verifies(&node, &other, KeyUsage::client_auth()));

    for name in ["raftq-1.internal", "10.0.0.1", "localhost", "127.0.0.1"] {
        assert!(valid_for(&node, name), "{name}");
    }
    assert!(!valid_for(&node, "raftq-2.internal"));
}

#[test]
fn a_client_certificate_authenticates_clients_only() {
    let ca = create_ca("raftq test CA", 30).unwrap();
    let other = create_ca("other CA", 30).unwrap();
    let client = create_client(&ca, "alice", 30).unwrap();
    assert!(verifies(&client, &ca, KeyUsage::client_auth()));
    assert!(!verifies(&client, &ca, KeyUsage::server_auth()));
    assert!(!verifies(&client, &other, KeyUsage::client_auth()));
}

#[test]
fn a_leaf_cannot_sign_for_its_ca() {
    // CA:false on leaves: a node's key, if stolen, cannot mint
    // certificates the cluster trusts. rcgen signs with any key it is
    // given, so the forgery is easy to make; it must not verify.
    let ca = create_ca("raftq test CA", 30).unwrap();
    let node = create_node(&ca, 1, &[], 30).unwrap();
    let node_key = rcgen::KeyPair::from_pem(&node.key_pem).unwrap();
    let node_as_issuer = rcgen::Issuer::from_ca_cert_pem(&node.cert_pem, node_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let forged_key = rcgen::KeyPair::generate().unwrap();
    let forged = params.signed_by(&forged_key, &node_as_issuer).unwrap();

    let root = der(&ca);
    let anchors = [anchor_from_trusted_cert(&root).unwrap()];
    let intermediates = [der(&node)];
    let forged_cert = EndEntityCert::try_from(forged.der()).unwrap();
    let verified = forged_cert.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        UnixTime::now(),
        KeyUsage::server_auth(),
        None,
        None,
    );
    assert!(
        matches!(verified, Err(webpki::Error::EndEntityUsedAsCa)),
        "{:?}",
        verified.map(|_| ())
    );
}
