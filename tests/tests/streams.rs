//! Stream queues: readers on every replica see one identical
//! sequence through a leader kill, named consumers resume anywhere, and
//! retention removes the oldest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_client::{
    Client, ClientOptions, QueueKind, QueueOptions, StoredMessage, StreamOptions, StreamStart,
};
use raftq_tests::cluster::Cluster;
use tokio::sync::Mutex;

const TOTAL: u64 = 3_000;
const BATCH: u64 = 20;

fn stream_options() -> QueueOptions {
    QueueOptions {
        kind: QueueKind::Stream as i32,
        ..Default::default()
    }
}

fn client_options() -> ClientOptions {
    ClientOptions {
        retry_deadline: Duration::from_secs(60),
        ..Default::default()
    }
}

/// A client whose first seed is `first`: stream readers are served by the
/// first seed that answers, so this pins a reader to a node until it fails.
fn client_via(addrs: &[String], first: usize) -> Client {
    let mut order = addrs.to_vec();
    order.rotate_left(first);
    Client::lazy(order, client_options()).expect("client")
}

/// Reads from offset 0 until the reader's position reaches `end` (known only
/// once publishing is over), or panics after `timeout`.
async fn read_until(
    client: Client,
    queue: &str,
    end: Arc<Mutex<Option<u64>>>,
    timeout: Duration,
) -> (Vec<StoredMessage>, Vec<u64>) {
    let options = StreamOptions {
        start: StreamStart::Offset(0),
        ..Default::default()
    };
    let mut reader = client
        .stream_reader(queue, options)
        .await
        .expect("open stream reader");
    let mut got = Vec::new();
    let mut served_by: Vec<u64> = Vec::new();
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(end) = *end.lock().await {
            if reader.position().is_some_and(|p| p >= end) {
                return (got, served_by);
            }
        }
        assert!(
            Instant::now() < deadline,
            "reader stuck at position {:?} after {timeout:?}",
            reader.position()
        );
        match reader.next_timeout(Duration::from_millis(200)).await {
            Ok(Some(m)) => {
                if served_by.last() != Some(&reader.node_id()) {
                    served_by.push(reader.node_id());
                }
                got.push(m);
            }
            Ok(None) => {}
            Err(e) => panic!("stream reader failed: {e}"),
        }
    }
}

/// Three readers, one per node, read the whole stream from offset 0 while it
/// is being written and its leader is SIGKILLed: all three see exactly the
/// same offsets and payloads, with no gap and no duplicate, and every
/// confirmed message is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_on_every_node_see_one_sequence_through_a_leader_kill() {
    let cluster = Arc::new(Mutex::new(Cluster::start(3).await));
    let addrs: Vec<String> = {
        let c = cluster.lock().await;
        c.ids().into_iter().map(|id| c.addr(id)).collect()
    };
    let client = Client::connect_with(addrs.clone(), client_options())
        .await
        .expect("connect");
    client
        .create_queue("events", stream_options())
        .await
        .expect("create stream");

    let end: Arc<Mutex<Option<u64>>> = Arc::default();
    let readers: Vec<_> = (0..addrs.len())
        .map(|i| {
            let c = client_via(&addrs, i);
            let end = end.clone();
            tokio::spawn(read_until(c, "events", end, Duration::from_secs(120)))
        })
        .collect();

    let producer_client = client.clone();
    let producer = tokio::spawn(async move {
        let mut producer = producer_client.producer("events");
        let mut confirmed = Vec::new();
        for b in 0..TOTAL / BATCH {
            let payloads: Vec<Bytes> = (0..BATCH)
                .map(|i| Bytes::from(format!("e{}", b * BATCH + i)))
                .collect();
            let offsets = producer
                .send_batch(payloads.clone())
                .await
                .expect("batch confirmed within the deadline");
            confirmed.extend(offsets.into_iter().zip(payloads));
            // Paced so that publishing spans the kill and the restart.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        confirmed
    });

    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !producer.is_finished(),
        "publishing ended before the kill: slow it down"
    );
    let leader = {
        let c = cluster.lock().await;
        c.leader_of("events").await
    };
    eprintln!("SIGKILL stream leader {leader}");
    cluster.lock().await.kill(leader);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.lock().await.restart(leader);

    let confirmed = producer.await.expect("producer task");
    let last = confirmed.iter().map(|(o, _)| *o).max().expect("confirmed");
    *end.lock().await = Some(last + 1);

    let mut sequences = Vec::new();
    for (i, r) in readers.into_iter().enumerate() {
        let (got, served_by) = r.await.expect("reader task");
        eprintln!(
            "reader {i}: {} messages, served by nodes {served_by:?}",
            got.len()
        );
        let offsets: Vec<u64> = got.iter().map(|m| m.offset).collect();
        let expected: Vec<u64> = (0..=last).collect();
        assert_eq!(
            offsets, expected,
            "reader {i}: offsets are not exactly 0..={last} (gap or duplicate)"
        );
        sequences.push(got);
    }
    for (i, seq) in sequences.iter().enumerate().skip(1) {
        let differ = seq
            .iter()
            .zip(&sequences[0])
            .find(|(a, b)| a.offset != b.offset || a.payload != b.payload);
        assert!(
            differ.is_none(),
            "reader {i} and reader 0 differ at {:?}",
            differ.map(|(a, _)| a.offset)
        );
    }
    for (offset, payload) in &confirmed {
        let m = &sequences[0][*offset as usize];
        assert_eq!(&m.payload, payload, "confirmed message at offset {offset}");
    }
}

/// A named consumer commits through the leader; reconnecting to another node
/// (also after the leader dies) it resumes at its committed offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_consumer_resumes_from_its_committed_offset_on_another_node() {
    let mut cluster = Cluster::start(3).await;
    let addrs: Vec<String> = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.addr(id))
        .collect();
    let leader = cluster
        .create_queue("named", stream_options())
        .await
        .leader_id;
    let bodies: Vec<Bytes> = (0..500).map(|i| Bytes::from(format!("n{i}"))).collect();
    cluster.publish_all(leader, "named", &bodies).await;

    let options = StreamOptions {
        start: StreamStart::First,
        consumer_name: Some("billing".into()),
        ..Default::default()
    };
    let followers = cluster.others(&[leader]);
    let index_of = |id: u64| {
        addrs
            .iter()
            .position(|a| *a == cluster.addr(id))
            .unwrap_or(0)
    };
    let (first_follower, second_follower) = (index_of(followers[0]), index_of(followers[1]));

    // Read 200 through one follower and commit.
    let mut reader = client_via(&addrs, first_follower)
        .stream_reader("named", options.clone())
        .await
        .expect("reader");
    for expected in 0..200u64 {
        let m = reader
            .next_timeout(Duration::from_secs(10))
            .await
            .expect("read")
            .expect("a message");
        assert_eq!(m.offset, expected);
    }
    assert_eq!(reader.node_id(), followers[0]);
    reader.commit().await.expect("commit at 200");
    drop(reader);

    // Another node: resumes at 200, not at `first`.
    let mut reader = client_via(&addrs, second_follower)
        .stream_reader("named", options.clone())
        .await
        .expect("reader");
    let m = reader
        .next_timeout(Duration::from_secs(10))
        .await
        .expect("read")
        .expect("a message");
    assert_eq!(m.offset, 200, "resumed at the committed offset");
    assert_eq!(reader.node_id(), followers[1]);
    for _ in 201..350 {
        reader
            .next_timeout(Duration::from_secs(10))
            .await
            .expect("read")
            .expect("a message");
    }
    reader.commit().await.expect("commit at 350");
    drop(reader);

    // The leader dies; a survivor serves the consumer from 350.
    cluster.kill(leader);
    let mut reader = client_via(&addrs, first_follower)
        .stream_reader("named", options)
        .await
        .expect("reader after the leader died");
    let m = reader
        .next_timeout(Duration::from_secs(20))
        .await
        .expect("read")
        .expect("a message");
    assert_eq!(
        m.offset, 350,
        "resumed at the committed offset after failover"
    );
    assert_eq!(m.payload, bodies[350]);
}

/// Retention by length removes the oldest; a reader asking for offset 0 starts
/// at the oldest retained message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_the_oldest_and_readers_start_at_what_is_left() {
    let cluster = Cluster::start(3).await;
    let options = QueueOptions {
        max_length: 100,
        ..stream_options()
    };
    let leader = cluster.create_queue("short", options).await.leader_id;
    let bodies: Vec<Bytes> = (0..250).map(|i| Bytes::from(format!("r{i}"))).collect();
    cluster.publish_all(leader, "short", &bodies).await;
    let follower = cluster.others(&[leader])[0];
    let client = Client::lazy([cluster.addr(follower)], client_options()).expect("client");
    let mut reader = client
        .stream_reader(
            "short",
            StreamOptions {
                start: StreamStart::Offset(0),
                ..Default::default()
            },
        )
        .await
        .expect("reader");
    let first = reader
        .next_timeout(Duration::from_secs(10))
        .await
        .expect("read")
        .expect("a message");
    assert_eq!(first.offset, 150, "the 100 newest of 250 are retained");
    assert_eq!(first.payload, bodies[150]);
    let info = client.get_queue("short").await.expect("info");
    assert_eq!(
        (info.first_offset, info.next_offset, info.depth),
        (150, 250, 100)
    );
}

/// Design guarantee 1 on a stream: SIGKILL of every node and a restart keeps
/// every confirmed message at its offset and every committed consumer offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_and_its_committed_offsets_survive_a_whole_cluster_restart() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster
        .create_queue("kept", stream_options())
        .await
        .leader_id;
    let bodies: Vec<Bytes> = (0..1_000).map(|i| Bytes::from(format!("k{i}"))).collect();
    let confirmed = cluster.publish_all(leader, "kept", &bodies).await;
    let addrs: Vec<String> = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.addr(id))
        .collect();
    Client::lazy(addrs.clone(), client_options())
        .expect("client")
        .commit_offset("kept", "audit", 640)
        .await
        .expect("commit");

    cluster.kill_all();
    cluster.start_all();
    cluster.wait_ready(Duration::from_secs(30)).await;

    let client = Client::lazy(addrs, client_options()).expect("client");
    let mut reader = client
        .stream_reader(
            "kept",
            StreamOptions {
                start: StreamStart::Offset(0),
                ..Default::default()
            },
        )
        .await
        .expect("reader after restart");
    for (offset, payload) in &confirmed {
        let m = reader
            .next_timeout(Duration::from_secs(20))
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("confirmed offset {offset} missing after restart"));
        assert_eq!((m.offset, &m.payload), (*offset, payload));
    }
    // Every replica, once caught up with the leader's commit point, has it.
    for id in cluster.ids() {
        // Right after the restart an election may still be running: retry that.
        let deadline = Instant::now() + Duration::from_secs(20);
        let info = loop {
            match raftq_tests::client::get_queue_linearizable(&cluster.addr(id), "kept").await {
                Ok(info) => break info,
                Err(e) if raftq_tests::client::retryable(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("linearizable GetQueue on node {id}: {e}"),
            }
        };
        assert_eq!(info.answered_by, id);
        assert_eq!(
            info.consumer_offsets.get("audit"),
            Some(&640),
            "node {id} lost the committed offset (leader {}, term {}, applied index {})",
            info.leader_id,
            info.term,
            info.applied_index
        );
        assert_eq!((info.first_offset, info.next_offset), (0, 1_000));
    }
}

/// Design guarantee 7 on streams: bad requests get a precise code and change
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stream_requests_get_precise_codes_and_change_nothing() {
    use raftq_client::Error;
    let cluster = Cluster::start(3).await;
    let leader = cluster
        .create_queue("strict", stream_options())
        .await
        .leader_id;
    cluster.create_queue("work", QueueOptions::default()).await;
    cluster
        .publish_all(leader, "strict", &[Bytes::from_static(b"only")])
        .await;
    let addrs: Vec<String> = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.addr(id))
        .collect();
    let client = Client::lazy(addrs, client_options()).expect("client");
    client
        .commit_offset("strict", "ok", 1)
        .await
        .expect("a commit at the end is valid");

    let past_end = client.commit_offset("strict", "ok", 2).await;
    assert!(
        matches!(past_end, Err(Error::InvalidArgument(_))),
        "{past_end:?}"
    );
    let no_name = client.commit_offset("strict", "", 0).await;
    assert!(
        matches!(no_name, Err(Error::InvalidArgument(_))),
        "{no_name:?}"
    );
    let on_work = client.commit_offset("work", "ok", 0).await;
    assert!(
        matches!(on_work, Err(Error::FailedPrecondition(_))),
        "{on_work:?}"
    );
    let read_work = client
        .stream_reader("work", StreamOptions::default())
        .await
        .map(|_| ());
    assert!(
        matches!(read_work, Err(Error::FailedPrecondition(_))),
        "{read_work:?}"
    );
    let consume_stream = client.consumer("strict", 10).await.map(|_| ());
    assert!(
        matches!(consume_stream, Err(Error::FailedPrecondition(_))),
        "{consume_stream:?}"
    );
    let work_option = client
        .create_queue(
            "bad",
            QueueOptions {
                max_deliveries: 3,
                ..stream_options()
            },
        )
        .await;
    assert!(
        matches!(work_option, Err(Error::InvalidArgument(_))),
        "{work_option:?}"
    );
    let unknown = client.commit_offset("missing", "ok", 0).await;
    assert!(matches!(unknown, Err(Error::NotFound(_))), "{unknown:?}");

    let info = raftq_tests::client::get_queue_linearizable(&cluster.addr(leader), "strict")
        .await
        .expect("info");
    assert_eq!(
        info.consumer_offsets.get("ok"),
        Some(&1),
        "refusals changed nothing"
    );
    assert_eq!(info.consumer_offsets.len(), 1);
    assert_eq!((info.first_offset, info.next_offset), (0, 1));
    assert!(matches!(
        client.get_queue("bad").await,
        Err(Error::NotFound(_))
    ));
}
