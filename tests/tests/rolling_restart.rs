//! A rolling restart (SIGTERM, restart, next node) under publish load
//! loses nothing, and graceful hand-off keeps the publish gap to about one
//! election per restart.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_client::{Client, ClientOptions, QueueOptions};
use raftq_tests::client::{get_queue, wait_leader};
use raftq_tests::cluster::Cluster;
use raftq_tests::consumer::drain;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load_loses_nothing() {
    let mut cluster = Cluster::start(3).await;
    let addrs: Vec<String> = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.addr(id))
        .collect();
    let options = ClientOptions {
        retry_deadline: Duration::from_secs(60),
        ..Default::default()
    };
    let client = Client::connect_with(addrs.clone(), options)
        .await
        .expect("connect");
    client
        .create_queue("roll", QueueOptions::default())
        .await
        .expect("create");

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut producer = client.producer("roll");
            let mut confirmed = BTreeSet::new();
            let mut confirm_times = vec![Instant::now()];
            let mut n = 0u64;
            // Bounded: stops when told, or after 20,000 batches at most.
            while !stop.load(Ordering::SeqCst) && n < 20_000 {
                let payloads: Vec<Bytes> = (0..10)
                    .map(|i| Bytes::from(format!("r{}", n * 10 + i)))
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
        })
    };

    for id in cluster.ids() {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let took = cluster.terminate(id, Duration::from_secs(15));
        eprintln!("node {id} exited {took:?} after SIGTERM");
        cluster.restart(id);
        let leader = wait_leader(&addrs, "roll", Duration::from_secs(20)).await;
        // Wait until the restarted node's replica has caught up before the next.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mine = get_queue(&cluster.addr(id), "roll").await.ok();
            let lead = get_queue(&cluster.addr(leader), "roll").await.ok();
            if let (Some(m), Some(l)) = (mine, lead) {
                if m.answered_by == id && m.applied_index + 20 >= l.applied_index {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not catch up after restart"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let (confirmed, longest_gap) = publisher.await.expect("publisher");
    eprintln!(
        "rolling restart: {} confirmed, longest gap between confirms {longest_gap:?}",
        confirmed.len()
    );

    let drained = drain(&addrs, "roll", confirmed.len(), Duration::from_secs(60)).await;
    let delivered: BTreeSet<Bytes> = drained
        .deliveries
        .iter()
        .map(|d| d.payload.clone())
        .collect();
    let lost: Vec<_> = confirmed.difference(&delivered).take(5).collect();
    assert!(
        lost.is_empty(),
        "confirmed messages lost in the rolling restart: {lost:?}"
    );
}
