//! Exponential backoff with jitter, and the deadline every retry loop honours.

use std::time::{Duration, Instant};

use rand::Rng;

/// Pauses between attempts: doubling from `initial` up to `max`, each drawn
/// from the upper half of its step ("equal jitter") so clients that failed
/// together do not retry together, yet never retry in a hot loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The next pause.
    pub fn next_delay(&mut self) -> Duration {
        let delay = delay_for(
            self.attempt,
            self.initial,
            self.max,
            rand::thread_rng().gen(),
        );
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Back to the shortest pause, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(20), Duration::from_secs(1))
    }
}

/// Pause before retry number `attempt` (0-based): `step = min(max, initial *
/// 2^attempt)`, then `step/2 + jitter * step/2` with `jitter` in `[0, 1)`.
pub fn delay_for(attempt: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(30));
    let step = initial.saturating_mul(factor).min(max);
    let half = step / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// When a retrying operation must stop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    pub(crate) fn after(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
            budget,
        }
    }

    pub(crate) fn budget(&self) -> Duration {
        self.budget
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    pub(crate) fn expired(&self) -> bool {
        Instant::now() >= self.at
    }

    /// Timeout for one attempt: the per-request timeout, shortened so the last
    /// attempt ends near the deadline (but is never uselessly short).
    pub(crate) fn attempt_timeout(&self, request_timeout: Duration) -> Duration {
        request_timeout
            .min(self.remaining())
            .max(Duration::from_millis(100))
    }

    /// A pause, cut short at the deadline.
    pub(crate) fn clamp(&self, pause: Duration) -> Duration {
        pause.min(self.remaining())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_then_cap() {
        let (initial, max) = (20 * MS, 1000 * MS);
        let full: Vec<Duration> = (0..8).map(|a| delay_for(a, initial, max, 1.0)).collect();
        assert_eq!(
            full,
            [20, 40, 80, 160, 320, 640, 1000, 1000].map(|ms| ms * MS)
        );
    }

    #[test]
    fn jitter_stays_in_the_upper_half_of_each_step() {
        for attempt in 0..40 {
            let step = (20 * MS)
                .saturating_mul(2u32.saturating_pow(attempt.min(30)))
                .min(1000 * MS);
            let low = delay_for(attempt, 20 * MS, 1000 * MS, 0.0);
            let high = delay_for(attempt, 20 * MS, 1000 * MS, 0.999);
            assert_eq!(low, step / 2);
            assert!(high < step && high >= low, "attempt {attempt}: {high:?}");
        }
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        assert_eq!(delay_for(u32::MAX, 20 * MS, 1000 * MS, 1.0), 1000 * MS);
    }

    #[test]
    fn backoff_resets_after_success() {
        let mut b = Backoff::new(10 * MS, 1000 * MS);
        for _ in 0..10 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= 10 * MS);
    }

    #[test]
    fn attempts_never_run_far_past_the_deadline() {
        let d = Deadline::after(Duration::from_secs(60));
        assert_eq!(d.attempt_timeout(5000 * MS), 5000 * MS);
        let d = Deadline::after(Duration::ZERO);
        assert!(d.expired());
        assert_eq!(d.attempt_timeout(5000 * MS), 100 * MS);
        assert_eq!(d.clamp(500 * MS), Duration::ZERO);
    }
}
