//! Publishes N messages to a queue with an idempotent producer: a retry after a
//! failover never stores a message twice, and the producer retries by itself.
//!
//!     cargo run -p raftq-client --example producer -- orders 1000
//!
//! Servers come from RAFTQ_SERVERS (default: a local 3-node cluster).

use bytes::Bytes;
use raftq_client::{Client, Error, QueueOptions};

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
    let mut producer = client.producer(&queue);
    let mut sent = 0;
    while sent < count {
        let batch: Vec<Bytes> = (sent..count.min(sent + 100))
            .map(|i| Bytes::from(format!("order #{i}")))
            .collect();
        let n = batch.len() as u64;
        // Returns once the batch is fsynced on a majority and committed.
        let offsets = producer.send_batch(batch).await?;
        sent += n;
        println!(
            "confirmed {n} messages at offsets {:?}..={:?}",
            offsets.first(),
            offsets.last()
        );
    }
    Ok(())
}
