//! Webhook rate limits that count only authentic webhooks.
//!
//! Each source has a token bucket that only webhooks which passed verification spend: a
//! forger cannot use up the real provider's budget. Failed verifications spend a small bucket
//! of their own per (client address, source); once it is empty that address is answered 429
//! for that source before its body is read or the adapter is called. Either way providers
//! retry, so nothing is lost.
//!
//! Buckets are checked before the adapter runs and spent after it answered, so the number of
//! webhooks over the limit is bounded by those in flight at once (at most the listener's
//! connection cap); a bucket may go into debt by as much, and then stays closed longer.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Client addresses tracked at once for failed verifications; beyond it the buckets longest
/// untouched are forgotten (so a flood from many addresses costs bounded memory).
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// One token bucket: `tokens` as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key, all with the same rate and burst.
struct Buckets<K> {
    per_second: f64,
    burst: f64,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    /// `None` when `per_second` is 0 (no limit).
    fn new(per_second: u32, burst: u32, max_keys: usize) -> Option<Self> {
        Self::with_rate(
            f64::from(per_second),
            f64::from(burst.max(per_second)),
            max_keys,
        )
    }

    /// Like [`Self::new`] with a fractional rate (e.g. a few a minute).
    fn with_rate(per_second: f64, burst: f64, max_keys: usize) -> Option<Self> {
        (per_second > 0.0).then(|| Buckets {
            per_second,
            burst: burst.max(1.0),
            max_keys,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// The bucket's tokens at `now` (full for a key never seen).
    fn tokens(&self, bucket: Option<&Bucket>, now: Instant) -> f64 {
        match bucket {
            None => self.burst,
            Some(bucket) => {
                let refill =
                    now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_second;
                (bucket.tokens + refill).min(self.burst)
            }
        }
    }

    /// `Ok` when `key` has a token now; otherwise how long until it has one.
    fn ready(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let tokens = self.tokens(buckets.get(key), now);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second))
        }
    }

    /// Spends one token of `key` (going into debt down to minus the burst).
    fn spend(&self, key: &K) {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let tokens = self.tokens(buckets.get(key), now);
        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            self.forget(&mut buckets, now);
        }
        buckets.insert(
            key.clone(),
            Bucket {
                tokens: (tokens - 1.0).max(-self.burst),
                at: now,
            },
        );
    }

    /// Makes room: drops full buckets (the same as absent ones), then, if that was not
    /// enough, the older half.
    fn forget(&self, buckets: &mut HashMap<K, Bucket>, now: Instant) {
        buckets.retain(|_, bucket| self.tokens(Some(bucket), now) < self.burst);
        if buckets.len() >= self.max_keys {
            let mut times: Vec<Instant> = buckets.values().map(|bucket| bucket.at).collect();
            let middle = times.len() / 2;
            let (_, cut, _) = times.select_nth_unstable(middle);
            let cut = *cut;
            buckets.retain(|_, bucket| bucket.at > cut);
        }
    }
}

/// The webhook front end's limits, from `[http]`.
pub struct WebhookRateLimit {
    authentic: Option<Buckets<String>>,
    failed: Option<Buckets<(IpAddr, String)>>,
}

/// Why a webhook is refused before it is verified, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source's budget of authentic webhooks is spent.
    Source(Duration),
    /// This client address failed verification too often for this source.
    FailedVerifications(Duration),
}

impl Refusal {
    /// How long to wait before retrying.
    pub fn wait(self) -> Duration {
        match self {
            Refusal::Source(wait) | Refusal::FailedVerifications(wait) => wait,
        }
    }
}

impl WebhookRateLimit {
    /// `per_second` authentic webhooks per source with bursts of `burst`, and
    /// `failed_per_second` (burst `failed_burst`) failed verifications per client address and
    /// source; a rate of 0 switches that limit off.
    pub fn new(per_second: u32, burst: u32, failed_per_second: u32, failed_burst: u32) -> Self {
        Self {
            authentic: Buckets::new(per_second, burst, usize::MAX),
            failed: Buckets::new(failed_per_second, failed_burst, MAX_TRACKED_CLIENTS),
        }
    }

    /// Whether a webhook from `client` to `source` may be verified now. Sources are
    /// configured names only (the caller checks the source exists first).
    pub fn check(&self, client: IpAddr, source: &str) -> Result<(), Refusal> {
        if let Some(failed) = &self.failed {
            failed
                .ready(&(client_key(client), source.to_owned()))
                .map_err(Refusal::FailedVerifications)?;
        }
        if let Some(authentic) = &self.authentic {
            authentic
                .ready(&source.to_owned())
                .map_err(Refusal::Source)?;
        }
        Ok(())
    }

    /// Counts a webhook that passed verification against its source's budget.
    pub fn authentic(&self, source: &str) {
        if let Some(authentic) = &self.authentic {
            authentic.spend(&source.to_owned());
        }
    }

    /// Counts a failed verification against `client`'s budget for `source`.
    pub fn failed(&self, client: IpAddr, source: &str) {
        if let Some(failed) = &self.failed {
            failed.spend(&(client_key(client), source.to_owned()));
        }
    }
}

/// A small budget of failures per client address (the console's logins): each failure
/// spends a token; with none left the address is refused until one refills.
pub struct AddressThrottle(Option<Buckets<IpAddr>>);

impl AddressThrottle {
    /// `burst` failures at once, then `per_minute`.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self(Buckets::with_rate(
            f64::from(per_minute) / 60.0,
            f64::from(burst),
            MAX_TRACKED_CLIENTS,
        ))
    }

    /// `Ok` when `client` may try now; otherwise how long to wait.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        match &self.0 {
            Some(buckets) => buckets.ready(&client_key(client)),
            None => Ok(()),
        }
    }

    /// Counts a failure of `client`.
    pub fn failed(&self, client: IpAddr) {
        if let Some(buckets) = &self.0 {
            buckets.spend(&client_key(client));
        }
    }
}

/// The key of a client address: IPv4 addresses as they are, IPv6 ones by their /64 (one
/// host usually holds a whole /64, so per-address keys would be free to multiply).
pub fn client_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

/// Lets at most `per_second` log lines through each second and counts the rest, so a flood of
/// rejected requests cannot flood the logs (the metrics still count every rejection).
pub struct LogSampler {
    per_second: u32,
    second: AtomicU64,
    count: AtomicU32,
    suppressed: AtomicU64,
}

impl LogSampler {
    /// At most `per_second` lines a second; 0 logs none.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            second: AtomicU64::new(0),
            count: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether this line may be logged; `Some(n)` with the lines suppressed since the last one
    /// logged.
    pub fn admit(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if self.second.swap(now, Ordering::Relaxed) != now {
            self.count.store(0, Ordering::Relaxed);
        }
        if self.count.fetch_add(1, Ordering::Relaxed) < self.per_second {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const FORGER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const PROVIDER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

    #[test]
    fn only_authentic_webhooks_spend_the_source_budget() {
        let limit = WebhookRateLimit::new(1, 3, 1, 2);
        for _ in 0..2 {
            assert_eq!(limit.check(FORGER, "arcadia"), Ok(()));
            limit.failed(FORGER, "arcadia");
        }
        let refusal = limit
            .check(FORGER, "arcadia")
            .expect_err("over its failures");
        assert!(matches!(refusal, Refusal::FailedVerifications(_)));
        assert!(refusal.wait() > Duration::ZERO && refusal.wait() <= Duration::from_secs(1));
        for _ in 0..3 {
            assert_eq!(limit.check(PROVIDER, "arcadia"), Ok(()));
            limit.authentic("arcadia");
        }
        assert!(matches!(
            limit.check(PROVIDER, "arcadia"),
            Err(Refusal::Source(_))
        ));
        assert_eq!(
            limit.check(PROVIDER, "klavi"),
            Ok(()),
            "a bucket per source"
        );
        assert_eq!(limit.check(FORGER, "klavi"), Ok(()), "failures per source");
    }

    #[test]
    fn zero_switches_the_limits_off() {
        let limit = WebhookRateLimit::new(0, 0, 0, 0);
        for _ in 0..10_000 {
            assert_eq!(limit.check(FORGER, "arcadia"), Ok(()));
            limit.authentic("arcadia");
            limit.failed(FORGER, "arcadia");
        }
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("address");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("address");
        let limit = WebhookRateLimit::new(0, 0, 1, 1);
        limit.failed(a, "arcadia");
        assert!(limit.check(b, "arcadia").is_err());
    }

    #[test]
    fn tracked_clients_are_bounded() {
        let buckets: Buckets<u32> = Buckets::new(1, 1, 100).expect("limited");
        for key in 0..1_000 {
            buckets.spend(&key);
        }
        let tracked = buckets.buckets.lock().expect("lock").len();
        assert!(tracked <= 100, "{tracked} tracked");
        assert!(buckets.ready(&999).is_err(), "the newest is remembered");
    }

    #[test]
    fn the_sampler_admits_at_most_n_a_second() {
        let sampler = LogSampler::new(3);
        let admitted = (0..100).filter(|_| sampler.admit().is_some()).count();
        // 3 per second; the loop may straddle one second boundary.
        assert!((3..=6).contains(&admitted), "{admitted}");
    }
}
