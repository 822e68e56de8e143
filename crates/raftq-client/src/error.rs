//! Client errors: one variant per thing a caller can act on, mapped from gRPC
//! status codes, each displayed as one line a person can read.

use std::error::Error as _;
use std::time::Duration;

use raftq_proto::metadata;
use tonic::{Code, Status};

/// Whether a request that failed may have taken effect, as the server said
/// (metadata `raftq-retry`), or as the client knows from what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Refused before anything was proposed: safe to send again, whatever it is.
    No,
    /// It may have taken effect: only an idempotent request is sent again.
    Maybe,
}

/// Everything that can go wrong talking to a raftq cluster.
///
/// Variants carrying a server message show it as is: the server already writes
/// them for people ("queue 'orders' does not exist"). What the client decides
/// (retry, where the leader is) comes from the status code and its typed
/// metadata, never from the message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No seed address answered at all (wrong addresses, or the cluster is down).
    #[error("cannot reach any raftq node at {0} (is the cluster running? check --servers / RAFTQ_SERVERS)")]
    Unreachable(String),
    /// The cluster answered but cannot serve this now: no leader yet, leadership
    /// moving, node shutting down. Retried automatically until the deadline.
    #[error("{message}")]
    Unavailable {
        message: String,
        applied: Applied,
        /// The queue's leader (node id, address) when the server named it.
        leader: Option<(u64, String)>,
    },
    /// Unknown queue.
    #[error("{0}")]
    NotFound(String),
    /// The queue already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// Malformed request: bad name, options, oversize message.
    #[error("{0}")]
    InvalidArgument(String),
    /// An idempotent producer's sequence did not follow on from the last one.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit: the queue is full (`max_length` / `max_bytes` with
    /// `overflow = reject-publish`), or a batch or request over the node's size
    /// limits.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A publish refused, and not applied, because node `node` is in a memory
    /// or disk alarm (`resource`: `memory` or `disk`). It can be sent again
    /// once the alarm clears; consumers and acks keep working meanwhile.
    #[error("{message}")]
    Alarm {
        message: String,
        resource: String,
        node: u64,
    },
    /// One attempt got no answer within `request_timeout`: it may or may not
    /// have taken effect.
    #[error("no answer within the request timeout: {0}")]
    RequestTimeout(String),
    /// Retries went on for the whole retry deadline without success; `last` is
    /// the last failure seen.
    #[error("gave up after {after:?}: {last}")]
    Timeout { after: Duration, last: String },
    /// No connection could be made (refused, unreachable): the request was
    /// never sent.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection failed (reset, HTTP/2 error) after the request may have
    /// been sent, before an answer came.
    #[error("transport error: {0}")]
    Transport(String),
    /// No credentials, or ones the cluster does not know (a token or a client
    /// certificate of a user not in its auth file). Nothing was done.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// A known user without the right for this (write, read, configure on the
    /// queue, or admin). Nothing was done.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// Any other server failure (INTERNAL, UNIMPLEMENTED, ...).
    #[error("server error: {0}")]
    Server(String),
    /// The producer or consumer this came from has shut down.
    #[error("{0}")]
    Closed(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A failure the client itself observed (a session ended, no answer):
    /// whatever was in flight may have been applied.
    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::Unavailable {
            message: message.into(),
            applied: Applied::Maybe,
            leader: None,
        }
    }

    /// Worth retrying (elsewhere or later) rather than reporting: the cluster
    /// may serve it once a leader is elected or a node is back.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. }
                | Error::Unreachable(_)
                | Error::Connect(_)
                | Error::Transport(_)
                | Error::RequestTimeout(_)
        )
    }

    /// True when the failed request certainly did not take effect, so even a
    /// non-idempotent request may be sent again. A timeout or a connection cut
    /// mid-request is not such a case.
    pub(crate) fn surely_not_applied(&self) -> bool {
        match self {
            Error::Unreachable(_) | Error::Connect(_) => true,
            Error::Unavailable { applied, .. } => *applied == Applied::No,
            _ => false,
        }
    }

    /// The queue's leader, when the server named it with this failure.
    pub fn leader_hint(&self) -> Option<(u64, &str)> {
        match self {
            Error::Unavailable {
                leader: Some((id, addr)),
                ..
            } => Some((*id, addr.as_str())),
            _ => None,
        }
    }

    /// The error a caller sees when retries ran out.
    pub(crate) fn timeout(after: Duration, last: &Error) -> Error {
        Error::Timeout {
            after,
            last: last.to_string(),
        }
    }

    /// Maps a status, telling transport failures (a local source error, never
    /// sent by a server) from answers.
    pub fn from_status(s: &Status) -> Error {
        if s.source().is_some() {
            let described = describe_transport(s);
            return if raftq_proto::transport::never_connected(s) {
                Error::Connect(described)
            } else {
                Error::Transport(described)
            };
        }
        let m = if s.message().is_empty() {
            s.code().description().to_string()
        } else {
            s.message().to_string()
        };
        match s.code() {
            Code::NotFound => Error::NotFound(m),
            Code::AlreadyExists => Error::AlreadyExists(m),
            Code::InvalidArgument | Code::OutOfRange => Error::InvalidArgument(m),
            Code::FailedPrecondition => Error::FailedPrecondition(m),
            Code::Unauthenticated => Error::Unauthenticated(m),
            Code::PermissionDenied => Error::PermissionDenied(m),
            Code::ResourceExhausted => match metadata::alarm(s.metadata()) {
                Some((resource, node)) => Error::Alarm {
                    message: m,
                    resource,
                    node,
                },
                None => Error::ResourceExhausted(m),
            },
            // ABORTED is gRPC's "retry at a higher level".
            Code::Unavailable | Code::Aborted => {
                let meta = s.metadata();
                let applied = match meta.get(metadata::RETRY).and_then(|v| v.to_str().ok()) {
                    Some(metadata::NOT_APPLIED) => Applied::No,
                    _ => Applied::Maybe,
                };
                Error::Unavailable {
                    message: m,
                    applied,
                    leader: metadata::leader(meta),
                }
            }
            Code::DeadlineExceeded | Code::Cancelled => Error::RequestTimeout(m),
            _ => Error::Server(format!("{}: {m}", s.code().description())),
        }
    }
}

impl From<Status> for Error {
    fn from(s: Status) -> Self {
        Error::from_status(&s)
    }
}

/// "tcp connect error: Connection refused (os error 111)" rather than just the
/// outermost "transport error".
fn describe_transport(s: &Status) -> String {
    let mut parts = vec![s.message().to_string()];
    let mut source = s.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    // tonic wraps every cause in a generic "transport error": say it once.
    parts.retain(|p| !p.is_empty() && p != "transport error");
    if parts.is_empty() {
        return "transport error".into();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataMap;

    fn unavailable(message: &str, pairs: &[(&'static str, &str)]) -> Status {
        let mut meta = MetadataMap::new();
        for (k, v) in pairs {
            meta.insert(*k, v.parse().expect("ascii"));
        }
        Status::with_metadata(Code::Unavailable, message, meta)
    }

    #[test]
    fn the_leader_hint_comes_from_metadata_not_from_the_message() {
        let e = Error::from(unavailable(
            "anything, reworded at will (leader=9@elsewhere:1)",
            &[
                (metadata::LEADER_ID, "3"),
                (metadata::LEADER_ADDR, "127.0.0.1:7003"),
                (metadata::RETRY, metadata::NOT_APPLIED),
            ],
        ));
        assert_eq!(e.leader_hint(), Some((3, "127.0.0.1:7003")));
        let untyped = Error::from(unavailable("leader=3@127.0.0.1:7003", &[]));
        assert_eq!(untyped.leader_hint(), None);
    }

    #[test]
    fn an_alarm_is_read_from_metadata_not_from_the_message() {
        let mut meta = MetadataMap::new();
        meta.insert(metadata::ALARM, "memory".parse().unwrap());
        meta.insert(metadata::ALARM_NODE, "2".parse().unwrap());
        let status = Status::with_metadata(Code::ResourceExhausted, "reworded at will", meta);
        match Error::from(status) {
            Error::Alarm { resource, node, .. } => {
                assert_eq!((resource.as_str(), node), ("memory", 2))
            }
            other => panic!("{other:?}"),
        }
        let plain = Error::from(Status::resource_exhausted("memory alarm on node 2"));
        assert!(matches!(plain, Error::ResourceExhausted(_)));
        assert!(!plain.is_retryable());
    }

    #[test]
    fn malformed_leader_metadata_is_ignored() {
        let bad_id = Error::from(unavailable(
            "x",
            &[(metadata::LEADER_ID, "x"), (metadata::LEADER_ADDR, "a:1")],
        ));
        assert_eq!(bad_id.leader_hint(), None);
        let no_addr = Error::from(unavailable("x", &[(metadata::LEADER_ID, "3")]));
        assert_eq!(no_addr.leader_hint(), None);
    }

    #[test]
    fn codes_map_to_actionable_errors() {
        let cases = [
            (Status::not_found("q"), Error::NotFound("q".into())),
            (
                Status::already_exists("q"),
                Error::AlreadyExists("q".into()),
            ),
            (
                Status::invalid_argument("q"),
                Error::InvalidArgument("q".into()),
            ),
            (
                Status::failed_precondition("gap"),
                Error::FailedPrecondition("gap".into()),
            ),
            (
                Status::resource_exhausted("full"),
                Error::ResourceExhausted("full".into()),
            ),
            (
                Status::unavailable("no leader"),
                Error::unavailable("no leader"),
            ),
            (
                Status::deadline_exceeded("slow"),
                Error::RequestTimeout("slow".into()),
            ),
        ];
        for (status, expected) in cases {
            assert_eq!(Error::from(status), expected);
        }
        assert!(matches!(
            Error::from(Status::internal("boom")),
            Error::Server(_)
        ));
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(Error::from(Status::unavailable("x")).is_retryable());
        assert!(Error::Transport("reset".into()).is_retryable());
        assert!(Error::Connect("refused".into()).is_retryable());
        assert!(Error::RequestTimeout("x".into()).is_retryable());
        assert!(!Error::from(Status::not_found("x")).is_retryable());
        assert!(!Error::from(Status::failed_precondition("x")).is_retryable());
        assert!(!Error::from(Status::internal("x")).is_retryable());
    }

    #[test]
    fn only_what_the_server_or_the_socket_says_was_not_applied_is_resent() {
        let refused = unavailable(
            "queue 'q' has no leader yet",
            &[(metadata::RETRY, metadata::NOT_APPLIED)],
        );
        assert!(Error::from(refused).surely_not_applied());
        let lost = unavailable(
            "queue 'q' has no leader yet",
            &[(metadata::RETRY, metadata::MAYBE_APPLIED)],
        );
        assert!(!Error::from(lost).surely_not_applied());
        // The same words without the typed answer: the client assumes the worst.
        assert!(!Error::from(Status::unavailable("no leader")).surely_not_applied());
        assert!(Error::Connect("refused".into()).surely_not_applied());
        assert!(!Error::Transport("h2 protocol error: stream reset".into()).surely_not_applied());
        assert!(!Error::RequestTimeout("x".into()).surely_not_applied());
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_lazy();
        let status = raftq_proto::v1::admin_service_client::AdminServiceClient::new(channel)
            .cluster_status(raftq_proto::v1::ClusterStatusRequest {})
            .await
            .expect_err("nothing listens there");
        let e = Error::from(status);
        assert!(matches!(e, Error::Connect(_)), "{e:?}");
        assert!(e.surely_not_applied());
    }

    #[test]
    fn empty_server_messages_still_say_something() {
        assert_eq!(
            Error::from(Status::unavailable("")).to_string(),
            "The service is currently unavailable"
        );
    }

    #[test]
    fn display_is_one_line() {
        let e = Error::Timeout {
            after: Duration::from_secs(30),
            last: "queue 'q' has no leader yet".into(),
        };
        assert_eq!(
            e.to_string(),
            "gave up after 30s: queue 'q' has no leader yet"
        );
        assert!(!Error::Unreachable("a:1,b:2".into())
            .to_string()
            .contains('\n'));
    }
}
