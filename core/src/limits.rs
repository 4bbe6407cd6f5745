//! Rate limits: a [`RateSpec`] read from the settings (`"5/1m"`: a burst of 5, refilled at
//! 5 per minute; `"off"`), and a [`KeyedLimit`] keeping one allowance per key (an e-mail, a
//! client address) on `governor`'s GCRA. A refused check is cheap: no lock held long, no I/O.

use std::fmt;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Keys remembered before the idle ones are forgotten (bounds the memory an attacker
/// cycling through keys can take).
const MAX_KEYS: usize = 100_000;

/// `burst` requests at once, refilled evenly over `per`; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec(Option<(NonZeroU32, Duration)>);

impl RateSpec {
    /// No limit.
    pub const OFF: Self = Self(None);

    /// Parse `N/DURATION` (`5/1m`, `100/1s`) or `off` (also `0`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") || raw == "0" {
            return Ok(Self::OFF);
        }
        let (n, per) = raw.split_once('/').ok_or("expected N/DURATION (e.g. 5/1m) or off")?;
        let n: u32 = n.trim().parse().map_err(|_| format!("{n:?} is not a count"))?;
        let per = crate::config::parse_duration(per.trim())?;
        match (NonZeroU32::new(n), per.is_zero()) {
            (Some(n), false) => Ok(Self(Some((n, per)))),
            _ => Err("the count and the duration must not be zero (use off)".into()),
        }
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("off"),
            Some((n, per)) => write!(f, "{n}/{}", humantime::format_duration(per)),
        }
    }
}

/// One allowance per key; cheap to clone (clones share the allowances).
#[derive(Clone)]
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: Option<Arc<DefaultKeyedRateLimiter<K>>>,
}

impl<K: Hash + Eq + Clone> fmt::Debug for KeyedLimit<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimit").field("on", &self.limiter.is_some()).finish()
    }
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// Allowances as `spec` says (none kept when it is off).
    pub fn new(spec: RateSpec) -> Self {
        let limiter = spec.0.map(|(burst, per)| {
            let quota = Quota::with_period(per / burst.get()).unwrap_or_else(|| Quota::per_second(burst));
            Arc::new(RateLimiter::keyed(quota.allow_burst(burst)))
        });
        Self { limiter }
    }

    /// Whether a limit applies at all.
    pub fn is_on(&self) -> bool {
        self.limiter.is_some()
    }

    /// Take one from `key`'s allowance, or say how long until there is one (at least 1 s,
    /// as `Retry-After` counts whole seconds).
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if limiter.len() > MAX_KEYS {
            limiter.retain_recent();
        }
        limiter.check_key(key).map_err(|until| {
            let wait = until.wait_time_from(DefaultClock::default().now());
            wait.max(Duration::from_secs(1))
        })
    }
}

/// Whole seconds to tell a client to wait (rounded up).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        assert_eq!(RateSpec::parse("off"), Ok(RateSpec::OFF));
        assert_eq!(RateSpec::parse("0"), Ok(RateSpec::OFF));
        let spec = RateSpec::parse("5/1m").expect("valid");
        assert_eq!(spec.to_string(), "5/1m");
        for bad in ["5", "x/1m", "5/soon", "0/1m", "5/0s"] {
            assert!(RateSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_gets_its_burst_then_waits_while_others_are_untouched() {
        let limit = KeyedLimit::new(RateSpec::parse("3/1m").expect("valid"));
        for _ in 0..3 {
            assert_eq!(limit.check(&"a@x"), Ok(()));
        }
        let wait = limit.check(&"a@x").expect_err("over the burst");
        assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(20), "{wait:?}");
        assert_eq!(limit.check(&"b@x"), Ok(()), "another key has its own allowance");
        let off = KeyedLimit::new(RateSpec::OFF);
        assert!((0..1_000).all(|_| off.check(&"a@x").is_ok()));
    }
}
