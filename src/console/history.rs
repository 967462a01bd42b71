//! The last hour, for the overview's plots: every [`STEP`] a sample of the counters the
//! metrics already keep (per source: webhooks received and rejected) and of each durable
//! consumer's lag, in a ring of [`SLOTS`] samples. Rates are differences of consecutive
//! samples, so nothing on the data path changes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::app::App;
use crate::error::ErrorCode;
use crate::ops::metrics::{RejectLabels, SourceLabels, metrics};

/// Time between samples.
pub const STEP: Duration = Duration::from_secs(10);
/// Samples kept: one hour and one more, for the first difference.
pub const SLOTS: usize = 361;

/// One source's counters since the process started (from `/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Webhooks that reached `POST /webhooks/{source}`.
    pub received: u64,
    /// Webhooks answered 2xx.
    pub accepted: u64,
    /// Canonical events newly stored.
    pub events: u64,
    /// Items already stored (provider retries).
    pub duplicates: u64,
    /// Items stored as dead letters.
    pub dead_lettered: u64,
    /// Items acknowledged without storing anything.
    pub ignored: u64,
    /// Webhooks answered 4xx/5xx, by reason label.
    pub rejected: BTreeMap<&'static str, u64>,
}

impl Totals {
    /// Every rejection, whatever the reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// The counters of every configured source (and of requests to unknown sources, under "").
pub fn totals(app: &App) -> BTreeMap<String, Totals> {
    let m = metrics();
    let mut out = BTreeMap::new();
    let mut labels: Vec<SourceLabels> = app
        .sources
        .all()
        .iter()
        .map(|source| SourceLabels {
            source: source.name.clone(),
            adapter: source.adapter.plugin().info().name.clone(),
        })
        .collect();
    labels.push(SourceLabels {
        source: String::new(),
        adapter: String::new(),
    });
    for label in labels {
        let read = |family: &prometheus_client::metrics::family::Family<
            SourceLabels,
            prometheus_client::metrics::counter::Counter,
        >| family.get(&label).map(|c| c.get()).unwrap_or(0);
        let mut totals = Totals {
            received: read(&m.webhooks_received),
            accepted: read(&m.webhooks_accepted),
            events: read(&m.events_accepted),
            duplicates: read(&m.duplicates),
            dead_lettered: read(&m.dead_lettered),
            ignored: read(&m.ignored),
            rejected: BTreeMap::new(),
        };
        for code in ErrorCode::ALL {
            let reject = RejectLabels {
                source: label.source.clone(),
                adapter: label.adapter.clone(),
                reason: code.label().to_owned(),
            };
            if let Some(count) = m.webhooks_rejected.get(&reject).map(|c| c.get())
                && count > 0
            {
                totals.rejected.insert(code.label(), count);
            }
        }
        if label.source.is_empty() && totals.received == 0 {
            continue;
        }
        out.insert(label.source, totals);
    }
    out
}

/// One sample.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was taken.
    pub at: SystemTime,
    /// Per source: (received, rejected) so far.
    pub sources: BTreeMap<String, (u64, u64)>,
    /// Per durable consumer: its lag.
    pub lags: BTreeMap<String, u64>,
}

/// The ring of samples, shared with the sampler task.
#[derive(Clone, Default)]
pub struct History {
    ring: Arc<Mutex<VecDeque<Sample>>>,
}

impl History {
    /// Takes a sample now and then every [`STEP`], until the service shuts down.
    pub fn spawn_sampler(&self, app: App) {
        let history = self.clone();
        tokio::spawn(async move {
            let mut shutdown = app.shutdown.clone();
            let mut tick = tokio::time::interval(STEP);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                let sample = sample(&app).await;
                history.push(sample);
            }
        });
    }

    fn push(&self, sample: Sample) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == SLOTS {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    /// The samples, oldest first, followed by one taken now (so plots reach the present).
    pub async fn with_now(&self, app: &App) -> Vec<Sample> {
        let mut samples: Vec<Sample> = {
            let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
            ring.iter().cloned().collect()
        };
        samples.push(sample(app).await);
        samples
    }
}

/// A sample of `app` now. Consumer lags are left out when the log cannot list them.
pub async fn sample(app: &App) -> Sample {
    let sources = totals(app)
        .into_iter()
        .map(|(name, t)| (name, (t.received, t.rejected_total())))
        .collect();
    let lags = match tributary_event_log::filtered::consumers(app.log.as_ref()).await {
        Ok(consumers) => consumers.into_iter().map(|c| (c.name, c.lag)).collect(),
        Err(_) => BTreeMap::new(),
    };
    Sample {
        at: SystemTime::now(),
        sources,
        lags,
    }
}

/// Seconds from `at` to `now` (negative: in the past), for plotting.
pub fn offset(at: SystemTime, now: SystemTime) -> f64 {
    match at.duration_since(now) {
        Ok(ahead) => ahead.as_secs_f64(),
        Err(behind) => -behind.duration().as_secs_f64(),
    }
}

/// Per source, webhooks per second between consecutive samples: (seconds before now, rate).
pub fn rates(samples: &[Sample]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let Some(now) = samples.last().map(|s| s.at) else {
        return out;
    };
    for pair in samples.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let seconds = after
            .at
            .duration_since(before.at)
            .unwrap_or_default()
            .as_secs_f64();
        if seconds <= 0.0 {
            continue;
        }
        for (source, (received, _)) in &after.sources {
            let previous = before.sources.get(source).map_or(0, |(r, _)| *r);
            let rate = received.saturating_sub(previous) as f64 / seconds;
            out.entry(source.clone())
                .or_default()
                .push((offset(after.at, now), rate));
        }
    }
    out
}

/// Per source, the share of webhooks rejected over the last `window` (None without traffic).
pub fn error_rates(samples: &[Sample], window: Duration) -> BTreeMap<String, Option<f64>> {
    error_rates_over(samples, window, MIN_REQUESTS)
}

/// Fewer webhooks than this in the window give no error rate: 5 failed tries just after a
/// restart are not a "100 %" alarm.
pub const MIN_REQUESTS: u64 = 20;

/// [`error_rates`] with `min` webhooks needed in the window for a rate.
fn error_rates_over(
    samples: &[Sample],
    window: Duration,
    min: u64,
) -> BTreeMap<String, Option<f64>> {
    let mut out = BTreeMap::new();
    let Some(last) = samples.last() else {
        return out;
    };
    let since = last
        .at
        .checked_sub(window)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let first = samples
        .iter()
        .find(|s| s.at >= since)
        .unwrap_or(&samples[0]);
    for (source, (received, rejected)) in &last.sources {
        let (r0, j0) = first.sources.get(source).copied().unwrap_or((0, 0));
        let received = received.saturating_sub(r0);
        let rejected = rejected.saturating_sub(j0);
        let rate = (received >= min.max(1)).then(|| rejected as f64 / received as f64);
        out.insert(source.clone(), rate);
    }
    out
}

/// Per consumer, its lag over time: (seconds before now, lag).
pub fn lags(samples: &[Sample]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let Some(now) = samples.last().map(|s| s.at) else {
        return out;
    };
    for sample in samples {
        for (name, lag) in &sample.lags {
            out.entry(name.clone())
                .or_default()
                .push((offset(sample.at, now), *lag as f64));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64, received: u64, rejected: u64) -> Sample {
        Sample {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(seconds),
            sources: BTreeMap::from([("arcadia".to_owned(), (received, rejected))]),
            lags: BTreeMap::from([("billing".to_owned(), received)]),
        }
    }

    #[test]
    fn rates_are_differences_over_time() {
        let samples = [at(100, 0, 0), at(110, 20, 0), at(120, 25, 5)];
        let rates = rates(&samples);
        assert_eq!(rates["arcadia"], vec![(-10.0, 2.0), (0.0, 0.5)]);
        let errors = error_rates(&samples, Duration::from_secs(300));
        assert_eq!(errors["arcadia"], Some(0.2));
        let few = [at(100, 0, 0), at(110, 5, 5)];
        let errors = error_rates(&few, Duration::from_secs(300));
        assert_eq!(errors["arcadia"], None, "5 webhooks are too few for a rate");
        assert_eq!(
            error_rates_over(&few, Duration::from_secs(300), 1)["arcadia"],
            Some(1.0)
        );
        let errors = error_rates(&samples, Duration::from_secs(5));
        assert_eq!(errors["arcadia"], None, "no webhook within the window");
        assert_eq!(
            lags(&samples)["billing"],
            vec![(-20.0, 0.0), (-10.0, 20.0), (0.0, 25.0)]
        );
    }
}
