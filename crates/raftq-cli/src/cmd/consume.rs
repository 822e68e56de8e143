//! `raftq consume`: print each message, then ack it (the safe order).

use std::time::{Duration, Instant};

use clap::Args;
use raftq_client::Client;
use serde_json::json;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    queue: String,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Unacked deliveries the server may push ahead.
    #[arg(long, default_value_t = 100)]
    prefetch: u32,
    /// Stop when nothing arrives for this long (default 2s with --count or
    /// --json, else wait forever).
    #[arg(long, value_parser = crate::duration::parse)]
    idle: Option<Duration>,
}

pub async fn run(client: &Client, args: &ConsumeArgs, json_out: bool) -> anyhow::Result<()> {
    let idle = args
        .idle
        .or_else(|| (args.count.is_some() || json_out).then_some(Duration::from_secs(2)));
    let mut consumer = client.consumer(&args.queue, args.prefetch).await?;
    let (mut received, mut acked) = (0u64, 0u64);
    let started = Instant::now();
    while args.count.is_none_or(|c| received < c) {
        let delivery = match idle {
            Some(idle) => match consumer.next_timeout(idle).await? {
                Some(d) => d,
                None => break,
            },
            None => consumer.next().await?,
        };
        received += 1;
        if json_out {
            println!(
                "{}",
                json!({
                    "offset": delivery.offset,
                    "payload": String::from_utf8_lossy(&delivery.payload),
                    "headers": delivery.headers,
                    "delivery_count": delivery.delivery_count,
                    "redelivered": delivery.redelivered,
                })
            );
        } else {
            println!(
                "{:>8}  {}{}",
                delivery.offset,
                String::from_utf8_lossy(&delivery.payload),
                if delivery.redelivered {
                    format!("  (redelivered, {} earlier)", delivery.delivery_count)
                } else {
                    String::new()
                }
            );
        }
        match consumer.ack(vec![delivery.offset]).await {
            Ok(confirm) if confirm.settled.contains(&delivery.offset) => acked += 1,
            Ok(_) => eprintln!(
                "offset {} was no longer held (it will be redelivered)",
                delivery.offset
            ),
            Err(e) => eprintln!("ack of offset {} not confirmed: {e}", delivery.offset),
        }
    }
    if json_out {
        println!(
            "{}",
            json!({ "queue": args.queue, "received": received, "acked": acked, "elapsed_ms": started.elapsed().as_millis() as u64 })
        );
    } else {
        eprintln!("received {received}, acked {acked}");
    }
    Ok(())
}
