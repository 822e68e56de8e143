//! Stream queues: readers that follow a stream from any replica and resume by
//! themselves, and named consumers' committed offsets.

use std::collections::VecDeque;
use std::time::Duration;

use raftq_proto::v1::{
    stream_start, CommitOffsetRequest, Consistency, ReadStreamRequest, ReadStreamResponse,
    StoredMessage, StreamStart as ProtoStart,
};
use tonic::Streaming;

use crate::client::{request, with_timeout, Target};
use crate::retry::Deadline;
use crate::{Client, Error, Result};

/// Where a stream read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamStart {
    /// The oldest message still retained.
    #[default]
    First,
    /// The newest message, then everything after it.
    Last,
    /// Only messages published after the read starts.
    Next,
    /// This offset (the oldest retained one if retention removed it).
    Offset(u64),
    /// The first message published at or after this time (unix ms).
    Timestamp(u64),
}

impl StreamStart {
    fn to_proto(self) -> ProtoStart {
        use stream_start::Position;
        let position = match self {
            StreamStart::First => Position::First(true),
            StreamStart::Last => Position::Last(true),
            StreamStart::Next => Position::Next(true),
            StreamStart::Offset(o) => Position::Offset(o),
            StreamStart::Timestamp(t) => Position::TimestampMs(t),
        };
        ProtoStart {
            position: Some(position),
        }
    }
}

/// How a [`StreamReader`] reads.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Where to start when the consumer (if named) has no committed offset.
    pub start: StreamStart,
    /// A named consumer resumes from its committed offset
    /// ([`StreamReader::commit`]) wherever it reconnects.
    pub consumer_name: Option<String>,
    /// LINEARIZABLE (default): the first read sees everything confirmed before
    /// it began. STALE_OK: starts from the replica's state at once.
    pub consistency: Consistency,
    /// Most messages per server response (0: the server's default).
    pub max_batch: u32,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            start: StreamStart::First,
            consumer_name: None,
            consistency: Consistency::Linearizable,
            max_batch: 0,
        }
    }
}

/// Follows a stream queue, served by one replica at a time: the first seed
/// first, so the seed list picks the replica. When that node fails it resumes
/// on another from the next offset, so the messages it yields have strictly
/// increasing, consecutive offsets (a jump only when retention removed
/// messages before they were read).
///
/// ```no_run
/// # async fn demo() -> Result<(), raftq_client::Error> {
/// use raftq_client::{Client, StreamOptions, StreamStart};
///
/// let client = Client::connect(["127.0.0.1:7002", "127.0.0.1:7001"]).await?;
/// let options = StreamOptions {
///     start: StreamStart::First,
///     consumer_name: Some("billing".into()),
///     ..Default::default()
/// };
/// let mut reader = client.stream_reader("events", options).await?;
/// while let Some(message) = reader.next().await {
///     let message = message?;
///     println!("{}: {:?}", message.offset, message.payload);
///     reader.commit().await?; // resume after this message, on any node
/// }
/// # Ok(()) }
/// ```
pub struct StreamReader {
    client: Client,
    queue: String,
    options: StreamOptions,
    /// Where the server stream stands: the offset after everything received
    /// (buffered included); `None` until the first response. A resume asks
    /// for exactly this.
    position: Option<u64>,
    stream: Option<Streaming<ReadStreamResponse>>,
    buffered: VecDeque<StoredMessage>,
    node_id: u64,
    /// Where the current stream is served from, and where to try next.
    addr: String,
    order: Vec<String>,
}

impl Client {
    /// Opens a reader on stream `queue` (see [`StreamReader`]).
    pub async fn stream_reader(&self, queue: &str, options: StreamOptions) -> Result<StreamReader> {
        let mut order = self.seeds().to_vec();
        for addr in self.inner.pool.rotation(self.inner.directory.node_addrs()) {
            if !order.contains(&addr) {
                order.push(addr);
            }
        }
        let mut reader = StreamReader {
            client: self.clone(),
            queue: queue.to_string(),
            options,
            position: None,
            stream: None,
            buffered: VecDeque::new(),
            node_id: 0,
            addr: String::new(),
            order,
        };
        reader.connect().await?;
        Ok(reader)
    }

    /// Records that named consumer `consumer_name` of stream `queue` will read
    /// from `offset` next (last processed + 1). Replicated through the
    /// stream's leader before it returns; retried across failovers.
    pub async fn commit_offset(&self, queue: &str, consumer_name: &str, offset: u64) -> Result<()> {
        let resp = self
            .call(Target::Leader(queue), |addr, timeout| {
                let req = request(
                    CommitOffsetRequest {
                        queue: queue.to_string(),
                        consumer_name: consumer_name.to_string(),
                        offset,
                    },
                    timeout,
                );
                async move { Ok(self.queue_at(&addr)?.commit_offset(req).await?.into_inner()) }
            })
            .await?;
        self.learn_leader(queue, resp.leader_id);
        Ok(())
    }
}

impl StreamReader {
    /// Node whose replica serves the reader now.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Offset of the next message this reader will yield (`None` before the
    /// first answer).
    pub fn position(&self) -> Option<u64> {
        match self.buffered.front() {
            Some(m) => Some(m.offset),
            None => self.position,
        }
    }

    /// Commits [`position`](Self::position) for the named consumer: everything
    /// yielded so far counts as processed.
    pub async fn commit(&self) -> Result<()> {
        let name = self.options.consumer_name.as_deref().ok_or_else(|| {
            Error::InvalidArgument("commit needs StreamOptions::consumer_name".into())
        })?;
        let Some(position) = self.position() else {
            return Ok(());
        };
        self.client.commit_offset(&self.queue, name, position).await
    }

    /// The next message, waiting for one to be published if need be. An error
    /// when no replica could serve the stream within the retry deadline, or
    /// the stream is gone (deleted); `None` never (the stream has no end).
    pub async fn next(&mut self) -> Option<Result<StoredMessage>> {
        match self.next_before(None).await {
            Ok(Some(m)) => Some(Ok(m)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Like [`next`](Self::next), but `Ok(None)` when no message arrives
    /// within `idle`. A failover in progress is not cut short by `idle`.
    pub async fn next_timeout(&mut self, idle: Duration) -> Result<Option<StoredMessage>> {
        self.next_before(Some(tokio::time::Instant::now() + idle))
            .await
    }

    async fn next_before(
        &mut self,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Option<StoredMessage>> {
        loop {
            if let Some(m) = self.buffered.pop_front() {
                return Ok(Some(m));
            }
            let Some(stream) = self.stream.as_mut() else {
                self.connect().await?;
                continue;
            };
            let item = match deadline {
                Some(at) => match tokio::time::timeout_at(at, stream.message()).await {
                    Ok(item) => item,
                    Err(_) => return Ok(None),
                },
                None => stream.message().await,
            };
            match item {
                Ok(Some(resp)) => self.take(resp),
                // Ended by the server (shutting down): resume elsewhere.
                Ok(None) => self.stream = None,
                Err(status) => {
                    let e = Error::from(status);
                    if !e.is_retryable() {
                        return Err(e);
                    }
                    self.stream = None;
                }
            }
        }
    }

    /// Keeps only messages at or after the position (a resumed stream starts
    /// exactly there, so this drops only repeats) and takes the server's
    /// position, which moves ahead of a gap only when retention removed
    /// messages before they were read.
    fn take(&mut self, resp: ReadStreamResponse) {
        self.node_id = resp.node_id;
        let known = self.position;
        for m in resp.messages {
            if known.is_none_or(|p| m.offset >= p) {
                self.buffered.push_back(m);
            }
        }
        self.position = Some(known.map_or(resp.position, |p| p.max(resp.position)));
    }

    /// (Re)opens the stream: the seeds in order at first; on a resume the
    /// node that was serving goes last. Retried until the retry deadline. A resume starts at the
    /// position, STALE_OK: only committed messages are ever served, and a
    /// survivor need not wait for a new leader to continue.
    async fn connect(&mut self) -> Result<()> {
        let options = self.client.options().clone();
        let deadline = Deadline::after(options.retry_deadline);
        let mut backoff = self.client.backoff();
        let mut last: Option<Error> = None;
        loop {
            let mut order = self.order.clone();
            if self.position.is_some() && !order.is_empty() {
                // Resuming: the node that was serving failed, so it goes last.
                let after = order
                    .iter()
                    .position(|a| *a == self.addr)
                    .map_or(0, |i| i + 1);
                let len = order.len();
                order.rotate_left(after % len);
            }
            for addr in order {
                let timeout = deadline.attempt_timeout(options.request_timeout);
                let req = self.request();
                let client = &self.client;
                let attempt = async {
                    Ok(client
                        .queue_at(&addr)?
                        .read_stream(tonic::Request::new(req))
                        .await?
                        .into_inner())
                };
                match with_timeout(&addr, timeout, attempt).await {
                    Ok(stream) => {
                        self.stream = Some(stream);
                        self.addr = addr;
                        return Ok(());
                    }
                    Err(e) if e.is_retryable() => last = Some(e),
                    Err(e) => return Err(e),
                }
                if deadline.expired() {
                    break;
                }
            }
            if deadline.expired() {
                let last = last.unwrap_or_else(|| Error::Unreachable(self.order.join(",")));
                return Err(Error::timeout(deadline.budget(), &last));
            }
            tokio::time::sleep(deadline.clamp(backoff.next_delay())).await;
        }
    }

    fn request(&self) -> ReadStreamRequest {
        match self.position {
            None => ReadStreamRequest {
                queue: self.queue.clone(),
                start: Some(self.options.start.to_proto()),
                consumer_name: self.options.consumer_name.clone().unwrap_or_default(),
                consistency: self.options.consistency as i32,
                max_batch: self.options.max_batch,
            },
            Some(position) => ReadStreamRequest {
                queue: self.queue.clone(),
                start: Some(StreamStart::Offset(position).to_proto()),
                consumer_name: String::new(),
                consistency: Consistency::StaleOk as i32,
                max_batch: self.options.max_batch,
            },
        }
    }
}
