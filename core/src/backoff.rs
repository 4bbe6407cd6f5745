//! The reconnect policy: exponential, jittered, capped, never giving up.
//!
//! Built on `backon`. Each delay is `min * 2^n` capped at `max`, plus up to 100 % jitter,
//! and then clamped to `max` again so the cap really is the longest wait.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// How long to wait between reconnect attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The first delay.
    pub min: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self { min: Duration::from_millis(200), max: Duration::from_secs(10) }
    }
}

impl BackoffPolicy {
    /// A fresh sequence of delays (unlimited).
    pub fn delays(&self) -> Delays {
        let inner = ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build();
        Delays { inner, max: self.max }
    }
}

/// An endless sequence of reconnect delays; see [`BackoffPolicy`]. As an iterator it is a
/// `backon` backoff that never runs out.
#[derive(Debug)]
pub struct Delays {
    inner: ExponentialBackoff,
    max: Duration,
}

impl Delays {
    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        self.inner.next().unwrap_or(self.max).min(self.max)
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_with_jitter_and_stay_under_the_cap() {
        let policy = BackoffPolicy { min: Duration::from_millis(100), max: Duration::from_secs(2) };
        let mut delays = policy.delays();
        for n in 0..20u32 {
            let base = (policy.min * 2u32.pow(n.min(10))).min(policy.max);
            let d = delays.next_delay();
            assert!(d >= base, "attempt {n}: {d:?} < {base:?}");
            assert!(d <= (base * 2).min(policy.max), "attempt {n}: {d:?} too long");
        }
    }
}
