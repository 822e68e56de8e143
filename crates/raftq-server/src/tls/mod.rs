//! TLS on the node's one port: clients may present a certificate (mutual
//! TLS), peers must. Every certificate is checked against the cluster's CA;
//! a peer's must also name the node it speaks for (`raftq-certs`' node URI),
//! and [`peer_identity`] holds every peer request to that.
//!
//! The certificate, key and CA are files re-read when they change
//! ([`reload`]): new connections use the new ones, open ones keep theirs.

pub mod incoming;
pub mod material;
pub mod peer_identity;
pub mod reload;

use std::path::PathBuf;

/// Where a node's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This node's certificate (PEM, leaf first), signed by the cluster's CA.
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// The cluster's CA certificate(s): peers' and clients' certificates must
    /// chain to one of them.
    pub ca: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Invalid { path: String, what: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}
