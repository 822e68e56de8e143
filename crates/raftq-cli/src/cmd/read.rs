//! `raftq read`: browse by offset on the node `--servers` names first (follower
//! reads: that node answers, at the consistency asked for).

use clap::{Args, ValueEnum};
use raftq_client::{Client, Consistency};
use raftq_cmdline::outln;
use serde_json::json;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ConsistencyArg {
    /// Read index from the leader first: sees every committed message.
    Linearizable,
    /// This node's state at once; may lag the leader.
    Stale,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    queue: String,
    /// First offset to read.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Most messages to return.
    #[arg(long, default_value_t = 100)]
    count: u32,
    #[arg(long, value_enum, default_value = "linearizable")]
    consistency: ConsistencyArg,
}

pub async fn run(client: &Client, args: &ReadArgs, json_out: bool) -> anyhow::Result<()> {
    let consistency = match args.consistency {
        ConsistencyArg::Linearizable => Consistency::Linearizable,
        ConsistencyArg::Stale => Consistency::StaleOk,
    };
    let resp = client
        .read(&args.queue, args.from, args.count, consistency)
        .await?;
    for m in &resp.messages {
        let payload = String::from_utf8_lossy(&m.payload);
        if json_out {
            outln!(
                "{}",
                json!({
                    "offset": m.offset,
                    "payload": payload,
                    "headers": m.headers,
                    "publish_time_ms": m.publish_time_ms,
                    "delivery_count": m.delivery_count,
                })
            )?;
        } else {
            outln!("{:>8}  {payload}", m.offset)?;
        }
    }
    if json_out {
        outln!(
            "{}",
            json!({ "node": resp.node_id, "applied_index": resp.applied_index, "count": resp.messages.len() })
        )?;
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
