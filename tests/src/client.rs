//! Thin helpers over the generated gRPC stubs, with bounded retries where a test
//! expects the cluster to recover (leader elections in progress).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use raftq_proto::v1::admin_service_client::AdminServiceClient;
use raftq_proto::v1::queue_service_client::QueueServiceClient;
use raftq_proto::v1::{
    ClusterStatusRequest, ClusterStatusResponse, Consistency, CreateQueueRequest, GetQueueRequest,
    PublishMessage, PublishRequest, QueueInfo, QueueOptions, ReadRequest, ReadResponse,
};
use tonic::transport::Channel;
use tonic::{Code, Status};

pub async fn channel(addr: &str) -> Result<Channel, Status> {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Status::invalid_argument(e.to_string()))?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("connect {addr}: {e}")))
}

pub async fn admin(addr: &str) -> Result<AdminServiceClient<Channel>, Status> {
    Ok(AdminServiceClient::new(channel(addr).await?))
}

pub async fn queue(addr: &str) -> Result<QueueServiceClient<Channel>, Status> {
    Ok(QueueServiceClient::new(channel(addr).await?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

pub async fn cluster_status(addr: &str) -> Result<ClusterStatusResponse, Status> {
    Ok(admin(addr)
        .await?
        .cluster_status(ClusterStatusRequest {})
        .await?
        .into_inner())
}

pub async fn get_queue(addr: &str, name: &str) -> Result<QueueInfo, Status> {
    Ok(admin(addr)
        .await?
        .get_queue(GetQueueRequest {
            name: name.into(),
            consistency: None,
        })
        .await?
        .into_inner())
}

/// GetQueue answered by the node at `addr` after its replica applied the
/// leader's read index: what it reports includes every confirmed write.
pub async fn get_queue_linearizable(addr: &str, name: &str) -> Result<QueueInfo, Status> {
    Ok(admin(addr)
        .await?
        .get_queue(GetQueueRequest {
            name: name.into(),
            consistency: Some(Consistency::Linearizable as i32),
        })
        .await?
        .into_inner())
}

pub async fn create_queue(
    addr: &str,
    name: &str,
    options: QueueOptions,
) -> Result<QueueInfo, Status> {
    let resp = admin(addr)
        .await?
        .create_queue(CreateQueueRequest {
            name: name.into(),
            options: Some(options),
        })
        .await?
        .into_inner();
    resp.queue
        .ok_or_else(|| Status::internal("CreateQueue answered without queue info"))
}

/// Polls the given nodes until one reports a leader for `queue`.
pub async fn wait_leader(addrs: &[String], queue: &str, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        for addr in addrs {
            if let Ok(info) = get_queue(addr, queue).await {
                if info.leader_id != 0 {
                    return info.leader_id;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "queue {queue} has no leader after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn payloads(prefix: &str, range: std::ops::Range<u64>) -> Vec<PublishMessage> {
    range
        .map(|i| PublishMessage {
            payload: format!("{prefix}{i}").into_bytes().into(),
            headers: HashMap::new(),
        })
        .collect()
}

/// One idempotent publish, retried on UNAVAILABLE (and transport errors) across
/// the given nodes until `timeout`. Returns the offsets, or the last error.
pub async fn publish_retrying(
    addrs: &[String],
    queue: &str,
    producer_id: &str,
    sequence: u64,
    messages: Vec<PublishMessage>,
    timeout: Duration,
) -> Result<Vec<u64>, Status> {
    let deadline = Instant::now() + timeout;
    let mut attempt = 0usize;
    loop {
        let addr = &addrs[attempt % addrs.len()];
        attempt += 1;
        let req = PublishRequest {
            key: None,
            queue: queue.into(),
            messages: messages.clone(),
            producer_id: producer_id.into(),
            sequence,
        };
        let result = match queue_client_with_timeout(addr).await {
            Ok(mut c) => c.publish(req).await.map(|r| r.into_inner().offsets),
            Err(e) => Err(e),
        };
        match result {
            Ok(offsets) => return Ok(offsets),
            Err(s) if retryable(&s) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => return Err(s),
        }
    }
}

async fn queue_client_with_timeout(addr: &str) -> Result<QueueServiceClient<Channel>, Status> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Status::invalid_argument(e.to_string()))?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(3))
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("connect {addr}: {e}")))?;
    Ok(QueueServiceClient::new(ch))
}

pub fn retryable(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}

pub async fn read_stale(
    addr: &str,
    queue: &str,
    from: u64,
    count: u32,
) -> Result<ReadResponse, Status> {
    Ok(self::queue(addr)
        .await?
        .read(ReadRequest {
            queue: queue.into(),
            from_offset: from,
            count,
            consistency: Consistency::StaleOk as i32,
            max_lag: 0,
        })
        .await?
        .into_inner())
}
