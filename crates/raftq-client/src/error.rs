//! Client errors: one variant per thing a caller can act on, mapped from gRPC
//! status codes, each displayed as one line a person can read.

use std::error::Error as _;
use std::time::Duration;

use tonic::{Code, Status};

/// Everything that can go wrong talking to a raftq cluster.
///
/// Variants carrying a server message show it as is: the server already writes
/// them for people ("queue 'orders' does not exist").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No seed address answered at all (wrong addresses, or the cluster is down).
    #[error("cannot reach any raftq node at {0} (is the cluster running? check --servers / RAFTQ_SERVERS)")]
    Unreachable(String),
    /// The cluster answered but cannot serve this now: no leader yet, leadership
    /// moving, node shutting down. Retried automatically until the deadline.
    #[error("{0}")]
    Unavailable(String),
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
    /// The queue is full (`max_length` / `max_bytes` with `overflow = reject-publish`).
    #[error("{0}")]
    ResourceExhausted(String),
    /// One attempt got no answer within `request_timeout`: it may or may not
    /// have taken effect.
    #[error("no answer within the request timeout: {0}")]
    RequestTimeout(String),
    /// Retries went on for the whole retry deadline without success; `last` is
    /// the last failure seen.
    #[error("gave up after {after:?}: {last}")]
    Timeout { after: Duration, last: String },
    /// The connection failed (refused, reset, HTTP/2 error) before an answer came.
    #[error("transport error: {0}")]
    Transport(String),
    /// Any other server failure (INTERNAL, UNIMPLEMENTED, ...).
    #[error("server error: {0}")]
    Server(String),
    /// The producer or consumer this came from has shut down.
    #[error("{0}")]
    Closed(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Worth retrying (elsewhere or later) rather than reporting: the cluster
    /// may serve it once a leader is elected or a node is back.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_)
                | Error::Unreachable(_)
                | Error::Transport(_)
                | Error::RequestTimeout(_)
        )
    }

    /// True when the failed request certainly did not take effect, so even a
    /// non-idempotent request may be sent again. A timeout or a connection cut
    /// mid-request is not such a case.
    pub(crate) fn surely_not_applied(&self) -> bool {
        match self {
            Error::Unreachable(_) => true,
            Error::Transport(m) => is_connect_failure(m),
            // Only the refusals a node gives before proposing anything; a
            // forward that lost its answer, or a raft error after proposing,
            // may have been applied.
            Error::Unavailable(m) => {
                !m.contains("forwarded request failed")
                    && [
                        "no leader",
                        "shutting down",
                        "not the leader",
                        "leadership moved",
                    ]
                    .iter()
                    .any(|refusal| m.contains(refusal))
            }
            _ => false,
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
            return Error::Transport(describe_transport(s));
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
            Code::ResourceExhausted => Error::ResourceExhausted(m),
            // ABORTED is gRPC's "retry at a higher level".
            Code::Unavailable | Code::Aborted => Error::Unavailable(m),
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

fn is_connect_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("connect") || m.contains("refused") || m.contains("dns")
}

/// Parses the `leader=ID@HOST:PORT` hint a server puts in UNAVAILABLE messages.
pub fn leader_hint(message: &str) -> Option<(u64, String)> {
    let start = message.find("leader=")? + "leader=".len();
    let (id, rest) = message[start..].split_once('@')?;
    let addr: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ')' | ',' | ';' | ']'))
        .collect();
    if addr.is_empty() || !addr.contains(':') {
        return None;
    }
    Some((id.trim().parse().ok()?, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_hint_is_parsed_from_unavailable_messages() {
        assert_eq!(
            leader_hint("node 2 is not the leader of queue 'q' (leader=3@127.0.0.1:7003)"),
            Some((3, "127.0.0.1:7003".to_string()))
        );
        assert_eq!(
            leader_hint("leadership moved (leader=12@raftq-2.raftq:7001)"),
            Some((12, "raftq-2.raftq:7001".to_string()))
        );
        assert_eq!(
            leader_hint("leader=1@10.0.0.1:7001, retry"),
            Some((1, "10.0.0.1:7001".to_string()))
        );
    }

    #[test]
    fn malformed_leader_hints_are_ignored() {
        assert_eq!(leader_hint("queue 'q' has no leader yet; retry"), None);
        assert_eq!(leader_hint("leader=x@127.0.0.1:7001"), None);
        assert_eq!(leader_hint("leader=3@"), None);
        assert_eq!(leader_hint("leader=3 at somewhere"), None);
        assert_eq!(leader_hint("leader=3@nohostport)"), None);
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
                Error::Unavailable("no leader".into()),
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
        assert!(Error::RequestTimeout("x".into()).is_retryable());
        assert!(!Error::from(Status::not_found("x")).is_retryable());
        assert!(!Error::from(Status::failed_precondition("x")).is_retryable());
        assert!(!Error::from(Status::internal("x")).is_retryable());
    }

    #[test]
    fn ambiguous_failures_are_not_called_unapplied() {
        assert!(Error::Unavailable("queue 'q' has no leader yet".into()).surely_not_applied());
        assert!(Error::Unavailable("leadership moved (leader=2@b:2)".into()).surely_not_applied());
        assert!(
            !Error::Unavailable("queue 'q': raft group unavailable: fatal".into())
                .surely_not_applied()
        );
        assert!(
            !Error::Unavailable("forwarded request failed: Unavailable: x".into())
                .surely_not_applied()
        );
        assert!(
            Error::Transport("tcp connect error: Connection refused".into()).surely_not_applied()
        );
        assert!(!Error::Transport("h2 protocol error: stream reset".into()).surely_not_applied());
        assert!(!Error::RequestTimeout("x".into()).surely_not_applied());
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
