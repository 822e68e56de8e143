//! The run's certificates and users: nodes serve TLS with certificates of a
//! CA made for the run (naming each node and its address) and authorize
//! against an auth file in which the workload's user `chaos` (by client
//! certificate) is an admin; every client of the workload trusts the CA and
//! presents that certificate. `--plaintext` runs without (nodes get --insecure).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use raftq_certs::Pem;
use raftq_client::{ClientOptions, TlsOptions};

static CLIENT_TLS: OnceLock<Option<TlsOptions>> = OnceLock::new();

/// `options` with the run's TLS settings.
pub fn client_options(options: ClientOptions) -> ClientOptions {
    ClientOptions {
        tls: CLIENT_TLS.get().cloned().flatten(),
        ..options
    }
}

pub struct RunPki {
    dir: PathBuf,
    ca: Pem,
}

impl RunPki {
    /// Makes the CA in `dir` and makes every client of the run trust it.
    pub fn create(dir: &Path) -> anyhow::Result<RunPki> {
        std::fs::create_dir_all(dir)?;
        let ca = raftq_certs::create_ca("raftq chaos CA", 30)?;
        std::fs::write(dir.join("ca.pem"), &ca.cert_pem)?;
        std::fs::write(
            dir.join("users.toml"),
            "[[user]]\nname = \"chaos\"\nadmin = true\n",
        )?;
        let user = raftq_certs::create_client(&ca, "chaos", 30)?;
        let _ = CLIENT_TLS.set(Some(TlsOptions {
            ca_pem: ca.cert_pem.clone().into_bytes(),
            identity: Some(raftq_client::ClientIdentity {
                cert_pem: user.cert_pem.into_bytes(),
                key_pem: user.key_pem.into_bytes(),
            }),
        }));
        Ok(RunPki {
            dir: dir.to_path_buf(),
            ca,
        })
    }

    /// The `--tls-*` flags of node `id` at `addr`, its certificate made on
    /// first use.
    pub fn node_args(&self, id: u64, addr: &str) -> anyhow::Result<Vec<String>> {
        let cert = self.dir.join(format!("node-{id}.pem"));
        let key = self.dir.join(format!("node-{id}-key.pem"));
        if !cert.exists() {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string();
            let pem = raftq_certs::create_node(&self.ca, id, &[host], 30)
                .with_context(|| format!("certificate of node {id}"))?;
            std::fs::write(&cert, &pem.cert_pem)?;
            std::fs::write(&key, &pem.key_pem)?;
        }
        Ok(vec![
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
            "--tls-ca".into(),
            self.dir.join("ca.pem").display().to_string(),
            "--auth-file".into(),
            self.dir.join("users.toml").display().to_string(),
        ])
    }
}
