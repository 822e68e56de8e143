//! Certificates for raftq's TLS and mutual TLS, as pure functions over PEM
//! text (the `raftq cert` command does the file I/O):
//!
//! - [`create_ca`]: a self-signed CA that signs nothing but certificates;
//! - [`create_node`]: a node's certificate, for serving clients and peers
//!   and for calling peers, naming its node id in `urn:raftq:node:<id>`;
//! - [`create_client`]: a user's certificate, naming the user in
//!   `urn:raftq:user:<name>`;
//! - [`node_id_of`], [`user_of`]: the identity a peer's certificate names,
//!   once rustls has verified it against the CA (nothing here verifies).

#![forbid(unsafe_code)]

mod ca;
mod error;
mod identity;
mod issue;
mod names;
mod pem;

pub use error::CertError;
pub use identity::{node_id_of, user_of};
pub use issue::{create_ca, create_client, create_node};
pub use names::{node_uri, user_uri, validate_user};
pub use pem::{pem_to_der_chain, Pem};
