//! One attempt at one node: the deadline it carries to the server, and the
//! same bound kept locally.

use std::future::Future;
use std::time::Duration;

use crate::Error;

/// A request carrying `timeout` as its gRPC deadline, so the server stops
/// working on it when the client stops waiting.
pub(crate) fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(timeout);
    req
}

/// Bounds an attempt locally too: a half-open connection never answers.
pub(crate) async fn with_timeout<T>(
    addr: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    // A little slack so the server's own DEADLINE_EXCEEDED wins when it comes.
    match tokio::time::timeout(timeout + Duration::from_millis(50), fut).await {
        Ok(Err(Error::Transport(m))) => Err(Error::Transport(format!("{addr}: {m}"))),
        Ok(Err(Error::Connect(m))) => Err(Error::Connect(format!("{addr}: {m}"))),
        Ok(result) => result,
        Err(_) => Err(Error::RequestTimeout(format!(
            "{addr} did not answer within {timeout:?}"
        ))),
    }
}
