//! How long to wait before reconnecting: exponential, capped, with jitter so that many
//! consumers of a restarted server do not reconnect in lockstep.

use std::time::Duration;

/// Reconnection policy of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the first retry.
    pub initial: Duration,
    /// Longest wait between two retries.
    pub max: Duration,
    /// Retries in a row (without an event in between) before the stream gives up with the
    /// last error; `None` retries forever.
    pub max_retries: Option<u32>,
}

impl Default for Backoff {
    /// 100 ms doubling up to 10 s, forever: a consumer outlives a server restart.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            max_retries: None,
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (1-based): `initial * 2^(attempt-1)` capped at
    /// `max`, then a random value in its upper half.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let full = self
            .initial
            .saturating_mul(1u32 << exponent)
            .min(self.max)
            .max(Duration::from_millis(1));
        let half = full / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
        let jitter = getrandom::u64().unwrap_or(0) % nanos;
        half + Duration::from_nanos(jitter)
    }

    /// Whether retry number `attempt` is still allowed.
    pub fn allows(&self, attempt: u32) -> bool {
        self.max_retries.is_none_or(|max| attempt <= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_their_upper_half() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(800),
            max_retries: Some(3),
        };
        for (attempt, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (9, 800), (60, 800)] {
            let delay = backoff.delay(attempt);
            let full = Duration::from_millis(full);
            assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
        }
        assert!(backoff.allows(3));
        assert!(!backoff.allows(4));
        assert!(Backoff::default().allows(u32::MAX));
    }
}
