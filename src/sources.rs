//! Sources: configured instances of adapters. `POST /webhooks/{source}` picks one by name.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use tributary_plugin_host::{AdapterInstance, Plugin, load_dir};

use crate::config::{Config, SourceConfig};

/// One source: its name and its adapter instance.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub adapter: AdapterInstance,
}

/// The loaded plugins and the sources built on them.
#[derive(Debug, Default)]
pub struct Sources {
    by_name: HashMap<String, Arc<Source>>,
    plugins: Vec<Arc<Plugin>>,
}

impl Sources {
    /// Loads every plugin in the plugin directory and creates the configured sources (or one
    /// source per adapter when none is configured). A library that fails to load is logged and
    /// skipped; a source that cannot be created stops start-up with the reason.
    pub fn load(config: &Config, installation_key: &str) -> anyhow::Result<Self> {
        let dir = config.plugin_dir()?;
        let (loaded, errors) = load_dir(&dir)
            .with_context(|| format!("cannot read plugin directory {}", dir.display()))?;
        for error in &errors {
            tracing::error!(%error, "plugin not loaded");
        }
        let mut plugins: BTreeMap<String, Arc<Plugin>> = BTreeMap::new();
        for plugin in loaded {
            let name = plugin.info().name.clone();
            if let Some(first) = plugins.get(&name) {
                tracing::warn!(
                    adapter = %name,
                    kept = %first.file().display(),
                    ignored = %plugin.file().display(),
                    "two libraries provide the same adapter; keeping the first"
                );
                continue;
            }
            tracing::info!(
                adapter = %name,
                version = %plugin.info().version,
                file = %plugin.file().display(),
                "plugin loaded"
            );
            plugins.insert(name, plugin);
        }

        let configured: BTreeMap<String, SourceConfig> = if config.sources.is_empty() {
            plugins
                .keys()
                .map(|name| {
                    let source = SourceConfig {
                        adapter: name.clone(),
                        config: toml::Table::new(),
                    };
                    (name.clone(), source)
                })
                .collect()
        } else {
            config.sources.clone()
        };

        let mut by_name = HashMap::new();
        for (name, source) in configured {
            let Some(plugin) = plugins.get(&source.adapter) else {
                bail!(
                    "source `{name}` uses adapter `{}`, which is not loaded from {}",
                    source.adapter,
                    dir.display()
                );
            };
            let args = serde_json::json!({
                "host": { "source": name, "installation_key": installation_key },
                "config": source.config,
            });
            let adapter = AdapterInstance::create(Arc::clone(plugin), args.to_string().as_bytes())
                .with_context(|| format!("cannot configure source `{name}`"))?;
            for warning in adapter.warnings() {
                tracing::warn!(source = %name, adapter = %source.adapter, "{warning}");
            }
            tracing::info!(source = %name, adapter = %source.adapter, "source ready");
            by_name.insert(name.clone(), Arc::new(Source { name, adapter }));
        }
        Ok(Self {
            by_name,
            plugins: plugins.into_values().collect(),
        })
    }

    /// The source called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Source>> {
        self.by_name.get(name).cloned()
    }

    /// All sources, sorted by name.
    pub fn all(&self) -> Vec<Arc<Source>> {
        let mut all: Vec<_> = self.by_name.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The loaded plugins.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
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
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for the installation key")?;
    let key = hex::encode(bytes);
    write_private(&path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
