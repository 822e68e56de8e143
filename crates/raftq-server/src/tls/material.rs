//! Reading a node's certificate, key and CA into the rustls server config it
//! accepts connections with and the tonic client config it dials peers with.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::tls::{TlsError, TlsFiles};

/// What a node's TLS files amount to.
#[derive(Clone)]
pub struct Material {
    pub server: Arc<ServerConfig>,
    /// CA and this node's identity; the peer's host name is added per dial.
    pub peer_client: ClientTlsConfig,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid {
        path: path.display().to_string(),
        what: what.to_string(),
    }
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(path, "holds no certificate"));
    }
    Ok(certs)
}

/// Loads the files of node `node`: its certificate must name it.
pub fn load(files: &TlsFiles, node: u64) -> Result<Material, TlsError> {
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let ca_pem = read(&files.ca)?;
    let chain = certificates(&files.cert, &cert_pem)?;
    match raftq_certs::node_id_of(chain[0].as_ref()) {
        Some(id) if id == node => {}
        Some(id) => {
            return Err(invalid(
                &files.cert,
                format!("is node {id}'s certificate, not node {node}'s"),
            ))
        }
        None => {
            return Err(invalid(
                &files.cert,
                format!(
                    "names no node (make one with `raftq cert create-node --id {node} --host ...`)"
                ),
            ))
        }
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| invalid(&files.key, format!("no private key: {e}")))?;
    let mut roots = RootCertStore::empty();
    for ca in certificates(&files.ca, &ca_pem)? {
        roots
            .add(ca)
            .map_err(|e| invalid(&files.ca, format!("not a usable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Clients may come without a certificate (tokens, or no authentication);
    // a certificate that is presented must verify. Peers are held to one in
    // `peer_identity`.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| invalid(&files.cert, format!("does not match its key: {e}")))?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let peer_client = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca_pem))
        .identity(Identity::from_pem(&cert_pem, &key_pem));
    Ok(Material {
        server: Arc::new(server),
        peer_client,
    })
}
