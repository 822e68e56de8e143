//! The Rust client rides through leader kills without the
//! caller writing any retry loop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raftq_client::{Client, ClientOptions, QueueOptions};
use raftq_tests::client::wait_leader;
use raftq_tests::cluster::Cluster;
use tokio::sync::Mutex;

const TOTAL: u64 = 20_000;
const PRODUCERS: u64 = 4;
const BATCH: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stores_every_message_exactly_once_across_two_leader_kills() {
    let cluster = Arc::new(Mutex::new(Cluster::start(3).await));
    let addrs: Vec<String> = {
        let c = cluster.lock().await;
        c.ids().into_iter().map(|id| c.addr(id)).collect()
    };
    let options = ClientOptions {
        retry_deadline: Duration::from_secs(60),
        ..Default::default()
    };
    let client = Client::connect_with(addrs.clone(), options)
        .await
        .expect("connect");
    client
        .create_queue("ride", QueueOptions::default())
        .await
        .expect("create");

    // A consumer that runs through the kills: it only calls next/ack.
    let consumer_client = client.clone();
    let consumer = tokio::spawn(async move {
        let mut consumer = consumer_client
            .consumer("ride", 256)
            .await
            .expect("subscribe");
        // payload -> distinct offsets it was delivered at (2+ = stored twice).
        // Delivered, not "ack confirmed": an ack committed just before a leader
        // died is applied without its confirm reaching us, and that message is
        // (correctly) never delivered again.
        let mut delivered: BTreeMap<Bytes, BTreeSet<u64>> = BTreeMap::new();
        let mut idle_rounds = 0;
        let mut acks = Vec::new();
        while (delivered.len() as u64) < TOTAL && idle_rounds < 60 {
            match consumer.next_timeout(Duration::from_secs(1)).await {
                Ok(Some(d)) => {
                    idle_rounds = 0;
                    delivered
                        .entry(d.payload.clone())
                        .or_default()
                        .insert(d.offset);
                    // The ack is sent at once; its confirmation is awaited
                    // elsewhere so the next delivery is not held up by it.
                    let ack = consumer.ack(vec![d.offset]);
                    acks.push(tokio::spawn(async move {
                        if let Err(e) = ack.await {
                            eprintln!("ack not confirmed: {e}");
                        }
                    }));
                }
                Ok(None) => idle_rounds += 1,
                Err(e) => panic!("consumer gave up: {e}"),
            }
        }
        for ack in acks {
            let _ = ack.await;
        }
        // An ack that did not take effect (its leader died) comes back as a
        // redelivery: settle those too, so the queue ends empty.
        while let Ok(Some(d)) = consumer.next_timeout(Duration::from_secs(2)).await {
            delivered
                .entry(d.payload.clone())
                .or_default()
                .insert(d.offset);
            let _ = consumer.ack(vec![d.offset]).await;
        }
        delivered
    });

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut producer = client.producer("ride");
                let per = TOTAL / PRODUCERS;
                for b in 0..per / BATCH {
                    let payloads: Vec<Bytes> = (0..BATCH)
                        .map(|i| Bytes::from(format!("p{p}-{}", b * BATCH + i)))
                        .collect();
                    producer
                        .send_batch(payloads)
                        .await
                        .expect("batch confirmed within the deadline");
                }
            })
        })
        .collect();

    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut c = cluster.lock().await;
        let leader = wait_leader(&addrs, "ride", Duration::from_secs(20)).await;
        eprintln!("kill {round}: SIGKILL leader {leader}");
        c.kill(leader);
        drop(c);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.lock().await.restart(leader);
    }
    for p in producers {
        p.await.expect("producer task");
    }
    let info = client.get_queue("ride").await.expect("info");
    eprintln!(
        "queue after kills: depth {} (acked so far not included)",
        info.depth
    );

    let acked = consumer.await.expect("consumer task");
    assert_eq!(
        acked.len() as u64,
        TOTAL,
        "every published message was delivered"
    );
    for p in 0..PRODUCERS {
        for i in 0..TOTAL / PRODUCERS {
            let key = Bytes::from(format!("p{p}-{i}"));
            assert!(acked.contains_key(&key), "message {key:?} lost");
        }
    }
    let stored_twice: Vec<_> = acked
        .iter()
        .filter(|(_, offsets)| offsets.len() > 1)
        .take(5)
        .collect();
    assert!(
        stored_twice.is_empty(),
        "messages stored more than once: {stored_twice:?}"
    );
    let info = client.get_queue("ride").await.expect("info");
    assert_eq!(info.depth, 0, "no duplicate copies left behind");
}
