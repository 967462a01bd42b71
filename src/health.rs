//! Provider health: whether each source's provider behaves as expected. A source may declare
//! `[sources.X.expect]` (`max_silence`, `max_verification_failure_ratio`,
//! `max_dead_letter_ratio`); ingest reports every webhook's verification verdict and stored
//! items here, and the gauges, `/readyz` details and the console read [`Health::report`].
//!
//! Counts are kept per source in a ring of time buckets covering `[health] window`, so a ratio
//! is over the last window only and costs one short lock per webhook. A source out of its
//! expectation is flagged, never refused: a provider going quiet is not Tributary failing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};

/// Buckets per window: the ratio's resolution is a 60th of the window.
const BUCKETS: usize = 60;
/// The shortest bucket (1 ms).
const MIN_BUCKET: Duration = Duration::from_millis(1);

/// A duration written as text in the configuration: "6h", "15m", "30s", "1h30m", "500ms"
/// (jiff's friendly format, or ISO 8601).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period(pub Duration);

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let parsed: jiff::SignedDuration = text.trim().parse().map_err(|error| {
            serde::de::Error::custom(format!("`{text}` is not a duration like \"6h\": {error}"))
        })?;
        let duration = Duration::try_from(parsed)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` must be positive")))?;
        Ok(Period(duration))
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&human(self.0))
    }
}

/// `d` in the largest unit that divides it: "6h", "90m", "5s", "250ms".
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        _ if ms != 0 && ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms != 0 && ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// `[health]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// The window the verification-failure and dead-letter ratios are measured over.
    pub window: Period,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            window: Period(Duration::from_secs(3600)),
        }
    }
}

/// `[sources.X.expect]`: every expectation is optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The longest time without an authentic (verified and accepted) webhook.
    pub max_silence: Option<Period>,
    /// The largest share of webhooks failing verification over the window (0..=1).
    #[serde(default, deserialize_with = "ratio")]
    pub max_verification_failure_ratio: Option<f64>,
    /// The largest share of stored items that are dead letters over the window (0..=1).
    #[serde(default, deserialize_with = "ratio")]
    pub max_dead_letter_ratio: Option<f64>,
}

fn ratio<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if (0.0..=1.0).contains(&value) {
        Ok(Some(value))
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} is not a ratio between 0 and 1"
        )))
    }
}

/// What one bucket of time counted.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which bucket of time since start this is (stale when not the current round's).
    slot: u64,
    authentic: u64,
    unauthenticated: u64,
    events: u64,
    dead_letters: u64,
}

/// One source's counts over the window.
#[derive(Debug)]
struct Window {
    buckets: [Bucket; BUCKETS],
    last_authentic: Option<Instant>,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            buckets: [Bucket::default(); BUCKETS],
            last_authentic: None,
        }
    }
}

impl Window {
    /// The bucket of `slot`, emptied first when it still holds an older round.
    fn bucket(&mut self, slot: u64) -> &mut Bucket {
        let index = usize::try_from(slot % BUCKETS as u64).unwrap_or(0);
        let bucket = &mut self.buckets[index];
        if bucket.slot != slot {
            *bucket = Bucket {
                slot,
                ..Bucket::default()
            };
        }
        bucket
    }

    /// Sums of the buckets within the last window ending at `slot`.
    fn totals(&self, slot: u64) -> Bucket {
        let oldest = slot.saturating_sub(BUCKETS as u64 - 1);
        self.buckets
            .iter()
            .filter(|b| b.slot >= oldest && b.slot <= slot)
            .fold(Bucket::default(), |sum, b| Bucket {
                slot,
                authentic: sum.authentic + b.authentic,
                unauthenticated: sum.unauthenticated + b.unauthenticated,
                events: sum.events + b.events,
                dead_letters: sum.dead_letters + b.dead_letters,
            })
    }
}

/// The configuration the tracker measures against.
#[derive(Debug, Clone)]
struct Settings {
    window: Duration,
    expect: BTreeMap<String, Expect>,
}

/// Per-source counts over the window; one per process ([`tracker`]).
#[derive(Debug)]
pub struct Health {
    started: Instant,
    settings: RwLock<Settings>,
    sources: RwLock<HashMap<String, Arc<Mutex<Window>>>>,
}

/// One source's health now.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SourceHealth {
    pub source: String,
    /// Time since the last authentic webhook (since the process started, when none came).
    pub silence: Duration,
    /// Whether an authentic webhook arrived since the process started.
    pub heard: bool,
    /// Webhooks failing verification / webhooks verified or failing, over the window; `None`
    /// without webhooks in the window.
    pub verification_failure_ratio: Option<f64>,
    /// Dead letters / items stored, over the window; `None` without items in the window.
    pub dead_letter_ratio: Option<f64>,
    /// The expectations this source is out of, one sentence each.
    pub violations: Vec<Violation>,
}

/// One expectation a source does not meet.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Violation {
    /// `max_silence`, `max_verification_failure_ratio` or `max_dead_letter_ratio`.
    pub expectation: &'static str,
    /// What was measured against what was expected.
    pub detail: String,
}

/// The expectations a source can have, as gauge labels.
pub const EXPECTATIONS: [&str; 3] = [
    "max_silence",
    "max_verification_failure_ratio",
    "max_dead_letter_ratio",
];

static HEALTH: LazyLock<Health> = LazyLock::new(|| Health {
    started: Instant::now(),
    settings: RwLock::new(Settings {
        window: HealthConfig::default().window.0,
        expect: BTreeMap::new(),
    }),
    sources: RwLock::default(),
});

/// The process's tracker.
pub fn tracker() -> &'static Health {
    &HEALTH
}

impl Health {
    /// Sets the window and every source's expectations (at start-up).
    pub fn configure(&self, window: Duration, expect: BTreeMap<String, Expect>) {
        let settings = Settings { window, expect };
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = settings;
    }

    /// The configured window.
    pub fn window(&self) -> Duration {
        self.settings().window
    }

    /// A source's expectations (none when not configured).
    pub fn expectations(&self, source: &str) -> Expect {
        self.settings()
            .expect
            .get(source)
            .cloned()
            .unwrap_or_default()
    }

    fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn bucket_length(&self) -> Duration {
        (self.window() / BUCKETS as u32).max(MIN_BUCKET)
    }

    fn slot(&self, at: Instant) -> u64 {
        let length = self.bucket_length().as_millis().max(1);
        u64::try_from(at.duration_since(self.started).as_millis() / length).unwrap_or(u64::MAX)
    }

    fn window_of(&self, source: &str) -> Arc<Mutex<Window>> {
        if let Some(window) = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
        {
            return Arc::clone(window);
        }
        let mut sources = self.sources.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(sources.entry(source.to_owned()).or_default())
    }

    fn record(&self, source: &str, change: impl FnOnce(&mut Window, &mut Bucket)) {
        let now = Instant::now();
        let slot = self.slot(now);
        let window = self.window_of(source);
        let mut window = window.lock().unwrap_or_else(|p| p.into_inner());
        let mut bucket = *window.bucket(slot);
        change(&mut window, &mut bucket);
        *window.bucket(slot) = bucket;
    }

    /// A webhook of `source` passed verification (`true`) or failed it (`false`).
    pub fn verified(&self, source: &str, authentic: bool) {
        let now = Instant::now();
        self.record(source, |window, bucket| {
            if authentic {
                bucket.authentic += 1;
                window.last_authentic = Some(now);
            } else {
                bucket.unauthenticated += 1;
            }
        });
    }

    /// A webhook of `source` stored `events` new events and `dead_letters` new dead letters.
    pub fn stored(&self, source: &str, events: usize, dead_letters: usize) {
        if events == 0 && dead_letters == 0 {
            return;
        }
        self.record(source, |_, bucket| {
            bucket.events += events as u64;
            bucket.dead_letters += dead_letters as u64;
        });
    }

    /// The health of each source in `sources`, now.
    pub fn report<'a>(&self, sources: impl IntoIterator<Item = &'a str>) -> Vec<SourceHealth> {
        let now = Instant::now();
        let slot = self.slot(now);
        let settings = self.settings();
        sources
            .into_iter()
            .map(|source| {
                let window = self.window_of(source);
                let (totals, last) = {
                    let window = window.lock().unwrap_or_else(|p| p.into_inner());
                    (window.totals(slot), window.last_authentic)
                };
                let silence = now.duration_since(last.unwrap_or(self.started));
                let ratio = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
                let verification_failure_ratio = ratio(
                    totals.unauthenticated,
                    totals.unauthenticated + totals.authentic,
                );
                let dead_letter_ratio =
                    ratio(totals.dead_letters, totals.dead_letters + totals.events);
                let expect = settings.expect.get(source).cloned().unwrap_or_default();
                let mut health = SourceHealth {
                    source: source.to_owned(),
                    silence,
                    heard: last.is_some(),
                    verification_failure_ratio,
                    dead_letter_ratio,
                    violations: Vec::new(),
                };
                health.violations = violations(&health, &expect, settings.window);
                health
            })
            .collect()
    }
}

/// The expectations of `expect` that `health` is out of.
fn violations(health: &SourceHealth, expect: &Expect, window: Duration) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(max) = expect.max_silence
        && health.silence > max.0
    {
        let since = if health.heard {
            "the last authentic webhook"
        } else {
            "start-up, no authentic webhook yet"
        };
        out.push(Violation {
            expectation: "max_silence",
            detail: format!(
                "silent for {} since {since} (max_silence {max})",
                human(Duration::from_secs(health.silence.as_secs()))
            ),
        });
    }
    let percent = |ratio: f64| format!("{:.1}%", ratio * 100.0);
    if let (Some(max), Some(ratio)) = (
        expect.max_verification_failure_ratio,
        health.verification_failure_ratio,
    ) && ratio > max
    {
        out.push(Violation {
            expectation: "max_verification_failure_ratio",
            detail: format!(
                "{} of webhooks failed verification over the last {} (max {})",
                percent(ratio),
                human(window),
                percent(max)
            ),
        });
    }
    if let (Some(max), Some(ratio)) = (expect.max_dead_letter_ratio, health.dead_letter_ratio)
        && ratio > max
    {
        out.push(Violation {
            expectation: "max_dead_letter_ratio",
            detail: format!(
                "{} of stored items were dead letters over the last {} (max {})",
                percent(ratio),
                human(window),
                percent(max)
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(window: Duration) -> Health {
        Health {
            started: Instant::now(),
            settings: RwLock::new(Settings {
                window,
                expect: BTreeMap::from([(
                    "s".to_owned(),
                    Expect {
                        max_silence: Some(Period(Duration::from_secs(3600))),
                        max_verification_failure_ratio: Some(0.25),
                        max_dead_letter_ratio: Some(0.5),
                    },
                )]),
            }),
            sources: RwLock::default(),
        }
    }

    #[test]
    fn ratios_over_the_window_and_violations() {
        let h = health(Duration::from_secs(3600));
        for _ in 0..3 {
            h.verified("s", true);
        }
        h.verified("s", false);
        h.stored("s", 3, 1);
        let report = h.report(["s"]);
        assert_eq!(report[0].verification_failure_ratio, Some(0.25));
        assert_eq!(report[0].dead_letter_ratio, Some(0.25));
        assert!(report[0].heard);
        assert_eq!(report[0].violations, Vec::new());
        h.verified("s", false);
        let report = h.report(["s"]);
        assert_eq!(report[0].verification_failure_ratio, Some(0.4));
        assert_eq!(
            report[0].violations,
            vec![Violation {
                expectation: "max_verification_failure_ratio",
                detail: "40.0% of webhooks failed verification over the last 1h (max 25.0%)"
                    .to_owned()
            }]
        );
    }

    #[test]
    fn counts_leave_the_window() {
        let h = health(Duration::from_millis(600));
        h.verified("s", false);
        assert_eq!(h.report(["s"])[0].verification_failure_ratio, Some(1.0));
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(h.report(["s"])[0].verification_failure_ratio, None);
        assert_eq!(h.report(["unknown"])[0].dead_letter_ratio, None);
    }

    #[test]
    fn periods_parse_and_print() {
        #[derive(Deserialize)]
        struct T {
            p: Period,
        }
        let p = |text: &str| toml::from_str::<T>(&format!("p = {text:?}")).map(|t| t.p);
        assert_eq!(p("6h").expect("6h").0, Duration::from_secs(6 * 3600));
        assert_eq!(p("1h30m").expect("1h30m").to_string(), "90m");
        assert_eq!(p("500ms").expect("ms").to_string(), "500ms");
        assert!(p("0s").is_err());
        assert!(p("soon").is_err());
        let e = toml::from_str::<Expect>("max_dead_letter_ratio = 1.5").expect_err("ratio");
        assert!(e.to_string().contains("not a ratio"), "{e}");
    }
}
