//! Open-loop pacing for `--rate`: message `i` of a producer is due at
//! `start + i / rate`, whatever happened to earlier messages. Latency is
//! measured from that due time, so a producer that falls behind (its in-flight
//! window full) shows the wait instead of hiding it (no coordinated omission).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Pace {
    start: Instant,
    /// Messages per second; `None` sends as fast as the window allows.
    rate: Option<f64>,
}

impl Pace {
    pub fn new(start: Instant, rate: Option<f64>) -> Pace {
        Pace {
            start,
            rate: rate.filter(|r| *r > 0.0),
        }
    }

    /// When message `i` (from 0) is due; `None` when unpaced.
    pub fn due(&self, i: u64) -> Option<Instant> {
        let rate = self.rate?;
        Some(self.start + Duration::from_secs_f64(i as f64 / rate))
    }

    /// Whether message `i` may go at `now`.
    pub fn is_due(&self, i: u64, now: Instant) -> bool {
        self.due(i).is_none_or(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaced_messages_are_always_due() {
        let p = Pace::new(Instant::now(), None);
        assert!(p.is_due(1_000_000, Instant::now()));
        assert_eq!(p.due(5), None);
        assert!(Pace::new(Instant::now(), Some(0.0)).due(5).is_none());
    }

    #[test]
    fn paced_messages_fall_due_at_the_rate() {
        let start = Instant::now();
        let p = Pace::new(start, Some(1000.0));
        assert_eq!(p.due(0), Some(start));
        assert_eq!(p.due(500), Some(start + Duration::from_millis(500)));
        assert!(p.is_due(10, start + Duration::from_millis(10)));
        assert!(!p.is_due(11, start + Duration::from_millis(10)));
    }
}
