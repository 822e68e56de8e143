//! The flags every command of both tools takes, and the client they describe.

use std::time::Duration;

use clap::Args;
use raftq_client::{Client, ClientOptions};

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
}

impl GlobalArgs {
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            retry_deadline: self.timeout,
            // One attempt never outlasts the whole budget.
            request_timeout: ClientOptions::default().request_timeout.min(self.timeout),
            ..Default::default()
        }
    }

    /// Connects to `--servers`: fails when none of them answers.
    pub async fn connect(&self) -> Result<Client, raftq_client::Error> {
        Client::connect_with([self.servers.as_str()], self.client_options()).await
    }
}
