//! Publishes N messages to a queue with an idempotent, pipelined producer: a
//! retry after a failover never stores a message twice, and the producer
//! retries by itself (kill the leader while it runs to see).
//!
//!     cargo run -p raftq-client --example producer -- orders 10000
//!
//! Servers come from RAFTQ_SERVERS (default: a local 3-node cluster).

use futures::stream::{FuturesUnordered, StreamExt};
use raftq_client::{message_with_headers, Client, Error, QueueOptions};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let queue = args.next().unwrap_or_else(|| "orders".into());
    let count: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let servers = std::env::var("RAFTQ_SERVERS")
        .unwrap_or_else(|_| "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003".into());

    let client = Client::connect(servers.split(',')).await?;
    match client.create_queue(&queue, QueueOptions::default()).await {
        Ok(_) | Err(Error::AlreadyExists(_)) => {}
        Err(e) => return Err(e),
    }
    let producer = client.producer(&queue);
    // Keep up to 1000 messages unconfirmed: the producer batches them and keeps
    // several batches in flight, in order.
    let mut confirms = FuturesUnordered::new();
    let (mut sent, mut confirmed) = (0u64, 0u64);
    while confirmed < count {
        while sent < count && confirms.len() < 1000 {
            let message = message_with_headers(format!("order #{sent}"), [("source", "example")]);
            confirms.push(producer.send(message));
            sent += 1;
        }
        if let Some(result) = confirms.next().await {
            // Confirmed = fsynced on a majority of the queue's replicas.
            let offset = result?;
            confirmed += 1;
            if confirmed % 1000 == 0 || confirmed == count {
                println!("{confirmed} confirmed (latest offset {offset})");
            }
        }
    }
    Ok(())
}
