//! Shadow rollout: a candidate version of a source's adapter runs beside the active one on a
//! copy of every webhook, and what it would have done is compared with what was done.
//!
//! The candidate is loaded like a reload loads (a private copy, the same trust checks) and
//! created with the source's configuration. Ingest hands each webhook and the active
//! adapter's outcome to a [`Tap`], which offers them to a bounded queue without waiting: a
//! full queue drops the copy and counts an overload. Workers run the candidate (on the copy's
//! task while its calls are short, else on the blocking pool) within its own time budget and
//! concurrency cap ([`ShadowConfig`]); a panic, a
//! time-out or an overload is counted, never answered to the provider, and its output is never
//! stored. Differences (event fields, dead letters, rejections, ignored items) are counted in
//! `tributary_adapter_shadow_differences_total{source,kind}` and the last few differing
//! webhooks are kept with a field-level diff ([`crate::diff`]), redacted.
//!
//! Promote swaps the candidate in as the source's adapter (a new instance, as a reload
//! creates); abort drops it.

mod compare;
pub mod config;
pub mod counters;
mod worker;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tributary_model::v1::{ShadowCount, ShadowDifference, ShadowStatus, WebhookRequest};
use tributary_plugin_host::{AdapterInstance, Plugin, library_files};

use super::Sources;
use crate::ingest::placement::Placement;

pub use compare::Outcome;
pub use config::ShadowConfig;

/// Why a shadow operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    #[error("no source named `{0}`")]
    UnknownSource(String),
    #[error("source `{0}` has no shadow running")]
    NotRunning(String),
    #[error("source `{0}` already shadows a candidate: abort or promote it first")]
    AlreadyRunning(String),
    #[error("no library in {dir} provides adapter `{adapter}` version `{version}`")]
    NoSuchVersion {
        dir: String,
        adapter: String,
        version: String,
    },
    #[error(
        "the candidate provides adapter `{candidate}`; source `{source_name}` uses `{adapter}`"
    )]
    OtherAdapter {
        candidate: String,
        source_name: String,
        adapter: String,
    },
    #[error("cannot load the candidate: {0}")]
    Load(String),
    #[error("cannot configure the candidate for source `{0}`: {1}")]
    Create(String, String),
}

/// The shadows running, by source.
#[derive(Default)]
pub struct Shadows {
    running: RwLock<HashMap<String, Arc<Shadow>>>,
    /// How many run: with none, ingest's check costs one atomic load, not the lock.
    count: AtomicUsize,
    config: ShadowConfig,
}

impl std::fmt::Debug for Shadows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shadows").finish_non_exhaustive()
    }
}

impl Shadows {
    /// No shadow yet; candidates will cost at most `config`.
    pub fn new(config: ShadowConfig) -> Self {
        Self {
            running: RwLock::default(),
            count: AtomicUsize::new(0),
            config,
        }
    }

    fn get(&self, source: &str) -> Option<Arc<Shadow>> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let running = self.running.read().unwrap_or_else(|p| p.into_inner());
        running.get(source).cloned()
    }
}

/// One candidate shadowing one source.
pub struct Shadow {
    source: String,
    candidate: Arc<AdapterInstance>,
    /// Where the candidate's calls run: on the copy's task while they are short, as the
    /// active adapter's do.
    placement: Arc<Placement>,
    started_at: SystemTime,
    queue: mpsc::Sender<worker::Copy>,
    stats: Arc<Mutex<Stats>>,
}

/// What a shadow has seen so far.
#[derive(Debug, Default)]
struct Stats {
    compared: u64,
    differed: u64,
    differences: BTreeMap<&'static str, u64>,
    failures: BTreeMap<&'static str, u64>,
    recent: VecDeque<ShadowDifference>,
    keep: usize,
}

impl Stats {
    fn fail(&mut self, source: &str, kind: &'static str) {
        *self.failures.entry(kind).or_default() += 1;
        counters::failure(source, kind);
    }
}

/// A webhook's copy on its way to the candidate, taken before the active adapter runs. Costs
/// one lookup when the source has no shadow.
pub struct Tap(Option<(Arc<Shadow>, Arc<super::Source>, WebhookRequest)>);

impl Tap {
    /// Copies `request` when its source (`active`, the version this request runs on) has a
    /// shadow running.
    pub fn new(sources: &Sources, active: &Arc<super::Source>, request: &WebhookRequest) -> Self {
        Tap(sources
            .shadows
            .get(&active.name)
            .map(|shadow| (shadow, Arc::clone(active), request.clone())))
    }

    /// Offers the copy and what the active adapter did (`active`, called only when a shadow
    /// runs; `None`: the adapter gave no answer, nothing to compare) to the candidate without
    /// waiting.
    pub fn offer(self, active: impl FnOnce() -> Option<Outcome>) {
        let Some((shadow, source, request)) = self.0 else {
            return;
        };
        let Some(active) = active() else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = shadow.queue.try_send(worker::Copy {
            request,
            source,
            active,
        }) {
            let mut stats = shadow.stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.fail(&shadow.source, "overload");
        }
    }
}

impl Sources {
    /// Loads `candidate` (a library file, or a version of the source's adapter in the plugin
    /// directory) and starts shadowing `source` with it. Call from inside the runtime.
    pub fn start_shadow(&self, source: &str, candidate: &str) -> Result<ShadowStatus, ShadowError> {
        let active = self
            .get(source)
            .ok_or_else(|| ShadowError::UnknownSource(source.to_owned()))?;
        if self.shadows.get(source).is_some() {
            return Err(ShadowError::AlreadyRunning(source.to_owned()));
        }
        let adapter = active.adapter.plugin().info().name.clone();
        let plugin = self.candidate_plugin(&adapter, candidate)?;
        if plugin.info().name != adapter {
            return Err(ShadowError::OtherAdapter {
                candidate: plugin.info().name.clone(),
                source_name: source.to_owned(),
                adapter,
            });
        }
        let config = self.source_config(source);
        let instance = self
            .instance(source, &config, &plugin)
            .map_err(|error| ShadowError::Create(source.to_owned(), format!("{error:#}")))?;
        let instance = instance.with_max_in_flight(self.shadows.config.max_calls_in_flight);
        let config = &self.shadows.config;
        let (queue, receiver) = mpsc::channel(config.queue.max(1));
        let shadow = Arc::new(Shadow {
            source: source.to_owned(),
            candidate: Arc::new(instance),
            placement: Arc::new(Placement::new(self.setup.inline_call_limit, source)),
            started_at: SystemTime::now(),
            queue,
            stats: Arc::new(Mutex::new(Stats {
                keep: config.keep,
                ..Stats::default()
            })),
        });
        {
            let mut running = self
                .shadows
                .running
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if running.contains_key(source) {
                return Err(ShadowError::AlreadyRunning(source.to_owned()));
            }
            running.insert(source.to_owned(), Arc::clone(&shadow));
            self.shadows.count.store(running.len(), Ordering::Release);
        }
        worker::spawn(
            Arc::clone(&shadow),
            receiver,
            worker::Limits {
                budget: Duration::from_millis(config.call_timeout_ms.max(1)),
                cap: config.max_calls_in_flight.max(1),
            },
        );
        tracing::info!(
            source,
            candidate = %plugin.info().version,
            file = %plugin.file().display(),
            "shadow started"
        );
        Ok(self.status_of(&shadow))
    }

    /// The shadow of `source`: counts and the last differing webhooks.
    pub fn shadow_status(&self, source: &str) -> Result<ShadowStatus, ShadowError> {
        let shadow = self.running_shadow(source)?;
        Ok(self.status_of(&shadow))
    }

    /// Every shadow running, by source name.
    pub fn shadow_statuses(&self) -> Vec<ShadowStatus> {
        let mut shadows: Vec<Arc<Shadow>> = {
            let running = self
                .shadows
                .running
                .read()
                .unwrap_or_else(|p| p.into_inner());
            running.values().cloned().collect()
        };
        shadows.sort_by(|a, b| a.source.cmp(&b.source));
        shadows.iter().map(|s| self.status_of(s)).collect()
    }

    /// Ends the shadow of `source`, dropping the candidate. Webhooks still queued for it are
    /// not compared.
    pub fn abort_shadow(&self, source: &str) -> Result<ShadowStatus, ShadowError> {
        let shadow = self.end_shadow(source)?;
        tracing::info!(source, "shadow aborted");
        Ok(ShadowStatus {
            ended: true,
            ..self.status_of(&shadow)
        })
    }

    /// Swaps the candidate in as `source`'s adapter, as a reload swaps a rebuilt library in,
    /// and ends the shadow. The source keeps this version across reloads until a new library
    /// of its adapter is loaded from the plugin directory.
    pub fn promote_shadow(&self, source: &str) -> Result<ShadowStatus, ShadowError> {
        let shadow = self.running_shadow(source)?;
        let plugin = Arc::clone(shadow.candidate.plugin());
        let status = self.status_of(&shadow);
        self.pin(source, plugin)
            .map_err(|error| ShadowError::Create(source.to_owned(), format!("{error:#}")))?;
        self.end_shadow(source)?;
        tracing::info!(
            source,
            version = %status.candidate_version,
            "shadow promoted: the candidate serves the source"
        );
        Ok(ShadowStatus {
            ended: true,
            ..status
        })
    }

    fn running_shadow(&self, source: &str) -> Result<Arc<Shadow>, ShadowError> {
        self.shadows
            .get(source)
            .ok_or_else(|| ShadowError::NotRunning(source.to_owned()))
    }

    fn end_shadow(&self, source: &str) -> Result<Arc<Shadow>, ShadowError> {
        let mut running = self
            .shadows
            .running
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let ended = running
            .remove(source)
            .ok_or_else(|| ShadowError::NotRunning(source.to_owned()));
        self.shadows.count.store(running.len(), Ordering::Release);
        ended
    }

    /// The candidate's plugin: `candidate` is a library file when it names one, else a
    /// version of `adapter` provided by a library in the plugin directory.
    fn candidate_plugin(&self, adapter: &str, candidate: &str) -> Result<Arc<Plugin>, ShadowError> {
        let path = Path::new(candidate);
        if candidate.contains('/') || path.exists() {
            return Plugin::load_copy(path, &self.setup.copies)
                .map_err(|error| ShadowError::Load(error.to_string()));
        }
        let dir = &self.setup.dir;
        let files = library_files(dir).map_err(|error| ShadowError::Load(error.to_string()))?;
        files
            .iter()
            .filter_map(|file: &PathBuf| Plugin::load_copy(file, &self.setup.copies).ok())
            .find(|plugin| plugin.info().name == adapter && plugin.info().version == candidate)
            .ok_or_else(|| ShadowError::NoSuchVersion {
                dir: dir.display().to_string(),
                adapter: adapter.to_owned(),
                version: candidate.to_owned(),
            })
    }

    fn status_of(&self, shadow: &Shadow) -> ShadowStatus {
        let (adapter, active_version) = self
            .get(&shadow.source)
            .map(|s| {
                let info = s.adapter.plugin().info();
                (info.name.clone(), info.version.clone())
            })
            .unwrap_or_default();
        let candidate = shadow.candidate.plugin();
        let stats = shadow.stats.lock().unwrap_or_else(|p| p.into_inner());
        let counts = |map: &BTreeMap<&'static str, u64>| {
            map.iter()
                .map(|(kind, count)| ShadowCount {
                    kind: (*kind).to_owned(),
                    count: *count,
                })
                .collect()
        };
        ShadowStatus {
            source: shadow.source.clone(),
            adapter,
            active_version,
            candidate_version: candidate.info().version.clone(),
            candidate_file: candidate.file().display().to_string(),
            started_at: Some(tributary_event_log::rules::timestamp(shadow.started_at)),
            compared: stats.compared,
            differed: stats.differed,
            differences: counts(&stats.differences),
            failures: counts(&stats.failures),
            recent: stats.recent.iter().cloned().collect(),
            ended: false,
        }
    }
}
