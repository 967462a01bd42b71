//! Where a webhook's adapter call runs. A hop to the blocking pool and back costs two thread
//! wake-ups per webhook, more than a typical adapter call itself (tens of microseconds), so a
//! source whose calls are known to be short runs them on the request's own worker.
//!
//! A call is short while the CPU time it takes stays under the source's inline limit
//! (`[plugins] inline_call_max_us`): CPU time, not wall time, so a call preempted on a busy
//! machine does not count as slow. [`SLOW_STREAK`] calls over it in a row (one alone may be a
//! cold start: an adapter's first call touches fresh memory and initialises what it caches),
//! or one call the watchdog sees holding a worker for [`HOLD_LIMIT`] (blocked or hung: wall
//! time), send the source's calls to the blocking pool for [`DEMOTION`]; calls there that stay
//! slow keep it there. And however many sources call at once, inline calls hold at most all
//! the runtime's workers but one ([`Placement::claim`]): a hung adapter can hold that many
//! workers before the watchdog sees it, never every one, and then only pool threads, which the
//! in-flight cap bounds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a source's calls stay on the blocking pool after one was slow.
pub const DEMOTION: Duration = Duration::from_secs(30);
/// Longest an inline call may hold a worker, by the wall clock, before the watchdog demotes
/// its source.
pub const HOLD_LIMIT: Duration = Duration::from_millis(50);
/// Calls over the CPU limit in a row that demote a source.
pub const SLOW_STREAK: u32 = 2;
/// How often the watchdog looks at the calls running on workers.
const WATCH_PERIOD: Duration = Duration::from_millis(20);

/// One source's call placement.
#[derive(Debug)]
pub struct Placement {
    /// The source's name, for the watchdog's warning.
    source: String,
    /// Calls taking up to this much CPU time may run on a worker; zero: never.
    limit: Duration,
    /// Until when calls go to the blocking pool, in [`now_ms`] milliseconds; 0 when not
    /// demoted.
    demoted_until_ms: AtomicU64,
    /// Calls over the limit in a row, the latest included.
    slow_in_a_row: AtomicU32,
}

impl Placement {
    /// Calls of `source` taking up to `limit` of CPU time may run inline; `Duration::ZERO`
    /// keeps every call on the pool.
    pub fn new(limit: Duration, source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            limit,
            demoted_until_ms: AtomicU64::new(0),
            slow_in_a_row: AtomicU32::new(0),
        }
    }

    /// A place for the next call on the caller's worker, when this source's calls are short
    /// and fewer inline calls run than the runtime has workers but one; `None`: use the pool.
    pub fn claim(&self) -> Option<Slot> {
        self.claim_in(&INLINE_RUNNING, inline_slots())
    }

    /// [`Self::claim`] among `slots` places counted in `running`.
    fn claim_in(&self, running: &'static AtomicUsize, slots: usize) -> Option<Slot> {
        if !self.inline() {
            return None;
        }
        // Lazily: a `Slot` made and dropped when none was taken would give back a place.
        take_slot(running, slots).then(|| Slot { running })
    }

    /// Whether this source's calls may run on a worker (its policy alone, whatever else runs).
    pub fn inline(&self) -> bool {
        !self.limit.is_zero() && self.demoted_until_ms.load(Ordering::Relaxed) <= now_ms()
    }

    /// Runs `call` on the current thread (a worker's or a pool thread) and judges it by the
    /// CPU time it took.
    pub fn timed<T>(&self, call: impl FnOnce() -> T) -> T {
        let cpu = thread_cpu_time();
        let result = call();
        self.observe(thread_cpu_time().saturating_sub(cpu));
        result
    }

    /// Records a finished call that ran `cpu` on its thread.
    fn observe(&self, cpu: Duration) {
        if cpu <= self.limit {
            self.slow_in_a_row.store(0, Ordering::Relaxed);
        } else if self.slow_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= SLOW_STREAK {
            self.demote();
        }
    }

    fn demote(&self) {
        let until = now_ms() + DEMOTION.as_millis() as u64;
        self.demoted_until_ms.fetch_max(until, Ordering::Relaxed);
    }
}

/// Inline calls running now, across sources.
static INLINE_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Inline calls that may run at once: the runtime's workers but one (none on a runtime of
/// one worker).
fn inline_slots() -> usize {
    static SLOTS: OnceLock<usize> = OnceLock::new();
    *SLOTS.get_or_init(|| {
        tokio::runtime::Handle::try_current()
            .map(|runtime| runtime.metrics().num_workers())
            .unwrap_or(1)
            .saturating_sub(1)
    })
}

/// Counts one more call in `running` unless `slots` already run.
fn take_slot(running: &AtomicUsize, slots: usize) -> bool {
    running
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            (now < slots).then(|| now + 1)
        })
        .is_ok()
}

/// One inline call's place, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    running: &'static AtomicUsize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Milliseconds since the first call (a monotonic clock; 0 is never a demotion deadline
/// in the future).
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// The CPU time the current thread has used so far.
fn thread_cpu_time() -> Duration {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}

/// Runs `call` on the current thread in `slot` while the watchdog watches it, then judges it
/// by the CPU time it took.
pub fn run_watched<T>(slot: Slot, placement: &Arc<Placement>, call: impl FnOnce() -> T) -> T {
    let id = watchdog().start(placement);
    let result = placement.timed(call);
    watchdog().finish(id);
    drop(slot);
    result
}

/// [`run_watched`] within `budget` by the wall clock: `None` when the call took longer, so
/// its result is dropped, as a pooled call's past its budget is.
pub fn run_within<T>(
    slot: Slot,
    placement: &Arc<Placement>,
    budget: Duration,
    call: impl FnOnce() -> T,
) -> Option<T> {
    let started = Instant::now();
    let result = run_watched(slot, placement, call);
    (started.elapsed() <= budget).then_some(result)
}

/// The calls running on workers, checked every [`WATCH_PERIOD`] by one thread.
struct Watchdog {
    running: Mutex<HashMap<u64, Running>>,
    next_id: AtomicU64,
}

struct Running {
    placement: Arc<Placement>,
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
    /// The running calls (a panic elsewhere while the lock was held leaves the map as it was).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self, placement: &Arc<Placement>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut running = self.lock();
            running.insert(
                id,
                Running {
                    placement: Arc::clone(placement),
                    started: Instant::now(),
                    flagged: false,
                },
            );
        }
        id
    }

    fn finish(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Demotes the placement of every call holding its worker past [`HOLD_LIMIT`] (once per
    /// call).
    fn check(&self) {
        for call in self.lock().values_mut() {
            let took = call.started.elapsed();
            if !call.flagged && took > HOLD_LIMIT {
                call.flagged = true;
                call.placement.demote();
                tracing::warn!(
                    source = %call.placement.source,
                    running_ms = took.as_millis() as u64,
                    "an adapter call has held a request worker for over {} ms; the source's \
                     calls run on the blocking pool for the next {} s",
                    HOLD_LIMIT.as_millis(),
                    DEMOTION.as_secs()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot of a counter of its own.
    fn test_slot() -> Slot {
        Slot {
            running: Box::leak(Box::new(AtomicUsize::new(1))),
        }
    }

    #[test]
    fn inline_calls_take_at_most_their_slots() {
        let running: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let placement = Placement::new(Duration::from_millis(1), "acme");
        let first = placement.claim_in(running, 2).expect("a first slot");
        let second = placement.claim_in(running, 2).expect("a second slot");
        assert!(
            placement.claim_in(running, 2).is_none(),
            "a third call goes to the pool"
        );
        assert_eq!(
            running.load(Ordering::Acquire),
            2,
            "a refused claim gives nothing back"
        );
        drop(first);
        let third = placement.claim_in(running, 2).expect("a slot given back");
        drop((second, third));
        assert_eq!(running.load(Ordering::Acquire), 0);
        let none: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        assert!(
            placement.claim_in(none, 0).is_none(),
            "one worker: never inline"
        );
    }

    #[test]
    fn the_runtime_keeps_one_worker_free() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(3)
            .build()
            .expect("runtime");
        let slots = runtime.block_on(async { inline_slots() });
        assert_eq!(slots, 2);
    }

    #[test]
    fn slow_calls_in_a_row_demote_and_a_zero_limit_never_inlines() {
        let placement = Arc::new(Placement::new(Duration::from_millis(1), "acme"));
        assert!(placement.inline());
        placement.observe(Duration::from_micros(900));
        assert!(placement.inline());
        // One slow call may be a cold start; a second in a row demotes.
        placement.observe(Duration::from_millis(2));
        assert!(placement.inline());
        placement.observe(Duration::from_micros(900));
        placement.observe(Duration::from_millis(2));
        assert!(placement.inline());
        placement.observe(Duration::from_millis(2));
        assert!(!placement.inline());
        assert!(!Placement::new(Duration::ZERO, "acme").inline());
    }

    #[test]
    fn a_call_is_judged_by_its_cpu_time() {
        let placement = Arc::new(Placement::new(Duration::from_millis(5), "acme"));
        // Asleep, not running: a long wait on the wall clock, almost no CPU time.
        run_watched(test_slot(), &placement, || {
            std::thread::sleep(Duration::from_millis(20))
        });
        assert!(placement.inline());
        // Busy for longer than the limit, twice in a row.
        for _ in 0..SLOW_STREAK {
            run_watched(test_slot(), &placement, || {
                let started = thread_cpu_time();
                while thread_cpu_time().saturating_sub(started) < Duration::from_millis(10) {
                    std::hint::black_box(0u64);
                }
            });
        }
        assert!(!placement.inline());
    }

    #[test]
    fn the_watchdog_demotes_a_call_still_running() {
        let placement = Arc::new(Placement::new(Duration::from_millis(1), "acme"));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let watched = Arc::clone(&placement);
        let call = std::thread::spawn(move || {
            run_watched(test_slot(), &watched, || wait.recv().is_ok());
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
