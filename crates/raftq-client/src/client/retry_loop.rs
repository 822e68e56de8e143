//! The one retry loop every retried request goes through: rounds over the
//! candidate nodes, following leader hints at once, backing off between
//! rounds, until the retry deadline.

use std::future::Future;
use std::time::Duration;

use super::not_found::SecondOpinion;
use super::{with_timeout, Target};
use crate::retry::Deadline;
use crate::{Client, Error};

impl Client {
    /// Runs `op` against candidate nodes until it succeeds, fails for good, or
    /// the retry deadline passes. `op` gets a node address and the timeout its
    /// attempt should carry. Every operation sent this way is idempotent
    /// (publishes carry a publish key), so every transient failure is retried.
    pub(crate) async fn call<T, F, Fut>(&self, target: Target<'_>, mut op: F) -> Result<T, Error>
    where
        F: FnMut(String, Duration) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let deadline = Deadline::after(self.inner.options.retry_deadline);
        let mut backoff = self.backoff();
        let mut last = LastError::default();
        let mut not_found = SecondOpinion::default();
        loop {
            let mut follow_hint = false;
            for addr in self.candidates(target).await {
                let timeout = deadline.attempt_timeout(self.inner.options.request_timeout);
                let e = match with_timeout(&addr, timeout, op(addr.clone(), timeout)).await {
                    Ok(v) => return Ok(v),
                    Err(e) => e,
                };
                let Some(e) = not_found.review(e) else {
                    continue;
                };
                if !e.is_retryable() {
                    return Err(e);
                }
                follow_hint = self.learn_from_failure(target.queue(), &addr, &e);
                last.record(e);
                if deadline.expired() || follow_hint {
                    break;
                }
            }
            if let Some(e) = not_found.unanswered() {
                return Err(e);
            }
            if deadline.expired() {
                let last = last
                    .best()
                    .unwrap_or_else(|| Error::Unreachable(self.seeds().join(",")));
                return Err(Error::timeout(deadline.budget(), &last));
            }
            // A fresh hint names the leader: go there at once, not after a pause.
            if !follow_hint {
                tokio::time::sleep(deadline.clamp(backoff.next_delay())).await;
            }
        }
    }
}

/// The failure worth reporting when retries run out: what a node said ("no
/// leader yet") explains more than a refused connection to a dead node.
#[derive(Default)]
struct LastError {
    answer: Option<Error>,
    other: Option<Error>,
}

impl LastError {
    fn record(&mut self, e: Error) {
        match e {
            Error::Connect(_)
            | Error::Transport(_)
            | Error::RequestTimeout(_)
            | Error::Unreachable(_) => self.other = Some(e),
            _ => self.answer = Some(e),
        }
    }

    fn best(self) -> Option<Error> {
        self.answer.or(self.other)
    }
}
