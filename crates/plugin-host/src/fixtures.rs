//! Golden fixtures: raw provider payloads run through a loaded plugin, compared with the
//! expected canonical result as proto3 JSON.
//!
//! A fixtures directory holds, per case `<case>`:
//! - `<case>.raw.json`: the body, byte for byte as the provider sends it;
//! - `<case>.expected.json`: the expected `tributary.v1.AdapterResult` as proto3 JSON;
//! - `<case>.request.json` (optional): `{"headers": {"name": "value"}, "query": "a=b"}`;
//! - `<case>.config.json` (optional): the adapter config for this case, overriding
//!   `adapter-config.json` (optional, default `{}`) of the directory.
//!
//! Every case runs with source = the adapter's name, received at 2024-01-01T00:00:00Z, and the
//! installation key `fixture-installation-key`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use similar::TextDiff;
use tributary_model::v1::{Header, WebhookRequest};

use crate::{AdapterInstance, Plugin};

/// When every fixture is received (2024-01-01T00:00:00Z).
pub const FIXTURE_RECEIVED_AT: i64 = 1_704_067_200;
/// The installation key fixtures run with, so hashed personal data is reproducible.
pub const FIXTURE_INSTALLATION_KEY: &str = "fixture-installation-key";

/// Why a fixtures directory could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: no fixtures (*.raw.json) found")]
    Empty { path: PathBuf },
}

/// What happened to one case.
#[derive(Debug)]
pub enum Outcome {
    Passed,
    /// The output differs; a unified diff expected -> actual.
    Mismatch(String),
    /// `--update` wrote the expectation.
    Updated,
    /// The case could not run (bad request file, adapter failure...).
    Error(String),
}

/// The result of a fixtures run.
#[derive(Debug, Default)]
pub struct Report {
    pub cases: Vec<(String, Outcome)>,
}

impl Report {
    /// True when no case mismatched or failed.
    pub fn passed(&self) -> bool {
        self.cases
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Passed | Outcome::Updated))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, outcome) in &self.cases {
            match outcome {
                Outcome::Passed => writeln!(f, "ok       {name}")?,
                Outcome::Updated => writeln!(f, "updated  {name}")?,
                Outcome::Mismatch(diff) => writeln!(f, "MISMATCH {name}\n{diff}")?,
                Outcome::Error(e) => writeln!(f, "ERROR    {name}: {e}")?,
            }
        }
        let failed = self
            .cases
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Mismatch(_) | Outcome::Error(_)))
            .count();
        write!(f, "{} fixtures, {failed} failed", self.cases.len())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, FixtureError> {
    fs::read(path).map_err(|source| FixtureError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json_opt(path: &Path) -> Result<Option<Value>, FixtureError> {
    if !path.exists() {
        return Ok(None);
    }
    serde_json::from_slice(&read(path)?)
        .map(Some)
        .map_err(|source| FixtureError::Json {
            path: path.to_path_buf(),
            source,
        })
}

/// Runs every case in `dir` through `plugin`. With `update`, mismatching or missing
/// expectations are rewritten instead of reported.
pub fn run_dir(plugin: &Arc<Plugin>, dir: &Path, update: bool) -> Result<Report, FixtureError> {
    let names = case_names(dir)?;
    let default_config = default_config(dir)?;

    let mut report = Report::default();
    for name in names {
        let outcome = match run_case(plugin, dir, &name, &default_config, update) {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Error(e.to_string()),
        };
        report.cases.push((name, outcome));
    }
    Ok(report)
}

/// The cases of a fixtures directory (`<case>.raw.json`), sorted; none is an error.
pub fn case_names(dir: &Path) -> Result<Vec<String>, FixtureError> {
    let entries = fs::read_dir(dir).map_err(|source| FixtureError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".raw.json"))
                .map(str::to_owned)
        })
        .collect();
    if names.is_empty() {
        return Err(FixtureError::Empty {
            path: dir.to_path_buf(),
        });
    }
    names.sort();
    Ok(names)
}

/// The directory's `adapter-config.json` (`{}` when absent).
pub fn default_config(dir: &Path) -> Result<Value, FixtureError> {
    Ok(read_json_opt(&dir.join("adapter-config.json"))?.unwrap_or(json!({})))
}

/// Case `name` of `dir` as the fixtures run it for `adapter` (also the source): the request
/// and the adapter config (the case's own, else `default_config`).
pub fn case(
    dir: &Path,
    name: &str,
    adapter: &str,
    default_config: &Value,
) -> Result<(WebhookRequest, Value), FixtureError> {
    let body = read(&dir.join(format!("{name}.raw.json")))?;
    let config = read_json_opt(&dir.join(format!("{name}.config.json")))?
        .unwrap_or_else(|| default_config.clone());
    let request_spec =
        read_json_opt(&dir.join(format!("{name}.request.json")))?.unwrap_or(json!({}));

    let headers = request_spec
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .map(|(k, v)| Header {
                    name: k.to_ascii_lowercase(),
                    value: v.as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    let request = WebhookRequest {
        source: adapter.to_owned(),
        method: "POST".to_owned(),
        path: format!("/webhooks/{adapter}"),
        query: request_spec
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        headers,
        body,
        received_at: Some(pbjson_types::Timestamp {
            seconds: FIXTURE_RECEIVED_AT,
            nanos: 0,
        }),
        skip_verification: false,
        ..Default::default()
    };
    Ok((request, config))
}

fn run_case(
    plugin: &Arc<Plugin>,
    dir: &Path,
    name: &str,
    default_config: &Value,
    update: bool,
) -> Result<Outcome, FixtureError> {
    let adapter = &plugin.info().name;
    let (request, config) = case(dir, name, adapter, default_config)?;
    let instance = match create_instance(plugin, adapter, FIXTURE_INSTALLATION_KEY, &config) {
        Ok(instance) => instance,
        Err(e) => return Ok(Outcome::Error(format!("create: {e}"))),
    };
    let mut result = match instance.handle(&request) {
        Ok(result) => result,
        Err(e) => return Ok(Outcome::Error(e.to_string())),
    };
    // How long the stages took, and which secret verified, are not part of what an adapter
    // maps (the adapters' own tests check the secret).
    result.timings = None;
    result.verified_by = None;
    let actual = serde_json::to_value(&result).map_err(|source| FixtureError::Json {
        path: dir.join(format!("{name}.raw.json")),
        source,
    })?;

    let expected_path = dir.join(format!("{name}.expected.json"));
    let expected = read_json_opt(&expected_path)?;
    if expected.as_ref() == Some(&actual) {
        return Ok(Outcome::Passed);
    }
    let actual_text = pretty(&actual);
    if update {
        fs::write(&expected_path, actual_text).map_err(|source| FixtureError::Io {
            path: expected_path,
            source,
        })?;
        return Ok(Outcome::Updated);
    }
    let expected_text = expected.as_ref().map(pretty).unwrap_or_default();
    let diff = TextDiff::from_lines(&expected_text, &actual_text)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string();
    Ok(Outcome::Mismatch(diff))
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Finds a cdylib built by cargo next to the running test binary (`target/<profile>/`).
/// Tests use it to load the real plugin the way the server does.
pub fn built_library(crate_name: &str) -> PathBuf {
    let file = crate::library_file_name(crate_name);
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .skip(1)
        .map(|dir| dir.join(&file))
        .find(|candidate| candidate.exists())
        .unwrap_or_else(|| PathBuf::from(file))
}

/// Loads the plugin a crate builds (found by [`built_library`]); panics when it cannot.
#[track_caller]
pub fn load_built(crate_name: &str) -> Arc<Plugin> {
    let library = built_library(crate_name);
    Plugin::load(&library)
        .unwrap_or_else(|e| panic!("plugin {} does not load: {e}", library.display()))
}

/// An instance of `plugin` for `source`, created as the host creates one: with the
/// installation key and the adapter's `config`.
pub fn create_instance(
    plugin: &Arc<Plugin>,
    source: &str,
    installation_key: &str,
    config: &Value,
) -> Result<AdapterInstance, crate::HandleError> {
    let create_args = json!({
        "host": { "source": source, "installation_key": installation_key },
        "config": config,
    });
    AdapterInstance::create(Arc::clone(plugin), create_args.to_string().as_bytes())
}

/// The golden-fixture test of an adapter crate: runs every case of `<manifest_dir>/fixtures`
/// through the crate's built plugin, loaded exactly as the server loads it, and panics with the
/// report (a diff per mismatch) unless all pass. With `UPDATE_FIXTURES` set it rewrites the
/// expectations instead (review the diff before committing).
///
/// ```ignore
/// #[test]
/// fn golden_fixtures() {
///     tributary_plugin_host::fixtures::assert_golden(env!("CARGO_PKG_NAME"), env!("CARGO_MANIFEST_DIR"));
/// }
/// ```
#[track_caller]
pub fn assert_golden(crate_name: &str, manifest_dir: impl AsRef<Path>) {
    let plugin = load_built(crate_name);
    let dir = manifest_dir.as_ref().join("fixtures");
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    let report = run_dir(&plugin, &dir, update).expect("fixtures run");
    assert!(report.passed(), "{report}");
}
