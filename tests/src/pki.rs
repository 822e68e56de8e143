//! Certificates for TLS test clusters, made with `raftq-certs` in the
//! cluster's temp dir: a CA, a certificate per node (127.0.0.1, localhost),
//! and client certificates or a rogue CA on demand.

use std::path::{Path, PathBuf};

use raftq_certs::Pem;
use raftq_client::{ClientIdentity, TlsOptions};

pub struct TestPki {
    dir: PathBuf,
    ca: Pem,
}

/// The three files a node takes: `--tls-cert`, `--tls-key`, `--tls-ca`.
pub struct NodeFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

impl TestPki {
    /// A new CA named `name`, its certificate in `dir/ca.pem`.
    pub fn create(dir: &Path, name: &str) -> TestPki {
        std::fs::create_dir_all(dir).expect("certificate dir");
        let ca = raftq_certs::create_ca(name, 30).expect("create a CA");
        write(&dir.join("ca.pem"), &ca.cert_pem);
        TestPki {
            dir: dir.to_path_buf(),
            ca,
        }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// Node `id`'s certificate and key, made on first use (a restarted node
    /// keeps its files, rotated ones included).
    pub fn node(&self, id: u64) -> NodeFiles {
        let (cert, key) = (
            self.dir.join(format!("node-{id}.pem")),
            self.dir.join(format!("node-{id}-key.pem")),
        );
        if !cert.exists() || !key.exists() {
            let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
            let pem = raftq_certs::create_node(&self.ca, id, &hosts, 30).expect("node certificate");
            write(&cert, &pem.cert_pem);
            write(&key, &pem.key_pem);
        }
        NodeFiles {
            cert,
            key,
            ca: self.ca_path(),
        }
    }

    /// A node certificate in memory (for a client that poses as a peer).
    pub fn node_identity(&self, id: u64) -> ClientIdentity {
        let hosts = ["127.0.0.1".to_string()];
        let pem = raftq_certs::create_node(&self.ca, id, &hosts, 30).expect("node certificate");
        ClientIdentity {
            cert_pem: pem.cert_pem.into_bytes(),
            key_pem: pem.key_pem.into_bytes(),
        }
    }

    pub fn client_identity(&self, user: &str) -> ClientIdentity {
        let pem = raftq_certs::create_client(&self.ca, user, 30).expect("client certificate");
        ClientIdentity {
            cert_pem: pem.cert_pem.into_bytes(),
            key_pem: pem.key_pem.into_bytes(),
        }
    }

    /// Trusts this CA; presents `identity`, if any.
    pub fn client_tls(&self, identity: Option<ClientIdentity>) -> TlsOptions {
        TlsOptions {
            ca_pem: self.ca.cert_pem.clone().into_bytes(),
            identity,
        }
    }
}

impl TestPki {
    /// Rotates the cluster to `next`'s CA the way an operator would: the CA
    /// file becomes a bundle of both CAs, then every node's certificate and
    /// key are replaced by ones `next` signed, in place.
    pub fn rotate_to(&self, next: &TestPki, ids: &[u64]) {
        write(
            &self.ca_path(),
            &format!("{}{}", next.ca.cert_pem, self.ca.cert_pem),
        );
        for id in ids {
            let fresh = next.node(*id);
            for (from, to) in [
                (fresh.cert, self.dir.join(format!("node-{id}.pem"))),
                (fresh.key, self.dir.join(format!("node-{id}-key.pem"))),
            ] {
                std::fs::copy(&from, &to).unwrap_or_else(|e| {
                    panic!("copy {} over {}: {e}", from.display(), to.display())
                });
            }
        }
    }
}
