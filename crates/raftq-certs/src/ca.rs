//! A saved CA, loaded to sign again.

use rcgen::{Issuer, KeyPair};
use rustls_pki_types::CertificateDer;
use x509_parser::parse_x509_certificate;

use crate::{pem_to_der_chain, CertError, Pem};

/// The CA in `ca`, checked first: rcgen would sign with any key under any
/// certificate, and the result would only fail later, in a TLS handshake.
pub(crate) fn load_issuer(ca: &Pem) -> Result<Issuer<'static, KeyPair>, CertError> {
    let key = KeyPair::from_pem(&ca.key_pem).map_err(CertError::InvalidCaKey)?;
    let der = pem_to_der_chain(&ca.cert_pem)
        .map_err(|e| CertError::InvalidCa(e.to_string()))?
        .swap_remove(0);
    let (_, cert) =
        parse_x509_certificate(&der).map_err(|e| CertError::InvalidCa(e.to_string()))?;
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| CertError::InvalidCa(e.to_string()))?
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(CertError::InvalidCa("not a CA certificate".into()));
    }
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(CertError::CaKeyMismatch);
    }
    Issuer::from_ca_cert_der(&CertificateDer::from(der.as_slice()), key)
        .map_err(|e| CertError::InvalidCa(e.to_string()))
}
