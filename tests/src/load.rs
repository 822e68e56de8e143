//! A producer that publishes in the background while a test faults or
//! changes the cluster, and the check that everything it got confirmed is
//! delivered.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_client::Client;
use tokio::task::JoinHandle;

use crate::consumer::{drain, Drained, TestConsumer};

pub struct BackgroundProducer {
    stop: Arc<AtomicBool>,
    task: JoinHandle<(BTreeSet<Bytes>, Duration)>,
}

impl BackgroundProducer {
    /// Publishes batches of ten `{prefix}{n}` payloads to `queue`, 5 ms apart,
    /// until stopped (at most 20,000 batches). Each batch must be confirmed
    /// within the client's retry deadline, whatever the test does meanwhile.
    pub fn start(client: &Client, queue: &str, prefix: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (client, queue, prefix) = (client.clone(), queue.to_string(), prefix.to_string());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut producer = client.producer(&queue);
            let mut confirmed = BTreeSet::new();
            let mut confirm_times = vec![Instant::now()];
            let mut n = 0u64;
            while !stopped.load(Ordering::SeqCst) && n < 20_000 {
                let payloads: Vec<Bytes> = (0..10)
                    .map(|i| Bytes::from(format!("{prefix}{}", n * 10 + i)))
                    .collect();
                producer
                    .send_batch(payloads.clone())
                    .await
                    .expect("confirmed within the retry deadline");
                confirmed.extend(payloads);
                confirm_times.push(Instant::now());
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let longest_gap = confirm_times
                .windows(2)
                .map(|w| w[1] - w[0])
                .max()
                .unwrap_or_default();
            (confirmed, longest_gap)
        });
        BackgroundProducer { stop, task }
    }

    /// Stops it; returns every confirmed payload and the longest time between
    /// two confirms.
    pub async fn stop(self) -> (BTreeSet<Bytes>, Duration) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("background producer")
    }
}

/// Drains `queue` through `addrs` (acking everything) and asserts that every
/// payload in `confirmed` was delivered.
pub async fn assert_all_delivered(
    addrs: &[String],
    queue: &str,
    confirmed: &BTreeSet<Bytes>,
) -> Drained {
    let drained = drain(addrs, queue, confirmed.len(), Duration::from_secs(60)).await;
    let delivered: BTreeSet<Bytes> = drained
        .deliveries
        .iter()
        .map(|d| d.payload.clone())
        .collect();
    let lost: Vec<_> = confirmed.difference(&delivered).take(5).collect();
    assert!(
        lost.is_empty(),
        "{queue}: confirmed messages lost: {lost:?}"
    );
    drained
}

/// Consumes `n` messages of `queue` through `addr` and acks each; returns
/// the payloads whose ack was confirmed. They must never be delivered again.
pub async fn ack_some(addr: &str, queue: &str, n: usize) -> BTreeSet<Bytes> {
    let mut consumer = TestConsumer::subscribe(addr, queue, 64)
        .await
        .expect("subscribe");
    let mut acked = BTreeSet::new();
    while acked.len() < n {
        let delivery = consumer
            .next_delivery(Duration::from_secs(5))
            .await
            .expect("delivery")
            .expect("a message within 5 s");
        if consumer.ack(delivery.offset).await.expect("ack") {
            acked.insert(delivery.payload.clone());
        }
    }
    acked
}

/// Asserts that no payload of `acked` is among `drained`'s deliveries.
pub fn assert_none_redelivered(queue: &str, drained: &Drained, acked: &BTreeSet<Bytes>) {
    let back: Vec<_> = drained
        .deliveries
        .iter()
        .filter(|d| acked.contains(&d.payload))
        .map(|d| d.offset)
        .take(5)
        .collect();
    assert!(
        back.is_empty(),
        "{queue}: acked messages delivered again at offsets {back:?}"
    );
}
