//! The cluster handle and its options. What it does lives beside it, one job
//! per module: making one (`connect`), one attempt at one node (`attempt`),
//! where a request goes (`routing`), the retry loop every request goes
//! through (`retry_loop`, with `not_found` for answers that may be stale),
//! publishing (`publish`) and reading by offset (`read`).

mod attempt;
mod connect;
mod credentials;
mod not_found;
mod publish;
mod read;
mod retry_loop;
mod routing;
pub mod tls;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::{Directory, Pool};
use crate::retry::Backoff;

pub(crate) use attempt::{request, with_timeout};
pub(crate) use routing::Target;

/// Timeouts and retry pacing of a [`Client`].
///
/// ```
/// use std::time::Duration;
/// let options = raftq_client::ClientOptions {
///     retry_deadline: Duration::from_secs(60),
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Longest wait for the answer to one attempt.
    pub request_timeout: Duration,
    /// How long an operation keeps retrying (failover, no leader yet, node
    /// restarting) before it fails with [`Error::Timeout`](crate::Error::Timeout).
    pub retry_deadline: Duration,
    /// Longest wait for a TCP connection to one node.
    pub connect_timeout: Duration,
    /// First pause between retries; doubles up to `backoff_max`, with jitter.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// `Some`: the nodes serve TLS (see [`tls::TlsOptions`]).
    pub tls: Option<tls::TlsOptions>,
    /// Bearer token of a cluster that authenticates users by token.
    pub token: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            retry_deadline: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(1),
            backoff_initial: Duration::from_millis(20),
            // Failover takes a few hundred ms: retries must keep polling at
            // about that pace, not drift to seconds apart.
            backoff_max: Duration::from_millis(250),
            tls: None,
            token: None,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) credentials: credentials::Credentials,
    pub(crate) directory: Directory,
    pub(crate) options: ClientOptions,
    /// Names this client's `publish_batch` calls; random per client, so two
    /// clients never share a key.
    publish_key_source: u64,
    publish_key_counter: AtomicU64,
}

/// A handle to a raftq cluster. Cheap to clone; clones share connections and
/// what was learned about leaders.
///
/// ```no_run
/// # async fn demo() -> Result<(), raftq_client::Error> {
/// use raftq_client::{Client, ClientOptions, QueueOptions};
///
/// let client = Client::connect_with(
///     ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"],
///     ClientOptions::default(),
/// )
/// .await?;
/// let info = client.create_queue("orders", QueueOptions::default()).await?;
/// println!("leader {} replicas {:?}", info.leader_id, info.replicas);
/// for q in client.list_queues().await? {
///     println!("{}: {} messages", q.name, q.depth);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("seeds", &self.inner.pool.seeds())
            .field("options", &self.inner.options)
            .finish()
    }
}

impl Client {
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The addresses given at connect time, normalized.
    pub fn seeds(&self) -> &[String] {
        self.inner.pool.seeds()
    }

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(
            self.inner.options.backoff_initial,
            self.inner.options.backoff_max,
        )
    }
}
