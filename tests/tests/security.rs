//! Security (README "Security"): TLS for clients, mutual TLS between nodes.
//! A plaintext client, a client or peer with another CA's certificate, and a
//! peer request without a node certificate (or with one naming another node)
//! are all refused, and refusing changes nothing; certificates are reloaded
//! without a restart; a node on a public address without TLS does not start.

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_client::{Client, ClientIdentity, ClientOptions, QueueOptions, TlsOptions};
use raftq_proto::internal::raft_peer_client::RaftPeerClient;
use raftq_proto::internal::RaftRequest;
use raftq_tests::cluster::Cluster;
use raftq_tests::node::raftqd_bin;
use raftq_tests::pki::TestPki;
use raftq_tests::ports::free_port;
use raftq_tests::scrape::scrape;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

fn quick(tls: Option<TlsOptions>) -> ClientOptions {
    ClientOptions {
        retry_deadline: Duration::from_secs(2),
        request_timeout: Duration::from_secs(1),
        tls,
        ..Default::default()
    }
}

async fn status_with(addr: &str, tls: Option<TlsOptions>) -> Result<u64, raftq_client::Error> {
    let client = Client::lazy([addr.to_string()], quick(tls))?;
    Ok(client.cluster_status().await?.metadata_leader)
}

/// A raw peer-transport client over TLS, presenting `identity` (if any).
async fn peer(
    addr: &str,
    ca_pem: &str,
    identity: Option<&ClientIdentity>,
) -> Result<RaftPeerClient<tonic::transport::Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("127.0.0.1");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await?;
    Ok(RaftPeerClient::new(channel))
}

fn vote_from(from: u64) -> RaftRequest {
    RaftRequest {
        group: 0,
        from,
        // Never decoded when the sender is refused.
        payload: Bytes::from_static(b"a vote for a term far ahead"),
        data: Bytes::new(),
        to: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_work_and_plaintext_or_foreign_certificates_are_refused() {
    let cluster = Cluster::builder(3).tls().start().await;
    let pki = cluster.pki.as_ref().expect("a TLS cluster");
    let client = Client::connect_with(cluster.addrs(&[1, 2, 3]), cluster.client_options())
        .await
        .expect("a client trusting the cluster's CA connects");
    client
        .create_queue("secure", QueueOptions::default())
        .await
        .expect("create over TLS");
    let mut producer = client.producer("secure");
    let sent: Vec<Bytes> = (0..100).map(|i| Bytes::from(format!("s{i}"))).collect();
    producer
        .send_batch(sent.clone())
        .await
        .expect("publish over TLS, replicated over mutual TLS");
    let mut consumer = client
        .consumer("secure", 100)
        .await
        .expect("consume over TLS");
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let delivery = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .expect("deliveries within 20 s")
            .expect("the consumer stays open")
            .expect("a delivery");
        consumer.ack(delivery.offset).await.expect("ack");
        got.push(delivery.payload);
    }
    assert_eq!(got, sent, "every message, in order");

    let addr = cluster.addr(1);
    let plaintext = status_with(&addr, None).await;
    assert!(
        plaintext.is_err(),
        "a plaintext client got an answer: {plaintext:?}"
    );

    let rogue = TestPki::create(&cluster.node(1).data_dir.join("rogue"), "rogue CA");
    let trusts_rogue = status_with(&addr, Some(rogue.client_tls(None))).await;
    assert!(
        trusts_rogue.is_err(),
        "a client trusting another CA accepted the node's certificate: {trusts_rogue:?}"
    );
    let foreign_cert = Some(pki.client_tls(Some(rogue.client_identity("mallory"))));
    let refused = status_with(&addr, foreign_cert).await;
    assert!(
        refused.is_err(),
        "a client certificate of another CA was accepted: {refused:?}"
    );
    let own_cert = Some(pki.client_tls(Some(pki.client_identity("alice"))));
    assert!(
        status_with(&addr, own_cert).await.is_ok(),
        "a client certificate of the cluster's CA"
    );

    let failures = scrape(&cluster.node(1).metrics_addr)
        .await
        .get("raftq_tls_handshake_failures_total")
        .copied()
        .unwrap_or(0.0);
    assert!(failures >= 2.0, "handshake failures counted: {failures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_peer_can_neither_append_nor_vote() {
    let cluster = Cluster::builder(3).tls().start().await;
    let pki = cluster.pki.as_ref().expect("a TLS cluster");
    let client = Client::connect_with(cluster.addrs(&[1, 2, 3]), cluster.client_options())
        .await
        .expect("connect");
    let before = client
        .create_queue("guarded", QueueOptions::default())
        .await
        .expect("create");
    let addr = cluster.addr(1);

    let mut anonymous = peer(&addr, pki.ca_pem(), None)
        .await
        .expect("TLS without a certificate");
    let refused = anonymous
        .vote(vote_from(2))
        .await
        .expect_err("no certificate");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = anonymous
        .append_entries(vote_from(2))
        .await
        .expect_err("no certificate");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    let alice = pki.client_identity("alice");
    let mut user = peer(&addr, pki.ca_pem(), Some(&alice))
        .await
        .expect("a user's certificate");
    let refused = user
        .vote(vote_from(2))
        .await
        .expect_err("a user is no peer");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    let three = pki.node_identity(3);
    let mut impostor = peer(&addr, pki.ca_pem(), Some(&three))
        .await
        .expect("node 3's certificate");
    let refused = impostor
        .vote(vote_from(2))
        .await
        .expect_err("node 3 posing as node 2");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("node 3's"), "{refused:?}");
    // Speaking for itself, node 3's certificate gets past the check (and the
    // garbage payload is then refused for what it is).
    let past = impostor
        .vote(vote_from(3))
        .await
        .expect_err("garbage payload");
    assert_eq!(past.code(), Code::InvalidArgument, "{past:?}");

    let rogue = TestPki::create(&cluster.node(1).data_dir.join("rogue"), "rogue CA");
    let forged = rogue.node_identity(2);
    let handshake = peer(&addr, pki.ca_pem(), Some(&forged)).await;
    let got_through = match handshake {
        Err(_) => false,
        Ok(mut c) => c.vote(vote_from(2)).await.is_ok(),
    };
    assert!(
        !got_through,
        "a node certificate of another CA reached the Raft transport"
    );

    // Nothing changed: same leader and term, and the queue still takes writes.
    let after = client.get_queue("guarded").await.expect("queue info");
    assert_eq!(
        (after.leader_id, after.term),
        (before.leader_id, before.term)
    );
    client
        .producer("guarded")
        .send_batch(vec![Bytes::from_static(b"still fine")])
        .await
        .expect("publish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_reloaded_without_a_restart() {
    let cluster = Cluster::builder(3).tls().start().await;
    let pki = cluster.pki.as_ref().expect("a TLS cluster");
    let next = TestPki::create(&cluster.node(1).data_dir.join("next-ca"), "next CA");
    let new_ca_only = Some(next.client_tls(None));
    for id in [1, 2, 3] {
        assert!(
            status_with(&cluster.addr(id), new_ca_only.clone())
                .await
                .is_err(),
            "node {id} serves the new CA's certificate before the rotation"
        );
    }
    pki.rotate_to(&next, &[1, 2, 3]);
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in [1, 2, 3] {
        while status_with(&cluster.addr(id), new_ca_only.clone())
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "node {id} did not pick up its new certificate: {}",
                cluster.node(id).log_tail(2000)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // The nodes dial each other with the new certificates too.
    let options = ClientOptions {
        tls: new_ca_only,
        retry_deadline: Duration::from_secs(30),
        ..Default::default()
    };
    let client = Client::connect_with(cluster.addrs(&[1, 2, 3]), options)
        .await
        .expect("connect with the new CA");
    client
        .create_queue("rotated", QueueOptions::default())
        .await
        .expect("create after the rotation");
    client
        .producer("rotated")
        .send_batch(vec![Bytes::from_static(b"after rotation")])
        .await
        .expect("replicated after the rotation");
    for id in [1, 2, 3] {
        assert!(
            cluster
                .node(id)
                .log()
                .contains("TLS certificate, key or CA changed"),
            "node {id} logged no reload"
        );
    }
}

#[test]
fn a_node_on_a_public_address_without_tls_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = format!("0.0.0.0:{}", free_port());
    let out = Command::new(raftqd_bin())
        .args(["--id", "1", "--listen", &listen, "--initial-cluster"])
        .arg(format!("1=127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run raftqd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "raftqd started plaintext on {listen}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one clear line: {stderr}");
    assert!(
        lines[0].contains(&format!("refusing to serve plaintext on {listen}"))
            && lines[0].contains("--insecure"),
        "{stderr}"
    );
}
