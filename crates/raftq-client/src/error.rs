//! Client errors: one variant per thing a caller can act on.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no raftq node reachable at {0}")]
    Unreachable(String),
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("gave up after {0:?} of retries: {1}")]
    Timeout(std::time::Duration, String),
    #[error("server error: {0}")]
    Server(String),
}

impl Error {
    /// Worth retrying (elsewhere or later) rather than reporting.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Unreachable(_))
    }
}

impl From<Status> for Error {
    fn from(s: Status) -> Self {
        let m = s.message().to_string();
        match s.code() {
            Code::NotFound => Error::NotFound(m),
            Code::AlreadyExists => Error::AlreadyExists(m),
            Code::InvalidArgument | Code::OutOfRange => Error::InvalidArgument(m),
            Code::FailedPrecondition => Error::FailedPrecondition(m),
            Code::ResourceExhausted => Error::ResourceExhausted(m),
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::Unknown => Error::Unavailable(if m.is_empty() {
                format!("{}", s.code())
            } else {
                m
            }),
            _ => Error::Server(format!("{}: {m}", s.code())),
        }
    }
}

/// Parses the `leader=ID@HOST:PORT` hint servers put in UNAVAILABLE messages.
pub fn leader_hint(message: &str) -> Option<(u64, String)> {
    let rest = &message[message.find("leader=")? + "leader=".len()..];
    let (id, rest) = rest.split_once('@')?;
    let addr: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ')')
        .collect();
    Some((id.parse().ok()?, addr))
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
        assert_eq!(leader_hint("no leader yet"), None);
    }

    #[test]
    fn codes_map_to_actionable_errors() {
        assert!(Error::from(Status::unavailable("x")).is_retryable());
        assert!(!Error::from(Status::not_found("x")).is_retryable());
        assert!(matches!(
            Error::from(Status::resource_exhausted("x")),
            Error::ResourceExhausted(_)
        ));
    }
}
