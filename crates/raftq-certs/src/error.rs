use thiserror::Error;

#[derive(Debug, Error)]
pub enum CertError {
    #[error("invalid user name {0:?}: use 1 to 64 ASCII letters, digits, '.', '-' or '_'")]
    InvalidUser(String),
    #[error("invalid common name {0:?}: use 1 to 64 characters, no control characters")]
    InvalidCommonName(String),
    #[error("invalid host {host:?}: {why}")]
    InvalidHost { host: String, why: &'static str },
    #[error("invalid validity of {0} days: give at least 1 day and end before the year 10000")]
    InvalidValidity(u32),
    #[error("no certificate in the PEM text")]
    NoCertificate,
    #[error("invalid PEM: {0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    #[error("invalid CA certificate: {0}")]
    InvalidCa(String),
    #[error("the CA key does not belong to the CA certificate")]
    CaKeyMismatch,
    #[error("invalid CA key: {0}")]
    InvalidCaKey(rcgen::Error),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}
