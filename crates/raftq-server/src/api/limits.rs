//! Size limits, checked at the edge before anything is read in full or
//! proposed: the request size (from the gRPC frame header, before the body is
//! buffered), the bytes of requests being received at once, how long a
//! request body may stall, and the publish batch size.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use raftq_proto::v1::PublishRequest;
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::Status;

use crate::error::ApiError;

/// Bytes a publish batch occupies as the queue stores it: payloads and headers.
pub fn batch_bytes(req: &PublishRequest) -> u64 {
    req.messages
        .iter()
        .map(|m| {
            let headers: usize = m.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
            (m.payload.len() + headers) as u64
        })
        .sum()
}

pub fn check_batch(req: &PublishRequest, max_batch_bytes: u64) -> Result<(), ApiError> {
    let size = batch_bytes(req);
    if size > max_batch_bytes {
        return Err(ApiError::ResourceExhausted(format!(
            "publish batch of {size} bytes ({} messages) exceeds max_batch_bytes {max_batch_bytes}; \
             send it as several batches",
            req.messages.len()
        )));
    }
    Ok(())
}

/// A request body that sends nothing for this long is dropped: a client
/// that opens streams and stalls holds no memory and no budget for longer.
pub const BODY_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for room in the in-flight budget before it is
/// refused.
const BUDGET_WAIT: Duration = Duration::from_secs(2);

/// Large requests being received and handled at once may declare at most
/// this many times `max_request_bytes` in all: what a node buffers for its
/// clients is bounded however many connections and streams they open.
pub const IN_FLIGHT_REQUESTS_OF_MAX_SIZE: u64 = 4;

/// Requests up to this size draw on a budget of their own, so that clients
/// holding the large budget (streams that promise 32 MiB and stall) never
/// keep ordinary publishes out.
pub const SMALL_REQUEST_BYTES: u64 = 1 << 20;
pub const SMALL_REQUESTS_BUDGET_BYTES: u64 = 128 << 20;

/// Refuses a request whose first gRPC message is longer than `max_bytes`
/// with RESOURCE_EXHAUSTED, as soon as its 5-byte frame header has arrived
/// (tonic's own limit answers OUT_OF_RANGE); holds a share of the node's
/// in-flight budget, the message's declared length, until the call is
/// answered (refusing with RESOURCE_EXHAUSTED when none frees up within
/// 2 s); and ends a body that stalls for [`BODY_STALL_TIMEOUT`]. Only for
/// RPCs whose client sends its first message at once: unary and
/// server-streaming calls of the public API, not the bidirectional Consume,
/// whose client may wait.
#[derive(Clone)]
pub struct RequestSizeLimit {
    max_bytes: u64,
    budgets: Budgets,
}

#[derive(Clone)]
struct Budgets {
    small: Arc<Semaphore>,
    large: Arc<Semaphore>,
}

impl Budgets {
    fn for_request(&self, len: u64) -> &Arc<Semaphore> {
        if len <= SMALL_REQUEST_BYTES {
            &self.small
        } else {
            &self.large
        }
    }
}

impl RequestSizeLimit {
    pub fn new(max_bytes: u64) -> Self {
        let permits = |bytes: u64| {
            Arc::new(Semaphore::new(
                bytes.min(Semaphore::MAX_PERMITS as u64) as usize
            ))
        };
        Self {
            max_bytes,
            budgets: Budgets {
                small: permits(SMALL_REQUESTS_BUDGET_BYTES),
                large: permits(max_bytes.saturating_mul(IN_FLIGHT_REQUESTS_OF_MAX_SIZE)),
            },
        }
    }
}

impl<S> tower::Layer<S> for RequestSizeLimit {
    type Service = RequestSizeLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSizeLimited {
            inner,
            max_bytes: self.max_bytes,
            budgets: self.budgets.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestSizeLimited<S> {
    inner: S,
    max_bytes: u64,
    budgets: Budgets,
}

fn is_limited(path: &str) -> bool {
    path.starts_with("/raftq.v1.") && !path.ends_with("/Consume")
}

/// gRPC frames a message as 1 byte compression flag + 4 bytes big-endian length.
const FRAME_HEADER: usize = 5;

impl<S> tower::Service<http::Request<Body>> for RequestSizeLimited<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if !is_limited(req.uri().path()) {
            return Box::pin(self.inner.call(req));
        }
        // The clone that was polled ready serves this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let max_bytes = self.max_bytes;
        let budgets = self.budgets.clone();
        Box::pin(async move {
            let path = req.uri().path().to_string();
            let (parts, mut body) = req.into_parts();
            let mut head = BytesMut::new();
            let mut frames: Vec<Frame<Bytes>> = Vec::new();
            while head.len() < FRAME_HEADER {
                let Ok(next) = tokio::time::timeout(BODY_STALL_TIMEOUT, body.frame()).await else {
                    return Ok(stalled().into_http());
                };
                match next {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            head.extend_from_slice(data);
                        }
                        let last = frame.is_trailers();
                        frames.push(frame);
                        if last {
                            break;
                        }
                    }
                    Some(Err(status)) => return Ok(status.into_http()),
                    None => break,
                }
            }
            let mut len = 0;
            if head.len() >= FRAME_HEADER {
                len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as u64;
                if len > max_bytes {
                    tracing::debug!(path, len, max_bytes, "request refused for its size");
                    return Ok(Status::resource_exhausted(format!(
                        "request of {len} bytes exceeds max_request_bytes {max_bytes}"
                    ))
                    .into_http());
                }
            }
            // At least one permit each, so that the count of calls is bounded too.
            let share = len.max(1) as u32;
            let budget = budgets.for_request(len).clone();
            let permit = match tokio::time::timeout(BUDGET_WAIT, budget.acquire_many_owned(share))
                .await
            {
                Ok(Ok(permit)) => permit,
                _ => {
                    tracing::debug!(path, len, "request refused: in-flight budget exhausted");
                    return Ok(Status::resource_exhausted(
                        "this node is receiving as many request bytes as it buffers at once; retry shortly",
                    )
                    .into_http());
                }
            };
            let rest = futures::stream::unfold(Some(body), |body| async move {
                let mut body = body?;
                match tokio::time::timeout(BODY_STALL_TIMEOUT, body.frame()).await {
                    Ok(Some(frame)) => Some((frame, Some(body))),
                    Ok(None) => None,
                    // Dropping the body resets the stream: nothing more is read.
                    Err(_) => Some((Err(stalled()), None)),
                }
            });
            let replay = futures::stream::iter(frames.into_iter().map(Ok::<_, Status>)).chain(rest);
            let body = Body::new(StreamBody::new(replay));
            let answer = inner.call(http::Request::from_parts(parts, body)).await;
            drop(permit);
            answer
        })
    }
}

fn stalled() -> Status {
    Status::cancelled(format!(
        "request body stalled for {}s: dropped",
        BODY_STALL_TIMEOUT.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftq_proto::v1::PublishMessage;

    #[test]
    fn batch_size_counts_payloads_and_headers() {
        let req = PublishRequest {
            key: None,
            queue: "q".into(),
            messages: vec![
                PublishMessage {
                    payload: Bytes::from_static(b"12345"),
                    headers: [("k".to_string(), "vv".to_string())].into(),
                },
                PublishMessage {
                    payload: Bytes::from_static(b"1"),
                    headers: Default::default(),
                },
            ],
            producer_id: String::new(),
            sequence: 0,
        };
        assert_eq!(batch_bytes(&req), 9);
        assert!(check_batch(&req, 9).is_ok());
        let refused = check_batch(&req, 8).expect_err("over the limit");
        assert!(matches!(refused, ApiError::ResourceExhausted(_)));
        assert!(
            refused.to_string().contains("max_batch_bytes 8"),
            "{refused}"
        );
    }

    #[test]
    fn only_calls_that_send_their_request_at_once_are_limited() {
        assert!(is_limited("/raftq.v1.QueueService/Publish"));
        assert!(is_limited("/raftq.v1.AdminService/CreateQueue"));
        assert!(!is_limited("/raftq.v1.QueueService/Consume"));
        assert!(!is_limited("/grpc.health.v1.Health/Check"));
        assert!(!is_limited(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
    }
}
