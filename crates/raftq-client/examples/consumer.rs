//! Consumes a queue the safe way: process first, then ack; if processing fails,
//! nack with requeue so the message is tried again (up to the queue's
//! max_deliveries, after which it goes to the dead-letter queue). The consumer
//! resubscribes by itself after a failover.
//!
//!     cargo run -p raftq-client --example consumer -- orders
//!
//! Stops after 5 s without messages.

use std::time::Duration;

use raftq_client::{Client, Delivery, Error};

/// Stand-in for real work: refuses payloads that are not UTF-8.
fn process(delivery: &Delivery) -> Result<(), String> {
    let text = std::str::from_utf8(&delivery.payload).map_err(|e| e.to_string())?;
    let again = if delivery.redelivered {
        " (redelivered)"
    } else {
        ""
    };
    println!("offset {:>6}: {text}{again}", delivery.offset);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let queue = std::env::args().nth(1).unwrap_or_else(|| "orders".into());
    let servers = std::env::var("RAFTQ_SERVERS")
        .unwrap_or_else(|_| "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003".into());
    let client = Client::connect(servers.split(',')).await?;
    let mut consumer = client.consumer(&queue, 100).await?;
    while let Some(delivery) = consumer.next_timeout(Duration::from_secs(5)).await? {
        let settled = match process(&delivery) {
            Ok(()) => consumer.ack(delivery.offset).await?,
            Err(reason) => {
                eprintln!("offset {} failed ({reason}); requeueing", delivery.offset);
                consumer.nack(delivery.offset, true).await?
            }
        };
        if !settled.is_settled() {
            // The session ended before the ack: the cluster took the message back.
            eprintln!("offset {} will be delivered again", delivery.offset);
        }
    }
    Ok(())
}
