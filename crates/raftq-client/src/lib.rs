//! Async Rust client for raftq.
//!
//! Connect with a few seed addresses; the client finds each queue's leader, sends
//! writes straight to it, and retries with backoff across nodes when a leader
//! dies, within a deadline you choose. Producers are idempotent by default, so a
//! retry after a failover never stores a message twice.
//!
//! ```no_run
//! # async fn demo() -> Result<(), raftq_client::Error> {
//! use raftq_client::{Client, QueueOptions};
//!
//! let client = Client::connect(["127.0.0.1:7001", "127.0.0.1:7002"]).await?;
//! client.create_queue("orders", QueueOptions::default()).await?;
//! let mut producer = client.producer("orders");
//! let offsets = producer.send_batch(vec![b"hello".to_vec().into()]).await?;
//! println!("stored at {offsets:?}");
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod consumer;
mod error;
mod producer;
mod retry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use consumer::Consumer;
pub use error::{leader_hint, Error};
pub use producer::Producer;
use raftq_proto::v1::admin_service_client::AdminServiceClient;
use raftq_proto::v1::queue_service_client::QueueServiceClient;
use raftq_proto::v1::{
    ClusterStatusRequest, Consistency, CreateQueueRequest, DeleteQueueRequest, GetQueueRequest,
    ListQueuesRequest, PublishRequest, PublishResponse, ReadRequest,
};
pub use raftq_proto::v1::{
    ClusterStatusResponse, Delivery, NodeStatus, PublishMessage, QueueInfo, QueueOptions,
    ReadResponse, SettleConfirm, SettleOutcome,
};
pub use retry::Backoff;
use tonic::transport::{Channel, Endpoint};

/// Timeouts of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Per attempt.
    pub request_timeout: Duration,
    /// How long an operation keeps retrying (failover, no leader yet) before it
    /// gives up with [`Error::Timeout`].
    pub retry_deadline: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            retry_deadline: Duration::from_secs(30),
        }
    }
}

struct Inner {
    seeds: Vec<String>,
    options: ClientOptions,
    channels: Mutex<HashMap<String, Channel>>,
    /// Queue name → address of its last known leader.
    leaders: Mutex<HashMap<String, String>>,
}

/// A handle to a raftq cluster. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects with default options; fails with [`Error::Unreachable`] when no
    /// seed answers.
    pub async fn connect<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
    ) -> Result<Client, Error> {
        Self::connect_with(seeds, ClientOptions::default()).await
    }

    pub async fn connect_with<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
        options: ClientOptions,
    ) -> Result<Client, Error> {
        let seeds: Vec<String> = seeds
            .into_iter()
            .map(Into::into)
            .map(|s| s.trim().trim_start_matches("http://").to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if seeds.is_empty() {
            return Err(Error::InvalidArgument("no server addresses given".into()));
        }
        let client = Client {
            inner: Arc::new(Inner {
                seeds,
                options,
                channels: Mutex::new(HashMap::new()),
                leaders: Mutex::new(HashMap::new()),
            }),
        };
        // One round over the seeds: a typo'd address list fails here, clearly.
        for seed in &client.inner.seeds {
            if let Ok(mut admin) = client.admin_at(seed) {
                if admin
                    .cluster_status(client.request(ClusterStatusRequest {}))
                    .await
                    .is_ok()
                {
                    return Ok(client);
                }
            }
        }
        Err(Error::Unreachable(client.inner.seeds.join(",")))
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    pub fn seeds(&self) -> &[String] {
        &self.inner.seeds
    }

    fn channel(&self, addr: &str) -> Result<Channel, Error> {
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(ch) = channels.get(addr) {
            return Ok(ch.clone());
        }
        let ch = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Error::InvalidArgument(format!("bad address {addr}: {e}")))?
            .connect_timeout(Duration::from_millis(1000))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(3))
            .connect_lazy();
        channels.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.inner.options.request_timeout);
        req
    }

    fn admin_at(&self, addr: &str) -> Result<AdminServiceClient<Channel>, Error> {
        Ok(AdminServiceClient::new(self.channel(addr)?))
    }

    pub(crate) fn queue_at(&self, addr: &str) -> Result<QueueServiceClient<Channel>, Error> {
        Ok(QueueServiceClient::new(self.channel(addr)?)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20))
    }

    /// Addresses to try for `queue`: its known leader first, then every seed.
    pub(crate) fn candidates(&self, queue: Option<&str>) -> Vec<String> {
        let mut out = Vec::with_capacity(self.inner.seeds.len() + 1);
        if let Some(q) = queue {
            if let Some(leader) = self
                .inner
                .leaders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(q)
            {
                out.push(leader.clone());
            }
        }
        for s in &self.inner.seeds {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }

    pub(crate) fn remember_leader(&self, queue: &str, addr: String) {
        self.inner
            .leaders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(queue.to_string(), addr);
    }

    /// Runs `op` against candidate nodes until it succeeds, fails for good, or the
    /// retry deadline passes.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        queue: Option<&str>,
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let deadline = Instant::now() + self.inner.options.retry_deadline;
        let mut backoff = Backoff::new();
        let mut last = Error::Unreachable(self.inner.seeds.join(","));
        loop {
            for addr in self.candidates(queue) {
                match op(addr).await {
                    Ok(v) => return Ok(v),
                    Err(e) if e.is_retryable() => {
                        if let (Some(q), Error::Unavailable(m)) = (queue, &e) {
                            if let Some((_, leader)) = leader_hint(m) {
                                self.remember_leader(q, leader);
                            }
                        }
                        last = e;
                    }
                    Err(e) => return Err(e),
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(
                    self.inner.options.retry_deadline,
                    last.to_string(),
                ));
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    pub async fn create_queue(
        &self,
        name: &str,
        options: QueueOptions,
    ) -> Result<QueueInfo, Error> {
        self.retrying(None, |addr| {
            let req = self.request(CreateQueueRequest {
                name: name.into(),
                options: Some(options.clone()),
            });
            async move {
                let resp = self.admin_at(&addr)?.create_queue(req).await?.into_inner();
                resp.queue
                    .ok_or_else(|| Error::Server("CreateQueue answered without queue info".into()))
            }
        })
        .await
    }

    pub async fn delete_queue(&self, name: &str) -> Result<(), Error> {
        self.retrying(None, |addr| {
            let req = self.request(DeleteQueueRequest { name: name.into() });
            async move {
                self.admin_at(&addr)?.delete_queue(req).await?;
                Ok(())
            }
        })
        .await
    }

    pub async fn list_queues(&self) -> Result<Vec<QueueInfo>, Error> {
        self.retrying(None, |addr| {
            let req = self.request(ListQueuesRequest {});
            async move {
                Ok(self
                    .admin_at(&addr)?
                    .list_queues(req)
                    .await?
                    .into_inner()
                    .queues)
            }
        })
        .await
    }

    pub async fn get_queue(&self, name: &str) -> Result<QueueInfo, Error> {
        self.retrying(None, |addr| {
            let req = self.request(GetQueueRequest { name: name.into() });
            async move { Ok(self.admin_at(&addr)?.get_queue(req).await?.into_inner()) }
        })
        .await
    }

    pub async fn cluster_status(&self) -> Result<ClusterStatusResponse, Error> {
        self.retrying(None, |addr| {
            let req = self.request(ClusterStatusRequest {});
            async move {
                Ok(self
                    .admin_at(&addr)?
                    .cluster_status(req)
                    .await?
                    .into_inner())
            }
        })
        .await
    }

    /// One publish of a batch, retried across nodes. With `producer` set
    /// (`(producer_id, sequence of the first message)`) retries are idempotent.
    pub async fn publish(
        &self,
        queue: &str,
        messages: Vec<PublishMessage>,
        producer: Option<(String, u64)>,
    ) -> Result<PublishResponse, Error> {
        let (producer_id, sequence) = producer.unwrap_or_default();
        self.retrying(Some(queue), |addr| {
            let req = self.request(PublishRequest {
                queue: queue.into(),
                messages: messages.clone(),
                producer_id: producer_id.clone(),
                sequence,
            });
            async move { Ok(self.queue_at(&addr)?.publish(req).await?.into_inner()) }
        })
        .await
    }

    /// Reads messages from the FIRST seed only (follower reads: the node you ask
    /// answers), without consuming them.
    pub async fn read(
        &self,
        queue: &str,
        from_offset: u64,
        count: u32,
        linearizable: bool,
    ) -> Result<ReadResponse, Error> {
        let addr = self.inner.seeds[0].clone();
        let req = self.request(ReadRequest {
            queue: queue.into(),
            from_offset,
            count,
            consistency: if linearizable {
                Consistency::Linearizable
            } else {
                Consistency::StaleOk
            } as i32,
            max_lag: 0,
        });
        match self.queue_at(&addr)?.read(req).await {
            Ok(resp) => Ok(resp.into_inner()),
            Err(s) if s.code() == tonic::Code::Unavailable && s.message().contains("connect") => {
                Err(Error::Unreachable(addr))
            }
            Err(s) => Err(s.into()),
        }
    }

    /// An idempotent producer for `queue` with a fresh random producer id.
    pub fn producer(&self, queue: &str) -> Producer {
        Producer::new(self.clone(), queue)
    }

    /// Subscribes to `queue`; see [`Consumer`].
    pub async fn consumer(&self, queue: &str, prefetch: u32) -> Result<Consumer, Error> {
        Consumer::subscribe(self.clone(), queue, prefetch).await
    }
}
