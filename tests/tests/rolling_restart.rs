//! A rolling restart (SIGTERM, restart, next node) under publish load
//! loses nothing, and graceful hand-off keeps the publish gap to about one
//! election per restart.

use std::time::{Duration, Instant};

use raftq_client::{Client, ClientOptions, QueueOptions};
use raftq_tests::client::{get_queue, wait_leader};
use raftq_tests::cluster::Cluster;
use raftq_tests::load::{assert_all_delivered, BackgroundProducer};

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

    let publisher = BackgroundProducer::start(&client, "roll", "r");

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
    let (confirmed, longest_gap) = publisher.stop().await;
    eprintln!(
        "rolling restart: {} confirmed, longest gap between confirms {longest_gap:?}",
        confirmed.len()
    );

    assert_all_delivered(&addrs, "roll", &confirmed).await;
}
