//! Jittered exponential backoff for retries that can succeed later (dropped connections, throttling,
//! commit conflicts).

use std::time::Duration;

/// Delays double from `initial` up to `maximum`; each is drawn uniformly from its upper half so that many
/// clients retrying together spread out ("equal jitter").
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    maximum: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, maximum: Duration) -> Self {
        Backoff { initial, maximum, attempt: 0 }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let exponent = self.attempt.min(31);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = self.initial.saturating_mul(1 << exponent).min(self.maximum);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Attempts made since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_stay_under_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<_> = (0..8).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays[3] >= Duration::from_millis(400) && delays[3] <= Duration::from_millis(800));
        assert!(delays.iter().all(|delay| *delay <= Duration::from_secs(2)));
        assert!(delays[7] >= Duration::from_secs(1));
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
