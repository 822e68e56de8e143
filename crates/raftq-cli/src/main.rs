//! `raftq`: the command-line tool for a raftq cluster. The benchmarks are a
//! tool of their own, `raftq-bench`.

mod cert_files;
mod cmd;
mod ha;
mod queue_display;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raftq_cmdline::GlobalArgs;

#[derive(Debug, Parser)]
#[command(name = "raftq", version, about = "Use and operate a raftq cluster")]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Remote(RemoteCommand),
    /// Create the CA and the node and client certificates for TLS (connects
    /// to no cluster).
    #[command(subcommand)]
    Cert(cmd::cert::CertCommand),
    /// Make bearer tokens for the auth file (connects to no cluster).
    #[command(subcommand)]
    Auth(cmd::auth::AuthCommand),
}

/// The commands that talk to a cluster.
#[derive(Debug, Subcommand)]
enum RemoteCommand {
    /// Create, list, inspect and delete queues.
    #[command(subcommand)]
    Queue(cmd::queue::QueueCommand),
    /// Publish messages (arguments, stdin lines, or generated with --count).
    Publish(cmd::publish::PublishArgs),
    /// Consume messages, acking each after printing it. On a stream: read
    /// from --from or a --name consumer's committed offset (nothing is consumed).
    Consume(cmd::consume::ConsumeArgs),
    /// Read messages by offset without consuming them (from the first server only).
    Read(cmd::read::ReadArgs),
    /// Cluster-wide views.
    #[command(subcommand)]
    Cluster(cmd::cluster::ClusterCommand),
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.global.json;
    let command = match cli.command {
        // Certificates come before the cluster they secure, which may not
        // run yet (or not without them).
        Command::Cert(c) => return cmd::cert::run(&c, json),
        Command::Auth(c) => return cmd::auth::run(&c, json),
        Command::Remote(c) => c,
    };
    let client = cli.global.connect().await?;
    match &command {
        RemoteCommand::Queue(c) => cmd::queue::run(&client, c, json).await,
        RemoteCommand::Publish(a) => cmd::publish::run(&client, a, json).await,
        RemoteCommand::Consume(a) => cmd::consume::run(&client, a, json).await,
        RemoteCommand::Read(a) => cmd::read::run(&client, a, json).await,
        RemoteCommand::Cluster(c) => cmd::cluster::run(&client, c, json).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    raftq_cmdline::output::quiet_panics();
    let cli = Cli::parse();
    raftq_cmdline::output::exit_code(run(cli).await)
}
