//! The flags every command of both tools takes, and the client they describe.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use raftq_client::{Client, ClientOptions, TlsOptions};

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Comma-separated node addresses (any node works; the others are fallbacks).
    #[arg(
        long,
        global = true,
        env = "RAFTQ_SERVERS",
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    )]
    pub servers: String,
    /// Machine-readable output: JSON, one object per line.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to keep retrying while the cluster fails over or elects a
    /// leader (e.g. 30s, 500ms).
    #[arg(long, global = true, default_value = "30s", value_parser = crate::duration::parse)]
    pub timeout: Duration,
    /// CA certificate (PEM) of a cluster that serves TLS: connections use
    /// TLS and the nodes' certificates must chain to it.
    #[arg(long, global = true, env = "RAFTQ_CA")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS (`raftq cert create-client`).
    #[arg(long, global = true, env = "RAFTQ_CERT", requires = "ca")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "RAFTQ_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Bearer token of a cluster that authenticates users by token
    /// (`raftq auth new-token`). Prefer the environment: a flag shows in `ps`.
    #[arg(long, global = true, env = "RAFTQ_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl GlobalArgs {
    pub fn client_options(&self) -> Result<ClientOptions, raftq_client::Error> {
        let tls = match &self.ca {
            Some(ca) => Some(TlsOptions::from_files(
                ca,
                self.cert.as_deref(),
                self.key.as_deref(),
            )?),
            None => None,
        };
        Ok(ClientOptions {
            retry_deadline: self.timeout,
            // One attempt never outlasts the whole budget.
            request_timeout: ClientOptions::default().request_timeout.min(self.timeout),
            tls,
            token: self.token.clone(),
            ..Default::default()
        })
    }

    /// Connects to `--servers`: fails when none of them answers.
    pub async fn connect(&self) -> Result<Client, raftq_client::Error> {
        Client::connect_with([self.servers.as_str()], self.client_options()?).await
    }
}
