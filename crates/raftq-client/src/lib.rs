//! Async Rust client for raftq, a replicated message queue.
//!
//! Give it a few node addresses; it finds each queue's leader, sends writes
//! straight there, and when a node dies or leadership moves it retries with
//! backoff across nodes, within a deadline you choose
//! ([`ClientOptions::retry_deadline`]). Producers are idempotent, so a retry
//! after a failover never stores a message twice; consumers resubscribe by
//! themselves.
//!
//! ```no_run
//! # async fn demo() -> Result<(), raftq_client::Error> {
//! use raftq_client::{Client, QueueOptions};
//!
//! let client = Client::connect(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]).await?;
//! client.create_queue("orders", QueueOptions::default()).await?;
//!
//! let producer = client.producer("orders");
//! let offset = producer.send("hello").await?; // committed on a majority
//!
//! let mut consumer = client.consumer("orders", 100).await?;
//! if let Some(delivery) = consumer.next().await {
//!     let delivery = delivery?;
//!     println!("{offset}: {:?}", delivery.payload);
//!     consumer.ack(delivery.offset).await?;
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod admin;
mod client;
mod connection;
mod consumer;
mod error;
mod message;
mod producer;
mod retry;
mod stream;

pub use admin::ReplicaChange;
pub use client::tls::{ClientIdentity, TlsOptions};
pub use client::{Client, ClientOptions};
pub use consumer::{Consumer, Offsets, SettleFuture, Settlement, Settler};
pub use error::{Applied, Error, Result};
pub use message::{message_with_headers, IntoMessage};
pub use producer::{Confirm, Producer, ProducerOptions};
pub use raftq_proto::v1::{
    ClusterStatusResponse, Consistency, Delivery, NodeAlarm, NodeRole, NodeStatus, Overflow,
    PublishMessage, QueueInfo, QueueKind, QueueOptions, ReadResponse, ReplicaStatus, SettleOutcome,
    StoredMessage,
};
pub use retry::Backoff;
pub use stream::{StreamOptions, StreamReader, StreamStart};

impl Client {
    /// An idempotent, pipelined producer for `queue` with default batching.
    /// Must be called within a tokio runtime.
    pub fn producer(&self, queue: &str) -> Producer {
        Producer::new(self.clone(), queue, ProducerOptions::default())
    }

    /// A producer with explicit batching and pipelining.
    pub fn producer_with(&self, queue: &str, options: ProducerOptions) -> Producer {
        Producer::new(self.clone(), queue, options)
    }

    /// Subscribes to `queue` with at most `prefetch` unsettled deliveries
    /// (0: the server's default); see [`Consumer`].
    pub async fn consumer(&self, queue: &str, prefetch: u32) -> Result<Consumer> {
        Consumer::subscribe(self.clone(), queue, prefetch).await
    }
}
