//! Sources: configured instances of adapters. `POST /webhooks/{source}` picks one by name.
//!
//! The set of sources is an immutable snapshot behind a lock held only to clone an `Arc`. A
//! request takes its [`Source`] (an `Arc`) once and keeps it to the end, so a hot reload
//! ([`Sources::reload`]) swaps the snapshot atomically while in-flight requests finish on the
//! version they started with. Libraries are never unloaded: an old version simply stops being
//! handed out.

mod reload;
pub mod shadow;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use tributary_plugin_host::{AdapterInstance, Plugin};

use crate::config::{Config, SourceConfig};
use crate::files::write_private;
use crate::ingest::media_type::AllowedMediaTypes;
use crate::ingest::placement::Placement;

pub use reload::{ReloadReport, watch};

/// One source: its name and its adapter instance.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub adapter: AdapterInstance,
    /// The strings of its config long enough to be secrets: the raw archive withholds headers
    /// and query parameters that carry one.
    pub secrets: Vec<String>,
    /// The `content_types` allow-list; `None`: any `Content-Type`, or none, is accepted.
    pub content_types: Option<AllowedMediaTypes>,
    /// Whether its adapter calls run on the request's worker or on the blocking pool.
    pub placement: Arc<Placement>,
}

/// One consistent version of the loaded plugins and the sources built on them.
#[derive(Debug, Default)]
struct Snapshot {
    by_name: HashMap<String, Arc<Source>>,
    /// By adapter name: the version currently serving.
    plugins: BTreeMap<String, Arc<Plugin>>,
}

/// Where plugins come from and how sources are configured; fixed for the process.
#[derive(Debug, Default)]
struct Setup {
    dir: PathBuf,
    /// Private copies of the libraries actually loaded (see `Plugin::load_copy`).
    copies: PathBuf,
    /// Configured sources; empty = one source per loaded adapter, named after it.
    configured: BTreeMap<String, SourceConfig>,
    installation_key: String,
    /// Calls each adapter instance may run at once.
    max_calls_in_flight: usize,
    /// Calls up to this long may run on a request's worker.
    inline_call_limit: Duration,
}

/// The loaded plugins and the sources built on them; reloadable while serving.
#[derive(Debug, Default)]
pub struct Sources {
    current: RwLock<Arc<Snapshot>>,
    setup: Setup,
    /// Serialises reloads (watcher, SIGHUP, admin RPC) and remembers, per library file, the
    /// checksum last tried and the error it gave, so an unchanged file is not reloaded.
    state: Mutex<reload::State>,
    /// Candidate adapters shadowing sources.
    shadows: shadow::Shadows,
}

impl Sources {
    /// Loads every plugin in the plugin directory and creates the configured sources (or one
    /// source per adapter when none is configured). A library that fails to load is logged and
    /// skipped; a source that cannot be created stops start-up with the reason.
    pub fn load(config: &Config, installation_key: &str) -> anyhow::Result<Self> {
        let dir = config.plugin_dir()?;
        if !dir.is_dir() {
            anyhow::bail!(
                "the plugin directory {} is not a directory (plugins.dir, --plugin-dir or \
                 TRIBUTARY_PLUGIN_DIR): point it at the directory of the adapter libraries \
                 (libtributary_adapter_*.so)",
                dir.display()
            );
        }
        let sources = Sources {
            current: RwLock::default(),
            setup: Setup {
                copies: config.log.data_dir.join("plugin-cache"),
                dir,
                configured: config.sources.clone(),
                installation_key: installation_key.to_owned(),
                max_calls_in_flight: config.plugins.max_calls_in_flight.max(1),
                inline_call_limit: Duration::from_micros(config.plugins.inline_call_max_us),
            },
            state: Mutex::default(),
            shadows: shadow::Shadows::new(config.shadow.clone()),
        };
        sources.refresh(true)?;
        Ok(sources)
    }

    /// The current snapshot.
    fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The source called `name`, in its current version. Keep the `Arc` for the whole request.
    pub fn get(&self, name: &str) -> Option<Arc<Source>> {
        self.snapshot().by_name.get(name).cloned()
    }

    /// The source a dry run names: the source called `name`, else the one source served by the
    /// adapter called `name` (`tributary adapter try klavi ...`). The error says what exists.
    pub fn for_dry_run(&self, name: &str) -> Result<Arc<Source>, String> {
        if let Some(source) = self.get(name) {
            return Ok(source);
        }
        let all = self.all();
        let served: Vec<&Arc<Source>> = all
            .iter()
            .filter(|source| source.adapter.plugin().info().name == name)
            .collect();
        match served.as_slice() {
            [one] => Ok(Arc::clone(one)),
            [] => {
                let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
                Err(format!(
                    "no source or adapter named `{name}` (sources: {})",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ))
            }
            several => {
                let names: Vec<&str> = several.iter().map(|s| s.name.as_str()).collect();
                Err(format!(
                    "no source named `{name}`; adapter `{name}` serves the sources {}: name one",
                    names.join(", ")
                ))
            }
        }
    }

    /// All sources, sorted by name.
    pub fn all(&self) -> Vec<Arc<Source>> {
        let mut all: Vec<_> = self.snapshot().by_name.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The plugins currently serving, one per adapter name, sorted by name.
    pub fn plugins(&self) -> Vec<Arc<Plugin>> {
        self.snapshot().plugins.values().cloned().collect()
    }

    /// The plugin directory watched for new or rebuilt libraries.
    pub fn plugin_dir(&self) -> &Path {
        &self.setup.dir
    }

    /// Libraries in the plugin directory whose latest version failed to load, with the error.
    /// The previous version of their adapter (if any) is still serving.
    pub fn load_failures(&self) -> Vec<String> {
        match self.state.lock() {
            Ok(state) => state.failures(),
            Err(poisoned) => poisoned.into_inner().failures(),
        }
    }

    /// Creates the instance of source `name` on `plugin`.
    fn create(
        &self,
        name: &str,
        source: &SourceConfig,
        plugin: &Arc<Plugin>,
    ) -> anyhow::Result<Source> {
        let content_types = source
            .allowed_media_types()
            .with_context(|| format!("invalid [sources.{name}]"))?;
        let adapter = self.instance(name, source, plugin)?;
        tracing::info!(
            source = %name,
            adapter = %source.adapter,
            version = %plugin.info().version,
            "source ready"
        );
        Ok(Source {
            name: name.to_owned(),
            adapter,
            secrets: crate::archive::config_secrets(&source.config),
            content_types,
            placement: Arc::new(Placement::new(self.setup.inline_call_limit, name)),
        })
    }

    /// An adapter instance of `plugin` configured as source `name` (its start-up warnings
    /// logged): a source's, or a shadowed candidate's.
    fn instance(
        &self,
        name: &str,
        source: &SourceConfig,
        plugin: &Arc<Plugin>,
    ) -> anyhow::Result<AdapterInstance> {
        let args = serde_json::json!({
            "host": { "source": name, "installation_key": self.setup.installation_key },
            "config": source.config,
        });
        let adapter = AdapterInstance::create(Arc::clone(plugin), args.to_string().as_bytes())
            .with_context(|| format!("cannot configure source `{name}`"))?
            .with_max_in_flight(self.setup.max_calls_in_flight);
        for warning in adapter.warnings() {
            tracing::warn!(source = %name, adapter = %plugin.info().name, version = %plugin.info().version, "{warning}");
        }
        Ok(adapter)
    }

    /// The configuration of source `name` (a source named after its adapter when none is
    /// configured).
    fn source_config(&self, name: &str) -> SourceConfig {
        self.setup
            .configured
            .get(name)
            .cloned()
            .unwrap_or_else(|| SourceConfig {
                adapter: self
                    .get(name)
                    .map(|s| s.adapter.plugin().info().name.clone())
                    .unwrap_or_else(|| name.to_owned()),
                config: toml::Table::new(),
                content_types: None,
                expect: crate::health::Expect::default(),
            })
    }
}

/// The installation's secret key (hex), created on first start in the data directory. Adapters
/// use it as the personal-data hash key when a source configures none.
pub fn installation_key(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("installation.key");
    if let Ok(key) = std::fs::read_to_string(&path) {
        let key = key.trim().to_owned();
        if !key.is_empty() {
            return Ok(key);
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow::anyhow!("no randomness for the installation key: {error}"))?;
    let key = hex::encode(bytes);
    write_private(&path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}
