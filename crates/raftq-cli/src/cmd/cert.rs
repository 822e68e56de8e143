//! `raftq cert`: the CA, node and client certificates for TLS and mutual
//! TLS. Offline: certificates are made before the cluster they secure runs.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use raftq_certs::Pem;
use raftq_cmdline::outln;
use serde_json::{json, Value};

use crate::cert_files::{read_ca, write_new, NewFile};

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create a CA: DIR/ca.pem and its key DIR/ca-key.pem. Keep the key
    /// off the nodes: it is needed only to make more certificates.
    #[command(name = "create-ca")]
    Ca {
        /// The CA certificate's common name.
        #[arg(long, default_value = "raftq CA")]
        name: String,
        /// Days the CA is valid.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Create node ID's certificate, for serving and calling peers, signed by
    /// the CA in DIR: DIR/node-ID.pem and DIR/node-ID-key.pem.
    #[command(name = "create-node")]
    Node {
        /// The node's id, as raftqd's --id gives it.
        #[arg(long)]
        id: u64,
        /// A DNS name or IP address clients and peers reach the node at
        /// (repeat for each; localhost and 127.0.0.1 are always included).
        #[arg(long = "host", value_name = "HOST", required = true)]
        hosts: Vec<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 825)]
        days: u32,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Create USER's client certificate, signed by the CA in DIR:
    /// DIR/client-USER.pem and DIR/client-USER-key.pem.
    #[command(name = "create-client")]
    Client {
        /// 1 to 64 ASCII letters, digits, '.', '-' or '_'.
        #[arg(long)]
        user: String,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 825)]
        days: u32,
        #[command(flatten)]
        out: OutArgs,
    },
}

#[derive(Debug, Args)]
pub struct OutArgs {
    /// Directory of the CA and the certificates (created if missing).
    #[arg(long, default_value = "./certs")]
    dir: PathBuf,
    /// Replace files that exist.
    #[arg(long)]
    force: bool,
}

pub fn run(cmd: &CertCommand, json_out: bool) -> anyhow::Result<()> {
    let (out, made, what) = match cmd {
        CertCommand::Ca { name, days, out } => {
            let ca = raftq_certs::create_ca(name, *days).context("create the CA")?;
            (out, Made::new(&out.dir, "ca", ca), json!({ "ca": name }))
        }
        CertCommand::Node {
            id,
            hosts,
            days,
            out,
        } => {
            let ca = read_ca(&out.dir)?;
            let node = raftq_certs::create_node(&ca, *id, hosts, *days)
                .with_context(|| format!("create node {id}'s certificate"))?;
            let made = Made::new(&out.dir, &format!("node-{id}"), node);
            (out, made, json!({ "node": id, "hosts": hosts }))
        }
        CertCommand::Client { user, days, out } => {
            let ca = read_ca(&out.dir)?;
            let client = raftq_certs::create_client(&ca, user, *days)
                .with_context(|| format!("create {user}'s client certificate"))?;
            let made = Made::new(&out.dir, &format!("client-{user}"), client);
            (out, made, json!({ "user": user }))
        }
    };
    let files = made.files();
    write_new(&out.dir, &files, out.force)?;
    report(&files, what, json_out)
}

/// A certificate and key about to be written as `<stem>.pem` and
/// `<stem>-key.pem`.
struct Made {
    cert: PathBuf,
    key: PathBuf,
    pem: Pem,
}

impl Made {
    fn new(dir: &Path, stem: &str, pem: Pem) -> Self {
        Made {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}-key.pem")),
            pem,
        }
    }

    fn files(&self) -> [NewFile<'_>; 2] {
        [
            NewFile {
                path: &self.cert,
                contents: &self.pem.cert_pem,
                secret: false,
            },
            NewFile {
                path: &self.key,
                contents: &self.pem.key_pem,
                secret: true,
            },
        ]
    }
}

fn report(files: &[NewFile<'_>], mut what: Value, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        let paths: Vec<_> = files.iter().map(|f| f.path.display().to_string()).collect();
        what["files"] = json!(paths);
        outln!("{what}")?;
        return Ok(());
    }
    for f in files {
        if f.secret {
            outln!("wrote {} (private key, mode 0600)", f.path.display())?;
        } else {
            outln!("wrote {}", f.path.display())?;
        }
    }
    Ok(())
}
