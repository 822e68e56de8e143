//! Exponential backoff with jitter, bounded by a deadline.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new() -> Self {
        Self {
            next: Duration::from_millis(20),
            max: Duration::from_millis(1000),
        }
    }

    /// The next pause: doubling up to `max`, each with ±50% jitter so clients that
    /// failed together do not retry together.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = rand::thread_rng().gen_range(0.5..1.5);
        base.mul_f64(jitter)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut b = Backoff::new();
        let first = b.next_delay();
        assert!(first <= Duration::from_millis(30));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_millis(1500));
        }
    }
}
