//! Hot reload: rescan the plugin directory, load new or changed libraries (each from a private
//! copy), rebuild the sources whose adapter changed, and swap the snapshot in one step.
//!
//! A library that fails to load, or an adapter that refuses its configuration, leaves the
//! previous version serving; the failure is logged and kept for [`Sources::load_failures`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use sha2::{Digest, Sha256};
use tributary_plugin_host::{Plugin, library_files, watch::watch_dir};

use super::{Snapshot, Sources};
use crate::config::SourceConfig;

/// Quiet time after the last change in the plugin directory before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// What the reloader remembers between rounds.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Per library file: what [`fingerprint`] saw when it was last tried.
    tried: HashMap<PathBuf, Fingerprint>,
    /// Per library file: the error its latest version gave.
    failed: BTreeMap<PathBuf, String>,
    /// Per source: a promoted shadow candidate serving it instead of its adapter's library in
    /// the plugin directory, until a new library of that adapter is loaded.
    pinned: HashMap<String, Arc<Plugin>>,
}

impl State {
    pub(super) fn failures(&self) -> Vec<String> {
        self.failed.values().cloned().collect()
    }
}

/// What one reload did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// Libraries newly loaded, as "name version (file)".
    pub loaded: Vec<String>,
    /// Libraries that failed to load and sources that could not be rebuilt. The previous
    /// version of each keeps serving.
    pub failed: Vec<String>,
    /// Sources now served by a new adapter version (or new sources).
    pub swapped: Vec<String>,
}

/// Length, modification time, and mode, owner and change time: an operator fixing a refused
/// file's permissions (which changes neither length nor mtime) gets it retried.
type Fingerprint = (u64, Option<SystemTime>, u32, u32, i64);

fn fingerprint(file: &Path) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(file)
        .map(|m| (m.len(), m.modified().ok(), m.mode(), m.uid(), m.ctime()))
        .unwrap_or_default()
}

fn sha256_of(file: &Path) -> Option<String> {
    std::fs::read(file)
        .ok()
        .map(|bytes| hex::encode(Sha256::digest(&bytes)))
}

impl Sources {
    /// Rescans the plugin directory and swaps in new or rebuilt libraries without a restart.
    /// In-flight requests finish on the version they started with. Never fails: what could not
    /// be loaded is in the report (and the log), and its previous version keeps serving.
    pub fn reload(&self) -> ReloadReport {
        self.refresh(false).unwrap_or_else(|error| ReloadReport {
            failed: vec![format!("{error:#}")],
            ..ReloadReport::default()
        })
    }

    /// One round of loading. At start-up (`startup`), a source that cannot be created is fatal.
    pub(super) fn refresh(&self, startup: bool) -> anyhow::Result<ReloadReport> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let dir = &self.setup.dir;
        let old = self.snapshot();
        let mut report = ReloadReport::default();
        let files = library_files(dir)?;
        state.tried.retain(|file, _| files.contains(file));
        state.failed.retain(|file, _| files.contains(file));

        let mut plugins = old.plugins.clone();
        let mut fresh = HashSet::new();
        for file in files {
            let print = fingerprint(&file);
            if state.tried.get(&file) == Some(&print) {
                continue;
            }
            state.tried.insert(file.clone(), print);
            let serving = plugins.values().find(|p| p.file() == file);
            if let Some(serving) = serving
                && sha256_of(&file).as_deref() == Some(serving.sha256())
            {
                continue;
            }
            let plugin = match Plugin::load_copy(&file, &self.setup.copies) {
                Ok(plugin) => plugin,
                Err(error) => {
                    if startup {
                        tracing::error!(%error, "plugin not loaded");
                    } else {
                        tracing::error!(%error, "plugin not reloaded; the previous version keeps serving");
                    }
                    report.failed.push(error.to_string());
                    state.failed.insert(file, error.to_string());
                    continue;
                }
            };
            state.failed.remove(&file);
            let name = plugin.info().name.clone();
            if let Some(serving) = old.plugins.get(&name)
                && serving.file() != file
                && !startup
            {
                // A new library cannot take over a running adapter (and its sources' secrets):
                // that takes a restart, i.e. an operator's decision.
                let error = format!(
                    "{} claims adapter `{name}`, which {} serves; moving an adapter to another library needs a restart",
                    file.display(),
                    serving.file().display()
                );
                tracing::error!("{error}");
                report.failed.push(error.clone());
                state.failed.insert(file, error);
                continue;
            }
            if !fresh.insert(name.clone()) {
                let kept = plugins.get(&name).map(|p| p.file().display().to_string());
                tracing::warn!(
                    adapter = %name,
                    kept = kept.unwrap_or_default(),
                    ignored = %file.display(),
                    "two libraries provide the same adapter; keeping the first"
                );
                continue;
            }
            tracing::info!(
                adapter = %name,
                version = %plugin.info().version,
                file = %file.display(),
                sha256 = %plugin.sha256(),
                "plugin loaded"
            );
            report.loaded.push(format!(
                "{name} {} ({})",
                plugin.info().version,
                file.display()
            ));
            plugins.insert(name, plugin);
        }

        state
            .pinned
            .retain(|_, plugin| !fresh.contains(&plugin.info().name));
        let by_name = self.rebuild_sources(&old, &plugins, &state.pinned, startup, &mut report)?;
        let next = Arc::new(Snapshot { by_name, plugins });
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        let changed = !report.loaded.is_empty() || !report.failed.is_empty();
        if !startup && changed {
            tracing::info!(
                loaded = report.loaded.len(),
                failed = report.failed.len(),
                swapped = ?report.swapped,
                "plugins reloaded"
            );
        }
        Ok(report)
    }

    /// The sources for `plugins`: unchanged ones are kept as they are (same `Arc`).
    fn rebuild_sources(
        &self,
        old: &Snapshot,
        plugins: &BTreeMap<String, Arc<Plugin>>,
        pinned: &HashMap<String, Arc<Plugin>>,
        startup: bool,
        report: &mut ReloadReport,
    ) -> anyhow::Result<HashMap<String, Arc<super::Source>>> {
        let configured: BTreeMap<String, SourceConfig> = if self.setup.configured.is_empty() {
            plugins
                .keys()
                .map(|name| {
                    let source = SourceConfig {
                        adapter: name.clone(),
                        config: toml::Table::new(),
                        content_types: None,
                        expect: crate::health::Expect::default(),
                    };
                    (name.clone(), source)
                })
                .collect()
        } else {
            self.setup.configured.clone()
        };

        let mut by_name = HashMap::new();
        for (name, source) in configured {
            // Also checked when the config is read; here for sources named after adapters.
            if let Err(error) = tributary_event_log::SourceName::new(&name) {
                if startup {
                    bail!("source `{name}`: {error}");
                }
                report.failed.push(format!("source `{name}`: {error}"));
                continue;
            }
            let previous = old.by_name.get(&name);
            let Some(plugin) = pinned.get(&name).or_else(|| plugins.get(&source.adapter)) else {
                if startup {
                    let mut loaded: Vec<&str> = plugins.keys().map(String::as_str).collect();
                    loaded.sort_unstable();
                    let loaded = if loaded.is_empty() {
                        "none".to_owned()
                    } else {
                        loaded.join(", ")
                    };
                    bail!(
                        "source `{name}` uses adapter `{}`, which is not loaded from {} \
                         (loaded: {loaded}); fix [sources.{name}] adapter, or put its library \
                         in plugins.dir",
                        source.adapter,
                        self.setup.dir.display()
                    );
                }
                continue;
            };
            if let Some(previous) = previous
                && Arc::ptr_eq(previous.adapter.plugin(), plugin)
            {
                by_name.insert(name, Arc::clone(previous));
                continue;
            }
            match self.create(&name, &source, plugin) {
                Ok(created) => {
                    report.swapped.push(name.clone());
                    by_name.insert(name, Arc::new(created));
                }
                Err(error) if startup => return Err(error),
                Err(error) => {
                    tracing::error!(source = %name, error = %format!("{error:#}"), "source not swapped; the previous version keeps serving");
                    report.failed.push(format!("{error:#}"));
                    if let Some(previous) = previous {
                        by_name.insert(name, Arc::clone(previous));
                    }
                }
            }
        }
        Ok(by_name)
    }
}

impl Sources {
    /// Makes `plugin` (a promoted shadow candidate) serve source `name`: a new instance,
    /// swapped in as a reload swaps one; in-flight requests finish on the version they started
    /// with. Later reloads keep it until a new library of its adapter is loaded.
    pub(super) fn pin(&self, name: &str, plugin: Arc<Plugin>) -> anyhow::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot();
        let config = self.source_config(name);
        let source = self.create(name, &config, &plugin)?;
        let mut by_name = old.by_name.clone();
        by_name.insert(name.to_owned(), Arc::new(source));
        state.pinned.insert(name.to_owned(), plugin);
        let next = Arc::new(Snapshot {
            by_name,
            plugins: old.plugins.clone(),
        });
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }
}

/// Reloads `sources` when the plugin directory changes (debounced) and on SIGHUP, when
/// `hot_reload` is on. Call once from inside the runtime; the task runs for the life of the
/// process. SIGHUP is handled either way (its default action would end the process).
pub fn watch(sources: Arc<Sources>, hot_reload: bool) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    if !hot_reload {
        tracing::info!(
            "plugins.hot_reload = false: plugins load at start-up and on ReloadAdapters only"
        );
        return tokio::spawn(async move {
            let Ok(mut hangup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP: plugins not reloaded (plugins.hot_reload = false)");
            }
        });
    }
    let dir = sources.plugin_dir().to_path_buf();
    let on_change = {
        let sources = Arc::clone(&sources);
        move || {
            tracing::info!("plugin directory changed; reloading");
            sources.reload();
        }
    };
    let watcher = match watch_dir(&dir, DEBOUNCE, on_change) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(%error, dir = %dir.display(), "cannot watch the plugin directory; reload with SIGHUP");
            None
        }
    };
    tokio::spawn(async move {
        let _watcher = watcher;
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP");
            std::future::pending::<()>().await;
            return;
        };
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading plugins");
            let sources = Arc::clone(&sources);
            let _ = tokio::task::spawn_blocking(move || sources.reload()).await;
        }
    })
}
