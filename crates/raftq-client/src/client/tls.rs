//! TLS towards the nodes: the CA that signed their certificates, and
//! optionally a client certificate (mutual TLS) that names the user.

use std::path::Path;

use crate::Error;

/// How a client reaches nodes that serve TLS.
#[derive(Clone)]
pub struct TlsOptions {
    /// PEM of the CA the nodes' certificates chain to.
    pub ca_pem: Vec<u8>,
    /// A client certificate and its key, for nodes that authenticate users
    /// by certificate.
    pub identity: Option<ClientIdentity>,
}

#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

// Never print a private key, not even in a debug log of the options.
impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| Error::InvalidArgument(format!("cannot read {what} {}: {e}", path.display())))
}

impl TlsOptions {
    /// Reads the CA and, when both are given, a client certificate and key.
    pub fn from_files(
        ca: &Path,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<TlsOptions, Error> {
        let identity = match (cert, key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(ClientIdentity {
                cert_pem: read(cert, "client certificate")?,
                key_pem: read(key, "client key")?,
            }),
            _ => {
                return Err(Error::InvalidArgument(
                    "a client certificate needs its key, and a key its certificate".into(),
                ))
            }
        };
        Ok(TlsOptions {
            ca_pem: read(ca, "CA certificate")?,
            identity,
        })
    }

    /// tonic's configuration for a connection to `host`, the name the
    /// node's certificate must carry.
    pub(crate) fn for_host(&self, host: &str) -> tonic::transport::ClientTlsConfig {
        let mut config = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
            .domain_name(host);
        if let Some(id) = &self.identity {
            config = config.identity(tonic::transport::Identity::from_pem(
                &id.cert_pem,
                &id.key_pem,
            ));
        }
        config
    }
}

/// The host of `host:port` (IPv6 without its brackets).
pub(crate) fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}
