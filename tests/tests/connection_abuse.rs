//! Guarantee 7 for connections: thousands of idle connections, streams opened
//! and left half-open (headers and no body, or a large body that stalls), and
//! a consumer that never reads its deliveries cost a node bounded memory,
//! stall nothing, and are cut off; a well-behaved client keeps publishing
//! through the same node all along.

use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_proto::v1::{PublishMessage, PublishRequest, QueueOptions};
use raftq_tests::cluster::Cluster;
use raftq_tests::consumer::TestConsumer;
use raftq_tests::scrape::scrape;
use tokio::net::TcpStream;

const IDLE_CONNECTIONS: usize = 2_000;
const HALF_OPEN_CONNECTIONS: usize = 20;
const STREAMS_PER_CONNECTION: usize = 100;
const MIB: f64 = (1 << 20) as f64;
/// What each stream that promises 32 MiB sends before it stalls: without a
/// budget, a node would buffer all of it (250 MiB over the test's streams).
const STALLED_BODY_BYTES: usize = 256 * 1024;

/// Lets this process (and the nodes it starts) hold the sockets the test opens.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

async fn resident_mib(cluster: &Cluster, id: u64) -> f64 {
    let m = scrape(&cluster.node(id).metrics_addr).await;
    m.get("raftq_resident_memory_bytes").copied().unwrap_or(0.0) / MIB
}

/// Small publishes one at a time through `via`: each must be confirmed within
/// 10 s; returns the median latency.
async fn well_behaved_publishes(cluster: &Cluster, via: u64, tag: &str, n: usize) -> Duration {
    let mut client = cluster.queue(via).await;
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let mut request = tonic::Request::new(PublishRequest {
            queue: "steady".into(),
            messages: vec![PublishMessage {
                payload: Bytes::from(format!("{tag}-{i}")),
                headers: Default::default(),
            }],
            producer_id: String::new(),
            sequence: 0,
            key: None,
        });
        request.set_timeout(Duration::from_secs(10));
        let started = Instant::now();
        client
            .publish(request)
            .await
            .unwrap_or_else(|s| panic!("{tag}: publish {i} through node {via}: {s}"));
        took.push(started.elapsed());
    }
    took.sort();
    took[took.len() / 2]
}

/// An HTTP/2 connection that opens Publish streams and sends only headers,
/// or a frame header that promises `promised` bytes and then
/// [`STALLED_BODY_BYTES`] of them.
async fn half_open(
    addr: &str,
    streams: usize,
    promised: Option<u32>,
) -> Result<(h2::client::SendRequest<Bytes>, Vec<h2::SendStream<Bytes>>), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut send, connection) = h2::client::handshake(tcp)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut open = Vec::with_capacity(streams);
    for _ in 0..streams {
        send = send.ready().await.map_err(|e| e.to_string())?;
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{addr}/raftq.v1.QueueService/Publish"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|e| e.to_string())?;
        let (_response, mut body) = send
            .send_request(request, false)
            .map_err(|e| e.to_string())?;
        if let Some(len) = promised {
            let mut data = vec![0u8; 5 + STALLED_BODY_BYTES];
            data[1..5].copy_from_slice(&len.to_be_bytes());
            body.send_data(Bytes::from(data), false)
                .map_err(|e| e.to_string())?;
        }
        open.push(body);
    }
    Ok((send, open))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_half_open_streams_and_a_stuck_consumer_cost_bounded_memory() {
    raise_open_files_limit();
    let cluster = Cluster::start(3).await;
    cluster
        .create_queue("steady", QueueOptions::default())
        .await;
    let info = cluster.create_queue("hoard", QueueOptions::default()).await;
    // The node under attack is a follower: it forwards, so abuse and work
    // meet on it.
    let target = cluster.others(&[info.leader_id])[0];
    let addr = cluster.addr(target);
    let before_mib = resident_mib(&cluster, target).await;
    let calm = well_behaved_publishes(&cluster, target, "calm", 50).await;

    // A consumer that never reads, with the largest prefetch, on a queue
    // holding 20 MiB.
    let payload = Bytes::from(vec![b'h'; 64 * 1024]);
    cluster
        .publish_all(info.leader_id, "hoard", &vec![payload; 320])
        .await;
    let stuck = TestConsumer::subscribe(&addr, "hoard", 10_000)
        .await
        .expect("subscribe");

    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        idle.push(TcpStream::connect(&addr).await.expect("idle connection"));
    }
    let mut half_open_connections = Vec::new();
    for i in 0..HALF_OPEN_CONNECTIONS {
        // Half of them promise a 32 MiB request and stall after 256 KiB.
        let promised = (i % 2 == 1).then_some(32 << 20);
        match half_open(&addr, STREAMS_PER_CONNECTION, promised).await {
            Ok(c) => half_open_connections.push(c),
            Err(e) => eprintln!("half-open connection {i}: {e}"),
        }
    }
    let opened: usize = half_open_connections.iter().map(|(_, s)| s.len()).sum();
    eprintln!(
        "{} idle connections, {opened} half-open streams, one consumer not reading",
        idle.len()
    );
    assert!(
        opened >= STREAMS_PER_CONNECTION,
        "the attack could not even start"
    );

    let under_attack = well_behaved_publishes(&cluster, target, "attacked", 50).await;
    let during_mib = resident_mib(&cluster, target).await;
    eprintln!(
        "median publish through node {target}: {calm:?} calm, {under_attack:?} under attack; \
         resident {before_mib:.0} MiB before, {during_mib:.0} MiB during"
    );
    // Streams waiting for the budget hold what HTTP/2 already took in for
    // them until they are refused (2 s): up to all 250 MiB the stalling
    // streams sent, but no more than that, and only for those 2 s.
    let sent_mib =
        (HALF_OPEN_CONNECTIONS / 2 * STREAMS_PER_CONNECTION * STALLED_BODY_BYTES) as f64 / MIB;
    let bound = before_mib + sent_mib + 128.0;
    assert!(
        during_mib < bound,
        "memory under attack is bounded: {before_mib:.0} -> {during_mib:.0} MiB (bound {bound:.0})"
    );

    // Stalled bodies are dropped: after the stall timeout the streams are reset.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let mut reset = 0;
    for (_, streams) in &mut half_open_connections {
        for body in streams.iter_mut() {
            if body.send_data(Bytes::from_static(b"x"), false).is_err() {
                reset += 1;
            }
        }
    }
    eprintln!("{reset} of {opened} half-open streams reset by the node after the stall timeout");
    assert_eq!(reset, opened, "every stalled stream is cut off");
    let after = well_behaved_publishes(&cluster, target, "after", 20).await;
    eprintln!("median publish after the attack: {after:?}");
    drop(stuck);
    drop(idle);
}
