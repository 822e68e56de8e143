//! `raftq read`: browse by offset on the node `--servers` names first.

use clap::{Args, ValueEnum};
use raftq_client::Client;
use serde_json::json;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ConsistencyArg {
    Linearizable,
    Stale,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    queue: String,
    #[arg(long, default_value_t = 0)]
    from: u64,
    #[arg(long, default_value_t = 100)]
    count: u32,
    #[arg(long, value_enum, default_value = "linearizable")]
    consistency: ConsistencyArg,
}

pub async fn run(client: &Client, args: &ReadArgs, json_out: bool) -> anyhow::Result<()> {
    let linearizable = matches!(args.consistency, ConsistencyArg::Linearizable);
    let resp = client
        .read(&args.queue, args.from, args.count, linearizable)
        .await?;
    for m in &resp.messages {
        if json_out {
            println!(
                "{}",
                json!({ "offset": m.offset, "payload": String::from_utf8_lossy(&m.payload), "headers": m.headers })
            );
        } else {
            println!("{:>8}  {}", m.offset, String::from_utf8_lossy(&m.payload));
        }
    }
    if json_out {
        println!(
            "{}",
            json!({ "node": resp.node_id, "applied_index": resp.applied_index, "count": resp.messages.len() })
        );
    } else {
        eprintln!(
            "{} message(s) from node {} at applied index {}",
            resp.messages.len(),
            resp.node_id,
            resp.applied_index
        );
    }
    Ok(())
}
