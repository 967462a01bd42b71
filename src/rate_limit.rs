//! Per-source rate limit: a provider (or someone posing as one) cannot flood the log. Over the
//! limit a webhook gets 429 with `Retry-After`; providers retry, so nothing is lost.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A token bucket per source name. Keys are configured source names only (the caller checks
/// the source exists first), so the map stays as small as the configuration.
pub struct SourceRateLimit {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl SourceRateLimit {
    /// `per_second` webhooks per source with bursts of `burst`; 0 switches the limit off.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// `Ok` when `source` may send one more webhook now; otherwise how long to wait.
    pub fn check(&self, source: &str) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&source.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_over_the_limit_is_refused_per_source() {
        let limit = SourceRateLimit::new(1, 3);
        for _ in 0..3 {
            assert!(limit.check("arcadia").is_ok());
        }
        let wait = limit.check("arcadia").expect_err("over the burst");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(
            limit.check("klavi").is_ok(),
            "each source has its own bucket"
        );
    }

    #[test]
    fn zero_switches_the_limit_off() {
        let limit = SourceRateLimit::new(0, 0);
        for _ in 0..10_000 {
            assert!(limit.check("arcadia").is_ok());
        }
    }
}
