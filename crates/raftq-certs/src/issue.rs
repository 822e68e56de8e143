//! Making certificates: a CA, and the node and client certificates it signs.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

use crate::ca::load_issuer;
use crate::names::{host_sans, node_uri, uri_san, user_uri, validate_user};
use crate::{CertError, Pem};

// Certificates are made on one machine and checked on others: a node whose
// clock is a little behind must not see a new certificate as not yet valid.
const BACKDATE: Duration = Duration::hours(1);
// RFC 5280's upper bound for a common name.
const MAX_COMMON_NAME_LEN: usize = 64;

/// A self-signed CA valid for `valid_days`: it may sign leaf certificates
/// (and CRLs) but no intermediate CA (path length 0).
pub fn create_ca(common_name: &str, valid_days: u32) -> Result<Pem, CertError> {
    validate_common_name(common_name)?;
    let mut params = base_params(common_name, valid_days)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = new_key()?;
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Node `node_id`'s certificate, signed by `ca`, for every host in `hosts`
/// (plus `localhost` and `127.0.0.1`). A node serves clients and peers and
/// calls peers with the same certificate, so it is valid for both.
pub fn create_node(
    ca: &Pem,
    node_id: u64,
    hosts: &[String],
    valid_days: u32,
) -> Result<Pem, CertError> {
    let mut sans = host_sans(hosts)?;
    sans.push(uri_san(node_uri(node_id))?);
    leaf(
        ca,
        &format!("raftq node {node_id}"),
        sans,
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        valid_days,
    )
}

/// `user`'s client certificate, signed by `ca`.
pub fn create_client(ca: &Pem, user: &str, valid_days: u32) -> Result<Pem, CertError> {
    validate_user(user)?;
    leaf(
        ca,
        user,
        vec![uri_san(user_uri(user))?],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
        valid_days,
    )
}

fn leaf(
    ca: &Pem,
    common_name: &str,
    sans: Vec<SanType>,
    usages: Vec<ExtendedKeyUsagePurpose>,
    valid_days: u32,
) -> Result<Pem, CertError> {
    let issuer = load_issuer(ca)?;
    let mut params = base_params(common_name, valid_days)?;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages;
    // Lets verifiers pick the right CA when an operator rotates to a new
    // one with the same name.
    params.use_authority_key_identifier_extension = true;
    let key = new_key()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

// The serial number rcgen derives from the certificate's public key is
// unique because every certificate gets a fresh key.
fn base_params(common_name: &str, valid_days: u32) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    let now = OffsetDateTime::now_utc();
    let not_after = (valid_days > 0)
        .then(|| now.checked_add(Duration::days(i64::from(valid_days))))
        .flatten()
        .ok_or(CertError::InvalidValidity(valid_days))?;
    params.not_before = now - BACKDATE;
    params.not_after = not_after;
    Ok(params)
}

fn validate_common_name(name: &str) -> Result<(), CertError> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_COMMON_NAME_LEN
        || name.chars().any(char::is_control)
    {
        return Err(CertError::InvalidCommonName(name.to_string()));
    }
    Ok(())
}

fn new_key() -> Result<KeyPair, CertError> {
    Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)
}
