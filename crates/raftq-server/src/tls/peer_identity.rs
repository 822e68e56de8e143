//! Who a peer request comes from, by its TLS certificate: with TLS on, a
//! peer RPC is answered only when the connection's client certificate (already
//! verified against the cluster's CA) names the node the request claims to be
//! from. A client certificate, another CA's certificate or none at all gets
//! nothing from the Raft transport: no append, no vote, no join.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use tonic::Status;

/// Checks `claimed` against the certificates of the connection.
pub fn check(certs: Option<Arc<Vec<CertificateDer<'static>>>>, claimed: u64) -> Result<(), Status> {
    let Some(leaf) = certs.as_ref().and_then(|c| c.first().cloned()) else {
        return Err(Status::unauthenticated(
            "peer requests need a node certificate of the cluster's CA",
        ));
    };
    match raftq_certs::node_id_of(leaf.as_ref()) {
        Some(id) if id == claimed => Ok(()),
        Some(id) => Err(Status::permission_denied(format!(
            "the certificate is node {id}'s; the request claims to come from node {claimed}"
        ))),
        None => Err(Status::permission_denied(
            "the certificate names no node: peer requests need a node certificate",
        )),
    }
}
