//! Authentication and per-queue rights (README "Security"): with an auth
//! file, a request without credentials gets UNAUTHENTICATED, a user without
//! the right PERMISSION_DENIED, and neither changes anything; users by token
//! and by client certificate get exactly their rights; admin actions go to
//! the audit log; the health service stays open.

use std::time::Duration;

use bytes::Bytes;
use raftq_client::{Client, ClientOptions, Consistency, Error, QueueOptions};
use raftq_tests::cluster::Cluster;

const OPS: &str = "rq_ops_token";
const WRITER: &str = "rq_writer_token";
const READER: &str = "rq_reader_token";

fn digest(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn auth_file() -> String {
    format!(
        r#"
[[user]]
name = "ops"
token_sha256 = "{}"
admin = true

[[user]]
name = "writer"
token_sha256 = "{}"
[[user.permission]]
queues = "orders*"
write = true
read = true

[[user]]
name = "reader"
token_sha256 = "{}"
[[user.permission]]
queues = "orders*"
read = true

# by client certificate only
[[user]]
name = "alice"
[[user.permission]]
queues = "orders"
read = true
"#,
        digest(OPS),
        digest(WRITER),
        digest(READER)
    )
}

fn as_user(cluster: &Cluster, token: Option<&str>) -> Client {
    let options = ClientOptions {
        token: token.map(str::to_string),
        retry_deadline: Duration::from_secs(5),
        ..cluster.client_options()
    };
    Client::lazy(cluster.addrs(&[1, 2, 3]), options).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_get_exactly_their_rights_and_refusals_change_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("users.toml");
    std::fs::write(&file, auth_file()).expect("auth file");
    let cluster = Cluster::builder(3)
        .tls()
        .token(OPS)
        .arg("--auth-file")
        .arg(file.display().to_string())
        .start()
        .await;
    let ops = as_user(&cluster, Some(OPS));
    ops.create_queue("orders", QueueOptions::default())
        .await
        .expect("an admin creates");
    ops.create_queue("payments", QueueOptions::default())
        .await
        .expect("an admin creates");

    let writer = as_user(&cluster, Some(WRITER));
    let batch: Vec<Bytes> = (0..10).map(|i| Bytes::from(format!("o{i}"))).collect();
    writer
        .producer("orders")
        .send_batch(batch)
        .await
        .expect("write right on orders*");

    let reader = as_user(&cluster, Some(READER));
    let refused = reader
        .producer("orders")
        .send_batch(vec![Bytes::from_static(b"not allowed")])
        .await
        .expect_err("a reader may not publish");
    assert!(matches!(refused, Error::PermissionDenied(_)), "{refused:?}");
    let read = reader
        .read("orders", 0, 100, Consistency::Linearizable)
        .await
        .expect("read right");
    assert_eq!(
        read.messages.len(),
        10,
        "the refused publish stored nothing"
    );

    for (who, client) in [
        ("no credentials", as_user(&cluster, None)),
        ("a wrong token", as_user(&cluster, Some("rq_guess"))),
    ] {
        let e = client
            .create_queue("orders.evil", QueueOptions::default())
            .await
            .expect_err(who);
        assert!(matches!(e, Error::Unauthenticated(_)), "{who}: {e:?}");
        let e = client.cluster_status().await.expect_err(who);
        assert!(matches!(e, Error::Unauthenticated(_)), "{who}: {e:?}");
    }

    let e = writer
        .create_queue("orders.new", QueueOptions::default())
        .await
        .expect_err("no configure right");
    assert!(matches!(e, Error::PermissionDenied(_)), "{e:?}");
    let e = writer.remove_node(3).await.expect_err("not an admin");
    assert!(matches!(e, Error::PermissionDenied(_)), "{e:?}");
    let e = match writer.consumer("payments", 10).await {
        Ok(_) => panic!("writer consumes payments without a read right"),
        Err(e) => e,
    };
    assert!(matches!(e, Error::PermissionDenied(_)), "{e:?}");
    let names: Vec<String> = writer
        .list_queues()
        .await
        .expect("list")
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(
        names,
        vec!["orders".to_string()],
        "a user sees its queues only"
    );
    let all = ops.list_queues().await.expect("list");
    assert_eq!(all.len(), 2, "the refused create made nothing: {all:?}");

    // A user by client certificate, no token.
    let pki = cluster.pki.as_ref().expect("TLS");
    let alice = Client::lazy(
        cluster.addrs(&[1, 2, 3]),
        ClientOptions {
            tls: Some(pki.client_tls(Some(pki.client_identity("alice")))),
            retry_deadline: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .expect("client");
    alice
        .read("orders", 0, 10, Consistency::Linearizable)
        .await
        .expect("alice reads orders by certificate");
    let e = alice
        .producer("orders")
        .send_batch(vec![Bytes::from_static(b"x")])
        .await
        .expect_err("alice may only read");
    assert!(matches!(e, Error::PermissionDenied(_)), "{e:?}");
    let stranger = Client::lazy(
        cluster.addrs(&[1, 2, 3]),
        ClientOptions {
            tls: Some(pki.client_tls(Some(pki.client_identity("bob")))),
            retry_deadline: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .expect("client");
    let e = stranger
        .cluster_status()
        .await
        .expect_err("bob is not a user");
    assert!(matches!(e, Error::Unauthenticated(_)), "{e:?}");

    // Who created what is in the audit log of the node that took the request.
    let audited = [1, 2, 3].iter().any(|id| {
        let log = cluster.node(*id).log();
        log.contains("admin action") && log.contains("user ops") && log.contains("create queue")
    });
    assert!(audited, "no audit line for ops creating a queue");

    // Health stays open without credentials.
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{}", cluster.addr(1)))
        .expect("endpoint")
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pki.ca_pem()))
                .domain_name("127.0.0.1"),
        )
        .expect("tls")
        .connect()
        .await
        .expect("connect");
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health without credentials")
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}
