//! Where a webhook's adapter call runs. A hop to the blocking pool and back costs two thread
//! wake-ups per webhook, more than a typical adapter call itself (tens of microseconds), so a
//! source whose calls are known to be short runs them on the request's own worker.
//!
//! A call is short while it stays under the source's inline limit (`[plugins]
//! inline_call_max_us`). One call over it, measured on return or seen by the [`watchdog`]
//! while it still runs on a worker, sends the source's calls to the blocking pool for
//! [`DEMOTION`]; calls there that stay slow keep it there. So a hung adapter holds at most the
//! workers that were already inside it when it hung, and then only pool threads, which the
//! in-flight cap bounds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a source's calls stay on the blocking pool after one was slow.
pub const DEMOTION: Duration = Duration::from_secs(30);
/// How often the watchdog looks at the calls running on workers.
const WATCH_PERIOD: Duration = Duration::from_millis(20);

/// One source's call placement.
#[derive(Debug)]
pub struct Placement {
    /// Calls up to this long may run on a worker; zero: never.
    limit: Duration,
    /// Until when calls go to the blocking pool, in ms since [`epoch`]; 0 when not demoted.
    demoted_until_ms: AtomicU64,
}

impl Placement {
    /// Calls up to `limit` may run inline; `Duration::ZERO` keeps every call on the pool.
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            demoted_until_ms: AtomicU64::new(0),
        }
    }

    /// Whether the next call may run on the caller's worker.
    pub fn inline(&self) -> bool {
        !self.limit.is_zero() && self.demoted_until_ms.load(Ordering::Relaxed) <= now_ms()
    }

    /// Records a finished call (inline or pooled) that took `took`.
    pub fn observe(&self, took: Duration) {
        if took > self.limit {
            self.demote();
        }
    }

    fn demote(&self) {
        let until = now_ms() + DEMOTION.as_millis() as u64;
        self.demoted_until_ms.fetch_max(until, Ordering::Relaxed);
    }
}

/// Milliseconds since the first call (a monotonic clock; 0 is never a demotion deadline
/// in the future).
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Runs `call` on the current thread while the watchdog watches it; the watchdog demotes
/// `placement` if the call is still running past its limit.
pub fn run_watched<T>(placement: &Arc<Placement>, source: &str, call: impl FnOnce() -> T) -> T {
    let id = watchdog().start(placement, source);
    let started = Instant::now();
    let result = call();
    watchdog().finish(id);
    placement.observe(started.elapsed());
    result
}

/// The calls running on workers, checked every [`WATCH_PERIOD`] by one thread.
struct Watchdog {
    running: Mutex<HashMap<u64, Running>>,
    next_id: AtomicU64,
}

struct Running {
    placement: Arc<Placement>,
    source: String,
    started: Instant,
    flagged: bool,
}

fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("adapter-watchdog".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(WATCH_PERIOD);
                    watchdog().check();
                }
            });
        if let Err(error) = spawned {
            // Without it a hung inline call is noticed only when it returns.
            tracing::error!(%error, "cannot start the adapter watchdog thread");
        }
        Watchdog {
            running: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    })
}

impl Watchdog {
    fn start(&self, placement: &Arc<Placement>, source: &str) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut running) = self.running.lock() {
            running.insert(
                id,
                Running {
                    placement: Arc::clone(placement),
                    source: source.to_owned(),
                    started: Instant::now(),
                    flagged: false,
                },
            );
        }
        id
    }

    fn finish(&self, id: u64) {
        if let Ok(mut running) = self.running.lock() {
            running.remove(&id);
        }
    }

    /// Demotes the placement of every call running past its limit (once per call).
    fn check(&self) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        for call in running.values_mut() {
            let took = call.started.elapsed();
            if !call.flagged && took > call.placement.limit {
                call.flagged = true;
                call.placement.demote();
                tracing::warn!(
                    source = %call.source,
                    running_ms = took.as_millis() as u64,
                    "an adapter call is still running on a request worker past the inline \
                     limit; the source's calls run on the blocking pool for the next {}s",
                    DEMOTION.as_secs()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_call_demotes_and_a_zero_limit_never_inlines() {
        let placement = Arc::new(Placement::new(Duration::from_millis(1)));
        assert!(placement.inline());
        placement.observe(Duration::from_micros(900));
        assert!(placement.inline());
        placement.observe(Duration::from_millis(2));
        assert!(!placement.inline());
        assert!(!Placement::new(Duration::ZERO).inline());
    }

    #[test]
    fn the_watchdog_demotes_a_call_still_running() {
        let placement = Arc::new(Placement::new(Duration::from_millis(1)));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let watched = Arc::clone(&placement);
        let call = std::thread::spawn(move || {
            run_watched(&watched, "acme", || wait.recv().is_ok());
        });
        // The call runs until released: only the watchdog can see it overrun.
        let deadline = Instant::now() + Duration::from_secs(10);
        while placement.inline() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !placement.inline(),
            "the watchdog did not demote a running call"
        );
        release.send(()).expect("the call waits");
        call.join().expect("the call returns");
    }
}
