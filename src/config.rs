//! Configuration: defaults, then a TOML file, then flags and environment variables.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::ingest::media_type::{AllowedMediaTypes, MediaTypeError};

/// The whole service configuration (the TOML file's shape).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub shutdown_timeout_seconds: u64,
    /// Allows listening on a non-loopback address without gRPC credentials. For a trusted
    /// private network only; a loud warning is logged.
    pub insecure: bool,
    pub http: HttpConfig,
    pub grpc: GrpcConfig,
    pub log: LogConfig,
    pub plugins: PluginsConfig,
    /// Separate listeners for what only operators need.
    pub ops: OpsConfig,
    /// OpenTelemetry trace and metrics export. The standard `OTEL_*` environment variables win
    /// over it.
    pub telemetry: TelemetryConfig,
    /// The encrypted raw archive of received webhooks.
    pub archive: ArchiveConfig,
    /// How `CloudEventStream` names events as CloudEvents (source URI, type prefix).
    pub cloudevents: CloudEventsConfig,
    /// The audit log of admin actions and console logins (`data_dir/audit.jsonl`).
    pub audit: AuditConfig,
    /// Source name -> adapter instance. Empty: every loaded adapter is served as a source of
    /// its own name with an empty config.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Candidate adapters run beside the active one (`tributary adapter shadow`).
    pub shadow: crate::sources::shadow::config::ShadowConfig,
    /// The window over which sources' expectations (`[sources.X.expect]`) are measured.
    pub health: crate::health::HealthConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Entries older than this many days are dropped (checked at start-up and daily); 0 keeps
    /// them forever.
    pub max_age_days: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { max_age_days: 365 }
    }
}

impl AuditConfig {
    /// The retention as a duration; `None` keeps everything.
    pub fn max_age(&self) -> Option<std::time::Duration> {
        (self.max_age_days > 0)
            .then(|| std::time::Duration::from_secs(self.max_age_days.saturating_mul(86_400)))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the webhook front end listens on (`localhost:<port>` is loopback).
    #[serde(deserialize_with = "listen_address::deserialize")]
    pub listen: SocketAddr,
    /// Largest accepted webhook body, bytes. Larger bodies get 413.
    pub body_limit: usize,
    /// A connection must send its request headers within this time, or is closed.
    pub header_timeout_seconds: u64,
    /// A whole request (body read, verify, normalize, append) must finish within this time;
    /// slower ones get 408 (body not read in time) or 503, and nothing is stored.
    pub request_timeout_seconds: u64,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Largest request head (request line and headers), bytes; larger ones get 431.
    pub max_header_bytes: usize,
    /// Webhooks per second accepted per source (a token bucket); over it, 429 with
    /// `Retry-After` (providers retry). 0 switches the limit off.
    pub rate_limit_per_second: u32,
    /// Burst above the rate a source may send at once.
    pub rate_limit_burst: u32,
    /// Failed verifications per second allowed per client address and source (a token
    /// bucket of their own, so forgeries never spend the source's budget); over it, 429
    /// before the body is read. 0 switches the limit off.
    pub failed_verifications_per_second: u32,
    /// Burst of failed verifications per client address and source.
    pub failed_verifications_burst: u32,
    /// Rejected-webhook log lines written per second at most (the rest are counted in
    /// `tributary_webhooks_rejected_total` only).
    pub rejection_log_lines_per_second: u32,
    /// Connections served at once per client address (IPv6: per /64); more are closed at
    /// once. 0: only `max_connections` applies.
    pub max_connections_per_address: usize,
    /// Serve HTTPS from these PEM files (re-read on SIGHUP).
    pub tls: Option<TlsConfig>,
    /// Rejected webhooks kept in memory per source for the rejection log (console, `tributary
    /// rejections list`); 0 keeps none.
    pub rejections_kept: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Address the gRPC services listen on (`localhost:<port>` is loopback).
    #[serde(deserialize_with = "listen_address::deserialize")]
    pub listen: SocketAddr,
    /// Consuming teams' credentials and scopes (see `src/auth.rs`). Empty: every caller is an
    /// administrator, allowed only on a loopback address (or with `insecure`).
    pub credentials: Vec<crate::auth::CredentialConfig>,
    /// Serve gRPC server reflection (v1), so generic tools can list the services.
    pub reflection: bool,
    /// HTTP/2 streams at once per connection.
    pub max_concurrent_streams: u32,
    /// Connections served at once; more wait in the accept backlog.
    pub max_connections: usize,
    /// Connections served at once per client address (IPv6: per /64); more are closed at
    /// once. 0: only `max_connections` applies.
    pub max_connections_per_address: usize,
    /// Time for a new connection's TLS handshake, or its first byte in clear; slower ones are
    /// closed.
    pub handshake_timeout_seconds: u64,
    /// `Subscribe` streams open at once, across clients; more get RESOURCE_EXHAUSTED.
    pub max_subscriptions: usize,
    /// Durable consumers that may exist; creating one more gets RESOURCE_EXHAUSTED (delete
    /// unused ones with `tributary consumers delete`).
    pub max_consumers: usize,
    /// Serve gRPC over TLS from these PEM files (re-read on SIGHUP); with `client_ca_file`,
    /// clients must present a certificate (mTLS).
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Directory of the embedded log and the installation key.
    pub data_dir: PathBuf,
    /// fsync before acknowledging (default). `false` only for benchmarks.
    pub durable: bool,
    pub retention: RetentionConfig,
    /// `"embedded"` (default: the log in `data_dir`, see `engine`) or NATS JetStream server
    /// URLs, comma-separated (`"nats://10.0.0.1:4222,nats://10.0.0.2:4222"`, or `tls://`),
    /// never with credentials (refused: they go in `[log.nats]`). See docs/deployment.md.
    pub backend: String,
    /// The embedded log's storage engine.
    pub engine: EmbeddedEngine,
    /// Stream settings when `backend` is NATS JetStream.
    pub nats: NatsLogConfig,
}

/// `[log] engine`: which storage engine keeps the embedded log in `data_dir`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddedEngine {
    /// The engine whose log `data_dir` already holds: redb when it has an `events.redb` file,
    /// fjall otherwise (a new data directory gets fjall, which measures faster: see
    /// docs/benchmarks.md, "The engine").
    #[default]
    Auto,
    /// The log-structured engine (fjall: a journal and LSM trees in `data_dir/fjall/`): one
    /// sequential append and one fsync per commit, start-up that reads only the journal's
    /// tail, retention that drops whole segments, a third of redb's bytes written.
    Fjall,
    /// One redb file (`data_dir/events.redb`): copy-on-write B-trees.
    Redb,
}

/// `[log.nats]`: the JetStream stream Tributary creates when absent. An existing stream keeps
/// its own settings (differences are logged), except the raw archive's limits, which follow
/// `[log.retention]`; an incompatible one is refused at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsLogConfig {
    /// Events stream; dead letters go to `<stream>_DEAD_LETTERS`, the raw archive to
    /// `<stream>_ARCHIVE`, consumer positions, dead-letter state, dedup keys and archive links
    /// to KV buckets `<stream>_CONSUMERS`, `<stream>_DEAD_LETTER_STATE`, `<stream>_DEDUP`,
    /// `<stream>_ARCHIVE_LINKS`.
    pub stream: String,
    /// First subject token: events on `<prefix>.events.<source>.<type>`, raw-archive entries
    /// on `<prefix>.archive.<source>`.
    pub subject_prefix: String,
    /// Replicas of the streams and buckets: 3 on a 3-node cluster.
    pub replicas: usize,
    /// Where JetStream keeps the stream.
    pub storage: NatsStorage,
    /// Dedup window on (source, provider event id); must cover the providers' retry periods.
    pub duplicate_window_seconds: u64,
    /// Hard age limit JetStream enforces even on events a durable consumer has not
    /// acknowledged (`[log.retention]` is the consumer-aware one).
    pub max_age_seconds: Option<u64>,
    /// Hard size limit JetStream enforces, oldest first, whatever consumers still need.
    pub max_bytes: Option<u64>,
    /// How long start-up waits for NATS.
    pub connect_timeout_seconds: u64,
    /// Bound on each JetStream request and publish acknowledgement.
    pub request_timeout_seconds: u64,
    /// NATS credentials file (user JWT and nkey seed, e.g. from `nsc`). One authentication
    /// method at most: this, `nkey_seed_file`, `user`, or `token_file`.
    pub creds_file: Option<PathBuf>,
    /// File holding a user nkey seed (`SU...`).
    pub nkey_seed_file: Option<PathBuf>,
    /// User name, with its password in `password_file` or the variable `password_env`.
    pub user: Option<String>,
    /// File holding `user`'s password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Environment variable holding `user`'s password.
    pub password_env: Option<String>,
    /// File holding a token (trailing newline ignored).
    pub token_file: Option<PathBuf>,
    /// PEM CA certificate(s) of the servers (default: the system's). Setting any `tls_*`
    /// file, or a `tls://` URL, makes TLS required.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (with `tls_client_key_file`).
    pub tls_client_cert_file: Option<PathBuf>,
    /// PEM key of `tls_client_cert_file`.
    pub tls_client_key_file: Option<PathBuf>,
}

/// JetStream storage of the streams and buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatsStorage {
    /// On disk (survives a NATS restart).
    File,
    /// In memory (lost when NATS restarts).
    Memory,
}

impl Default for NatsLogConfig {
    fn default() -> Self {
        Self {
            stream: "TRIBUTARY_EVENTS".into(),
            subject_prefix: "tributary".into(),
            replicas: 1,
            storage: NatsStorage::File,
            duplicate_window_seconds: 4 * 24 * 3600,
            max_age_seconds: None,
            max_bytes: None,
            connect_timeout_seconds: 10,
            request_timeout_seconds: 5,
            creds_file: None,
            nkey_seed_file: None,
            user: None,
            password_file: None,
            password_env: None,
            token_file: None,
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
        }
    }
}

impl NatsLogConfig {
    /// The one authentication method configured, its secret read from its file or variable.
    /// Errors name the setting, never the secret.
    fn auth(&self) -> anyhow::Result<tributary_event_log_nats::NatsAuth> {
        use tributary_event_log_nats::{NatsAuth, Secret};
        let methods = [
            self.creds_file.is_some(),
            self.nkey_seed_file.is_some(),
            self.user.is_some(),
            self.token_file.is_some(),
        ];
        if methods.iter().filter(|set| **set).count() > 1 {
            anyhow::bail!(
                "log.nats: set one of creds_file, nkey_seed_file, user (with password_file or \
                 password_env) and token_file"
            );
        }
        if self.user.is_none() && (self.password_file.is_some() || self.password_env.is_some()) {
            anyhow::bail!("log.nats: password_file and password_env need a user");
        }
        let read = |path: &Path, setting: &str| -> anyhow::Result<Secret> {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read log.nats.{setting} {}", path.display()))?;
            let secret = text.trim_end_matches(['\r', '\n']);
            if secret.is_empty() {
                anyhow::bail!("log.nats.{setting} {} is empty", path.display());
            }
            Ok(Secret::new(secret))
        };
        if let Some(path) = &self.creds_file {
            return Ok(NatsAuth::CredsFile(path.clone()));
        }
        if let Some(path) = &self.nkey_seed_file {
            return Ok(NatsAuth::NkeySeedFile(path.clone()));
        }
        if let Some(path) = &self.token_file {
            return Ok(NatsAuth::Token(read(path, "token_file")?));
        }
        let Some(user) = &self.user else {
            return Ok(NatsAuth::None);
        };
        let password = match (&self.password_file, &self.password_env) {
            (Some(path), None) => read(path, "password_file")?,
            (None, Some(variable)) => match std::env::var(variable) {
                Ok(password) if !password.is_empty() => Secret::new(password),
                _ => anyhow::bail!(
                    "log.nats.password_env: the environment variable {variable} is unset or empty"
                ),
            },
            _ => anyhow::bail!(
                "log.nats.user needs its password in exactly one of password_file and \
                 password_env"
            ),
        };
        Ok(NatsAuth::UserPassword {
            user: user.clone(),
            password,
        })
    }

    fn tls(&self) -> anyhow::Result<tributary_event_log_nats::NatsTls> {
        if self.tls_client_cert_file.is_some() != self.tls_client_key_file.is_some() {
            anyhow::bail!("log.nats: tls_client_cert_file and tls_client_key_file go together");
        }
        Ok(tributary_event_log_nats::NatsTls {
            ca_file: self.tls_ca_file.clone(),
            client_cert_file: self.tls_client_cert_file.clone(),
            client_key_file: self.tls_client_key_file.clone(),
        })
    }
}

impl LogConfig {
    /// The NATS settings when `backend` names NATS servers, `None` for the embedded log.
    pub fn nats(&self) -> anyhow::Result<Option<tributary_event_log_nats::NatsConfig>> {
        use std::time::Duration;
        use tributary_event_log_nats::{NatsConfig, Storage};
        let backend = self.backend.trim();
        if backend.is_empty() || backend == "embedded" {
            return Ok(None);
        }
        let servers: Vec<String> = backend.split(',').map(|s| s.trim().to_owned()).collect();
        if let Some(problem) = servers
            .iter()
            .find_map(|s| tributary_event_log_nats::server_url_problem(s))
        {
            anyhow::bail!("log.backend: expected \"embedded\" or NATS server URLs: {problem}");
        }
        let nats = &self.nats;
        let retention = &self.retention;
        Ok(Some(NatsConfig {
            auth: nats.auth()?,
            tls: nats.tls()?,
            stream: nats.stream.clone(),
            subject_prefix: nats.subject_prefix.clone(),
            replicas: nats.replicas,
            storage: match nats.storage {
                NatsStorage::File => Storage::File,
                NatsStorage::Memory => Storage::Memory,
            },
            duplicate_window: Duration::from_secs(nats.duplicate_window_seconds),
            max_age: nats.max_age_seconds.map(Duration::from_secs),
            max_bytes: nats.max_bytes,
            retention: retention.to_log(),
            connect_timeout: Duration::from_secs(nats.connect_timeout_seconds),
            request_timeout: Duration::from_secs(nats.request_timeout_seconds.max(1)),
            ..NatsConfig::new(servers)
        }))
    }
}

/// How much history the log keeps. No event is removed by default; resolved dead letters go
/// after 30 days and at most 100,000 dead letters are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Remove events stored longer ago than this many seconds.
    pub max_age_seconds: Option<u64>,
    /// Remove the oldest events while stored event bytes exceed this.
    pub max_bytes: Option<u64>,
    /// Also remove events a durable consumer has not acknowledged.
    pub override_consumers: bool,
    /// Seconds between retention passes.
    pub interval_seconds: u64,
    /// How long a (source, provider event id) stays a duplicate after retention removed its
    /// event or dead letter (at least this long after it was first stored). Must exceed the
    /// longest provider retry period (Finicity: 3 days). 0: keys go with their items.
    pub dedup_horizon_seconds: u64,
    /// Remove resolved dead letters resolved longer ago than this. 0: never by age.
    pub dead_letter_max_age_seconds: u64,
    /// Remove the oldest dead letters (resolved or not) beyond this many. 0: no limit.
    pub dead_letter_max_count: u64,
    /// Remove raw-archive entries received longer ago than this many seconds (default: keep).
    /// Independent of the events' retention.
    pub archive_max_age_seconds: Option<u64>,
    /// Remove the oldest raw-archive entries while they take more bytes than this.
    pub archive_max_bytes: Option<u64>,
}

/// The longest retry period of the bundled providers (Finicity: once a day for 3 days).
const LONGEST_PROVIDER_RETRY_SECONDS: u64 = 3 * 24 * 3600;

impl Default for RetentionConfig {
    fn default() -> Self {
        let defaults = tributary_event_log::Retention::default();
        Self {
            max_age_seconds: None,
            max_bytes: None,
            override_consumers: false,
            interval_seconds: 30,
            dedup_horizon_seconds: defaults.dedup_horizon.as_secs(),
            dead_letter_max_age_seconds: defaults
                .dead_letter_max_age
                .map_or(0, |age| age.as_secs()),
            dead_letter_max_count: defaults.dead_letter_max_count.unwrap_or(0),
            archive_max_age_seconds: None,
            archive_max_bytes: None,
        }
    }
}

impl RetentionConfig {
    /// The log's retention settings (0 meaning "off" where documented).
    pub fn to_log(&self) -> tributary_event_log::Retention {
        use std::time::Duration;
        if self.dedup_horizon_seconds < LONGEST_PROVIDER_RETRY_SECONDS {
            tracing::warn!(
                dedup_horizon_seconds = self.dedup_horizon_seconds,
                "log.retention.dedup_horizon_seconds is shorter than the providers' retry \
                 periods (3 days): a retry of a removed event may be stored again"
            );
        }
        tributary_event_log::Retention {
            max_age: self.max_age_seconds.map(Duration::from_secs),
            max_bytes: self.max_bytes,
            override_consumers: self.override_consumers,
            interval: Duration::from_secs(self.interval_seconds.max(1)),
            dedup_horizon: Duration::from_secs(self.dedup_horizon_seconds),
            dead_letter_max_age: (self.dead_letter_max_age_seconds > 0)
                .then(|| Duration::from_secs(self.dead_letter_max_age_seconds)),
            dead_letter_max_count: (self.dead_letter_max_count > 0)
                .then_some(self.dead_letter_max_count),
            archive_max_age: self.archive_max_age_seconds.map(Duration::from_secs),
            archive_max_bytes: self.archive_max_bytes,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            shutdown_timeout_seconds: 10,
            insecure: false,
            http: HttpConfig::default(),
            grpc: GrpcConfig::default(),
            log: LogConfig::default(),
            plugins: PluginsConfig::default(),
            ops: OpsConfig::default(),
            telemetry: TelemetryConfig::default(),
            archive: ArchiveConfig::default(),
            cloudevents: CloudEventsConfig::default(),
            audit: AuditConfig::default(),
            sources: BTreeMap::new(),
            shadow: crate::sources::shadow::config::ShadowConfig::default(),
            health: crate::health::HealthConfig::default(),
        }
    }
}

/// `[telemetry]`: where traces go. Nothing is exported (and no tracer is installed) unless an
/// endpoint is set here or in `OTEL_EXPORTER_OTLP_ENDPOINT` /
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`. See docs/observability.md.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP base endpoint, like `OTEL_EXPORTER_OTLP_ENDPOINT` (e.g. `http://collector:4317`
    /// for gRPC, `http://collector:4318` for HTTP; `/v1/traces` is added for HTTP).
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf`, like `OTEL_EXPORTER_OTLP_PROTOCOL` (default `http/protobuf`,
    /// the OTLP specification's default).
    pub otlp_protocol: Option<OtlpProtocol>,
    /// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` gives
    /// one. Default: `tributary`.
    pub service_name: Option<String>,
    /// Fraction of new traces sampled (parent-based), when `OTEL_TRACES_SAMPLER` is unset.
    /// Default: 1.0.
    pub sample_ratio: Option<f64>,
}

/// `[archive]`: every acknowledged webhook's raw body and headers, stored in the same commit as
/// its events, sealed with XChaCha20-Poly1305. Keys: `key_file` or `key_env`, one key per line
/// as `<key id> <64 hex digits>`, the first sealing new entries, the others opening older
/// ones (rotation). With neither, a key is generated in `<data_dir>/archive.key` (0600): the
/// archive is then only as safe as the data directory; give a key kept elsewhere in
/// production.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Archive webhooks (default true). Off: no raw body is kept and replay has nothing to run.
    pub enabled: bool,
    /// File with the keys (owner-only permissions).
    pub key_file: Option<PathBuf>,
    /// Environment variable with the keys (lines or `;`-separated).
    pub key_env: Option<String>,
    /// Also keep secret-bearing headers and query parameters (`Authorization`, cookies, and
    /// any whose value is a string of the source's config, such as a shared token). Off by
    /// default: the kept ones (signatures, timestamps) are what re-verification needs.
    pub keep_secret_headers: bool,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            key_file: None,
            key_env: None,
            keep_secret_headers: false,
        }
    }
}

/// `[cloudevents]`: the CloudEvents names of events on `CloudEventStream` (docs/taxonomy.md).
/// CloudEvents requires `source` + `id` to be unique across everything a consumer reads, so
/// an installation sharing consumers with another one names itself in `source_prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudEventsConfig {
    /// Put before the source name to make the CloudEvent `source`, a URI-reference
    /// (RFC 3986). Default `"tributary:///"` (no installation name: `tributary:///arcadia`);
    /// e.g. `"tributary://prod-eu/"` gives `tributary://prod-eu/arcadia`.
    pub source_prefix: String,
    /// Put before the canonical type to make the CloudEvent `type`: empty (default) or a
    /// reverse-DNS prefix ending in `.` (`"com.example.tributary."` gives
    /// `com.example.tributary.statement.available`).
    pub type_prefix: String,
}

impl Default for CloudEventsConfig {
    fn default() -> Self {
        Self {
            source_prefix: "tributary:///".to_owned(),
            type_prefix: String::new(),
        }
    }
}

/// Why a `[cloudevents]` setting was refused at start-up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CloudEventsConfigError {
    /// The prefix plus a source name is not an RFC 3986 URI-reference.
    #[error(
        "cloudevents.source_prefix {prefix:?}: {prefix:?} + a source name ({example:?}) is not a \
         URI-reference (RFC 3986): {reason}"
    )]
    SourcePrefix {
        /// The configured prefix.
        prefix: String,
        /// The source URI it made.
        example: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The type prefix is not reverse-DNS labels each followed by a dot.
    #[error(
        "cloudevents.type_prefix {0:?}: use empty or reverse-DNS labels of a-z 0-9 - each \
         followed by a dot, e.g. \"com.example.tributary.\""
    )]
    TypePrefix(String),
}

impl CloudEventsConfig {
    /// Checks that `source_prefix` + each source name (and any source name: they are 1 to 64
    /// characters of `A-Z a-z 0-9 _ -`) is a URI-reference, and that `type_prefix` is
    /// reverse-DNS, so no event ever gets an invalid CloudEvent `source` or `type`.
    pub fn validate<'a>(
        &self,
        sources: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), CloudEventsConfigError> {
        for source in std::iter::once("source").chain(sources) {
            let example = format!("{}{source}", self.source_prefix);
            if let Err(reason) = check_uri_reference(&example) {
                return Err(CloudEventsConfigError::SourcePrefix {
                    prefix: self.source_prefix.clone(),
                    example,
                    reason,
                });
            }
        }
        let type_ok = self.type_prefix.is_empty()
            || self.type_prefix.strip_suffix('.').is_some_and(|labels| {
                labels.split('.').all(|label| {
                    !label.is_empty()
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                })
            });
        if !type_ok {
            return Err(CloudEventsConfigError::TypePrefix(self.type_prefix.clone()));
        }
        Ok(())
    }
}

/// Whether `text` is an RFC 3986 URI-reference: only URI characters (percent-encodings whole),
/// a valid scheme before the first `:` when that `:` comes before any `/`, `?` or `#` (otherwise
/// it would be a relative reference whose first segment has a colon, which RFC 3986 forbids),
/// at most one `#`, and brackets only around an IP literal host.
fn check_uri_reference(text: &str) -> Result<(), &'static str> {
    const ALLOWED: &[u8] = b"-._~:/?#[]@!$&'()*+,;=";
    let bytes = text.as_bytes();
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes.get(index + 1..index + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return Err("a % must start a percent-encoding (%XX)");
            }
            index += 3;
            continue;
        }
        if !(byte.is_ascii_alphanumeric() || ALLOWED.contains(&byte)) {
            return Err("only letters, digits, -._~:/?#[]@!$&'()*+,;= and %XX are allowed");
        }
        index += 1;
    }
    if text.is_empty() {
        return Err("it is empty");
    }
    if text.matches('#').count() > 1 {
        return Err("at most one # (the fragment)");
    }
    let head_end = text.find(['/', '?', '#']).unwrap_or(text.len());
    let rest = match text[..head_end].find(':') {
        Some(colon) => {
            let scheme = &text[..colon];
            let valid = scheme
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
            if !valid {
                return Err(
                    "the part before the first : must be a scheme (a letter, then letters, digits, + - .)",
                );
            }
            &text[colon + 1..]
        }
        None => text,
    };
    let authority = rest
        .strip_prefix("//")
        .map(|after| &after[..after.find(['/', '?', '#']).unwrap_or(after.len())]);
    let host = authority.map(|a| a.rsplit_once('@').map_or(a, |(_, host)| host));
    let brackets_ok = |part: &str| !part.contains(['[', ']']);
    let (in_host, elsewhere) = match host {
        Some(host) if host.starts_with('[') => (
            host.find(']')
                .is_some_and(|end| brackets_ok(&host[1..end]) && brackets_ok(&host[end + 1..])),
            rest.replacen(host, "", 1),
        ),
        _ => (true, rest.to_owned()),
    };
    if !in_host || !brackets_ok(&elsewhere) {
        return Err("[ and ] only around an IP literal host");
    }
    Ok(())
}

/// `[ops]`: operators' endpoints on listeners of their own, so the webhook port (public) and
/// the consumers' gRPC port never serve them. Unset: they share the main listeners (loopback by
/// default). These listeners have no TLS: loopback only, unless `insecure`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// Serves `/metrics` (and `/healthz`, `/readyz`, and the web console); the webhook port
    /// then serves no metrics.
    pub http_listen: Option<SocketAddr>,
    /// Serves the `Admin` and `Adapters` gRPC services; the main gRPC port then serves only
    /// `EventStream`, health and reflection.
    pub grpc_listen: Option<SocketAddr>,
    /// Serve the web console (`/console/`, see docs/operations.md): on `http_listen`, or, when
    /// that is unset, on the webhook listener only while it is a loopback address. It needs a
    /// `[[grpc.credentials]]` with `admin = true` (its token is the login).
    pub console: bool,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            http_listen: None,
            grpc_listen: None,
            console: true,
        }
    }
}

/// How traces are sent to the OTLP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (port 4317 by convention).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318 by convention).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Directory scanned for adapter libraries. Default: the directory of the `tributary`
    /// executable, where `cargo build` puts the bundled plugins. It and its libraries must be
    /// writable only by their owner (root or the service's user), or they are refused.
    pub dir: Option<PathBuf>,
    /// Reload libraries when the directory changes or on SIGHUP. Off: only the
    /// `ReloadAdapters` admin call (or a restart) loads new versions.
    pub hot_reload: bool,
    /// Budget of one adapter call (verify or normalize); over it the webhook gets 503 and the
    /// provider retries.
    pub call_timeout_ms: u64,
    /// Calls one adapter instance may run at once, abandoned (timed-out) ones included; more
    /// get 503. Bounds the threads a hung adapter can hold.
    pub max_calls_in_flight: usize,
    /// Calls taking up to this much CPU time run on the request's own worker, saving two
    /// thread hand-offs per webhook; two calls over it in a row (or one holding the worker
    /// 50 ms by the wall clock) send that source's calls to the blocking pool for 30 s. 0:
    /// every call on the blocking pool.
    pub inline_call_max_us: u64,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            hot_reload: true,
            call_timeout_ms: 5000,
            max_calls_in_flight: 64,
            inline_call_max_us: 1000,
        }
    }
}

/// One source: a configured instance of an adapter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The adapter's name (`AdapterInfo.name`), e.g. "finicity".
    pub adapter: String,
    /// Passed to the adapter as JSON: secrets, verification mode, personal-data policy.
    #[serde(default = "empty_table")]
    pub config: toml::Table,
    /// Media types accepted from this source (`"application/json"`; compared without
    /// parameters, case-insensitively); others get 415. Unset: any `Content-Type`, or none,
    /// reaches the adapter, which decides whether the body is its provider's.
    #[serde(default)]
    pub content_types: Option<Vec<String>>,
    /// What this provider is expected to do (`[sources.X.expect]`); a source out of it is
    /// flagged, never refused.
    #[serde(default)]
    pub expect: crate::health::Expect,
}

impl SourceConfig {
    /// The checked `content_types` allow-list; `None` when unset (every type accepted).
    pub fn allowed_media_types(&self) -> Result<Option<AllowedMediaTypes>, MediaTypeError> {
        self.content_types
            .as_deref()
            .map(AllowedMediaTypes::new)
            .transpose()
    }
}

fn empty_table() -> toml::Table {
    toml::Table::new()
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: 1024 * 1024,
            header_timeout_seconds: 10,
            request_timeout_seconds: 30,
            max_connections: 1024,
            max_header_bytes: 64 * 1024,
            rate_limit_per_second: 1000,
            rate_limit_burst: 2000,
            failed_verifications_per_second: 1,
            failed_verifications_burst: 10,
            rejection_log_lines_per_second: 10,
            max_connections_per_address: 64,
            tls: None,
            rejections_kept: 50,
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            credentials: Vec::new(),
            reflection: true,
            max_concurrent_streams: 256,
            max_connections: 1024,
            max_connections_per_address: 64,
            handshake_timeout_seconds: 10,
            max_subscriptions: 1024,
            max_consumers: 256,
            tls: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            durable: true,
            retention: RetentionConfig::default(),
            backend: "embedded".into(),
            engine: EmbeddedEngine::Auto,
            nats: NatsLogConfig::default(),
        }
    }
}

/// Overrides from the command line or environment; `None` keeps the file's value.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Webhook HTTP listen address (IP:PORT, or localhost:PORT).
    #[arg(long, env = "TRIBUTARY_HTTP_LISTEN", value_parser = listen_address::parse)]
    pub http_listen: Option<SocketAddr>,
    /// gRPC listen address (IP:PORT, or localhost:PORT).
    #[arg(long, env = "TRIBUTARY_GRPC_LISTEN", value_parser = listen_address::parse)]
    pub grpc_listen: Option<SocketAddr>,
    /// Data directory of the embedded log.
    #[arg(long, env = "TRIBUTARY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory of adapter plugin libraries.
    #[arg(long, env = "TRIBUTARY_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Largest accepted webhook body, bytes.
    #[arg(long, env = "TRIBUTARY_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Allow a non-loopback listener without gRPC credentials (trusted networks only).
    #[arg(long, env = "TRIBUTARY_INSECURE")]
    pub insecure: bool,
}

impl Config {
    /// Reads the TOML file at `path` (if given) over the defaults, then applies `overrides`.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => Config::default(),
        };
        if let Some(listen) = overrides.http_listen {
            config.http.listen = listen;
        }
        if let Some(listen) = overrides.grpc_listen {
            config.grpc.listen = listen;
        }
        if let Some(dir) = &overrides.data_dir {
            config.log.data_dir = dir.clone();
        }
        if let Some(dir) = &overrides.plugin_dir {
            config.plugins.dir = Some(dir.clone());
        }
        if let Some(limit) = overrides.body_limit {
            config.http.body_limit = limit;
        }
        config.insecure |= overrides.insecure;
        for (name, source) in &config.sources {
            tributary_event_log::SourceName::new(name)
                .with_context(|| format!("invalid source name in [sources.{name:?}]"))?;
            source
                .allowed_media_types()
                .with_context(|| format!("invalid [sources.{name}]"))?;
        }
        config
            .cloudevents
            .validate(config.sources.keys().map(String::as_str))?;
        Ok(config)
    }

    /// The plugin directory: configured, else the executable's own directory.
    pub fn plugin_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.plugins.dir {
            return Ok(dir.clone());
        }
        let exe = std::env::current_exe().context("cannot locate the tributary executable")?;
        exe.parent()
            .map(Path::to_path_buf)
            .context("the executable has no parent directory")
    }
}

/// `[http.tls]` / `[grpc.tls]`: PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates that client certificates must chain to. Set: every client must present
    /// a valid certificate (mTLS).
    pub client_ca_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            r#"
            [http]
            listen = "0.0.0.0:9000"
            [sources.finicity-sandbox]
            adapter = "finicity"
            config = { secret = "s3cret" }
            "#,
        )
        .expect("write");
        let overrides = Overrides {
            grpc_listen: Some("127.0.0.1:1".parse().expect("addr")),
            ..Default::default()
        };
        let config = Config::load(Some(&path), &overrides).expect("loads");
        assert_eq!(config.http.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.grpc.listen.to_string(), "127.0.0.1:1");
        assert_eq!(config.http.body_limit, 1024 * 1024);
        let source = &config.sources["finicity-sandbox"];
        assert_eq!(source.adapter, "finicity");
        assert_eq!(source.config["secret"].as_str(), Some("s3cret"));
    }

    #[test]
    fn source_names_that_could_collide_in_event_ids_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[sources.\"s:x\"]\nadapter = \"arcadia\"\n").expect("write");
        let error = Config::load(Some(&path), &Overrides::default()).expect_err("refused");
        assert_eq!(
            format!("{error:#}"),
            "invalid source name in [sources.\"s:x\"]: invalid request: source names are 1 to 64 \
             characters of A-Z a-z 0-9 _ - (got \"s:x\")"
        );
    }

    #[test]
    fn cloudevents_prefixes_are_checked_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).expect("write");
            Config::load(Some(&path), &Overrides::default())
        };
        let defaults = load("").expect("defaults");
        assert_eq!(defaults.cloudevents.source_prefix, "tributary:///");
        assert_eq!(defaults.cloudevents.type_prefix, "");
        let set = load(
            "[cloudevents]\nsource_prefix = \"tributary://prod-eu/\"\n\
             type_prefix = \"com.example.tributary.\"\n",
        )
        .expect("valid");
        assert_eq!(
            set.cloudevents,
            CloudEventsConfig {
                source_prefix: "tributary://prod-eu/".into(),
                type_prefix: "com.example.tributary.".into(),
            }
        );
        let error = load("[cloudevents]\nsource_prefix = \"my events/\"\n").expect_err("space");
        assert_eq!(
            format!("{error:#}"),
            "cloudevents.source_prefix \"my events/\": \"my events/\" + a source name \
             (\"my events/source\") is not a URI-reference (RFC 3986): only letters, digits, \
             -._~:/?#[]@!$&'()*+,;= and %XX are allowed"
        );
        let error = load("[cloudevents]\ntype_prefix = \"Com.Example\"\n").expect_err("case");
        assert_eq!(
            format!("{error:#}"),
            "cloudevents.type_prefix \"Com.Example\": use empty or reverse-DNS labels of a-z \
             0-9 - each followed by a dot, e.g. \"com.example.tributary.\""
        );
    }

    #[test]
    fn uri_references_and_reverse_dns_prefixes() {
        for valid in [
            "tributary:///arcadia",
            "tributary://prod-eu/arcadia",
            "https://events.example.com/tributary/arcadia",
            "urn:tributary:arcadia",
            "/tributary/arcadia",
            "arcadia",
            "//host:8080/a%2Fb",
            "http://[::1]/arcadia",
            "tributary:///x?installation=eu#arcadia",
        ] {
            assert_eq!(check_uri_reference(valid), Ok(()), "{valid}");
        }
        for invalid in [
            "",
            "a b",
            "1tributary://x/a",
            "tri_butary:a",
            "a%2",
            "a%zz",
            "x#a#b",
            "tributary://h/[a]",
            "tributary://h/\u{e9}",
        ] {
            assert!(check_uri_reference(invalid).is_err(), "{invalid:?}");
        }
        let with_type = |type_prefix: &str| CloudEventsConfig {
            type_prefix: type_prefix.into(),
            ..CloudEventsConfig::default()
        };
        for valid in ["", "com.example.", "io.tributary-eu.v1."] {
            assert_eq!(with_type(valid).validate([]), Ok(()), "{valid}");
        }
        for invalid in [
            "com.example",
            ".com.",
            "com..x.",
            "com.-x.",
            "com.ex_ample.",
            "Com.",
        ] {
            assert!(with_type(invalid).validate([]).is_err(), "{invalid}");
        }
    }

    #[test]
    fn content_types_are_checked_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).expect("write");
            Config::load(Some(&path), &Overrides::default())
        };
        let head = "[sources.acme]\nadapter = \"arcadia\"\n";
        let unset = load(head).expect("valid");
        assert_eq!(unset.sources["acme"].content_types, None);
        assert_eq!(
            unset.sources["acme"].allowed_media_types().expect("valid"),
            None
        );
        let set = load(&format!(
            "{head}content_types = [\"Application/JSON\", \"text/plain\"]\n"
        ))
        .expect("valid");
        let allowed = set.sources["acme"]
            .allowed_media_types()
            .expect("valid")
            .expect("set");
        assert_eq!(allowed.list(), "application/json, text/plain");
        let error = load(&format!("{head}content_types = []\n")).expect_err("empty");
        assert_eq!(
            format!("{error:#}"),
            "invalid [sources.acme]: content_types is empty: list the media types to accept, \
             or remove it to accept any"
        );
        let error = load(&format!(
            "{head}content_types = [\"application/json; charset=utf-8\"]\n"
        ))
        .expect_err("parameters");
        assert_eq!(
            format!("{error:#}"),
            "invalid [sources.acme]: content_types entry \"application/json; charset=utf-8\" \
             is not a media type such as \"application/json\" (type/subtype, without parameters)"
        );
        let error = load(&format!("{head}content_type = [\"text/plain\"]\n")).expect_err("typo");
        assert!(
            format!("{error:#}").contains("unknown field `content_type`"),
            "{error:#}"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[http]\nlisten_addr = \"x\"\n").expect("write");
        let error = Config::load(Some(&path), &Overrides::default()).expect_err("refused");
        assert!(
            format!("{error:#}").contains("unknown field `listen_addr`"),
            "{error:#}"
        );
    }

    #[test]
    fn retention_defaults_and_zero_meaning_off() {
        use std::time::Duration;
        let defaults = RetentionConfig::default().to_log();
        assert_eq!(defaults.max_age, None);
        assert_eq!(defaults.dedup_horizon, Duration::from_secs(2_592_000));
        assert_eq!(
            defaults.dead_letter_max_age,
            Some(Duration::from_secs(2_592_000))
        );
        assert_eq!(defaults.dead_letter_max_count, Some(100_000));
        let config: Config = toml::from_str(
            "[log.retention]\nmax_age_seconds = 60\ndedup_horizon_seconds = 864000\n\
             dead_letter_max_age_seconds = 0\ndead_letter_max_count = 5\n",
        )
        .expect("parses");
        let retention = config.log.retention.to_log();
        assert_eq!(retention.max_age, Some(Duration::from_secs(60)));
        assert_eq!(retention.dedup_horizon, Duration::from_secs(864_000));
        assert_eq!(retention.dead_letter_max_age, None, "0 is off");
        assert_eq!(retention.dead_letter_max_count, Some(5));
        let off: Config =
            toml::from_str("[log.retention]\ndead_letter_max_count = 0\n").expect("parses");
        assert_eq!(off.log.retention.to_log().dead_letter_max_count, None);
        // The NATS backend gets the same settings.
        let nats: Config = toml::from_str(
            "[log]\nbackend = \"nats://a:4222\"\n[log.retention]\ndedup_horizon_seconds = 5\n",
        )
        .expect("parses");
        let nats = nats.log.nats().expect("valid").expect("nats");
        assert_eq!(nats.retention.dedup_horizon, Duration::from_secs(5));
    }

    #[test]
    fn log_backend_selects_nats_with_its_stream_settings() {
        assert!(LogConfig::default().nats().expect("valid").is_none());
        let config: Config = toml::from_str(
            "[log]\nbackend = \"nats://a:4222, nats://b:4222\"\n[log.nats]\nreplicas = 3\n",
        )
        .expect("parses");
        let nats = config.log.nats().expect("valid").expect("nats");
        assert_eq!(nats.servers, ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(
            (nats.replicas, nats.stream.as_str()),
            (3, "TRIBUTARY_EVENTS")
        );
        assert_eq!(nats.duplicate_window.as_secs(), 4 * 24 * 3600);
        let bad: Config = toml::from_str("[log]\nbackend = \"redis://x\"\n").expect("parses");
        assert!(bad.log.nats().is_err());
        let tls: Config = toml::from_str(
            "[log]\nbackend = \"tls://a:4222\"\n[log.nats]\ntls_ca_file = \"/etc/ca.pem\"\n",
        )
        .expect("parses");
        let tls = tls.log.nats().expect("valid").expect("nats");
        assert_eq!(tls.servers, ["tls://a:4222"]);
        assert_eq!(
            tls.tls.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
    }

    fn nats_log(toml_text: &str) -> anyhow::Result<tributary_event_log_nats::NatsConfig> {
        let config: Config = toml::from_str(toml_text).expect("parses");
        Ok(config.log.nats()?.expect("nats"))
    }

    #[test]
    fn nats_urls_with_credentials_are_refused_pointing_at_the_settings() {
        for backend in [
            "nats://alice:hunter2@a:4222",
            "nats://a:4222,tls://hunter2@b:4222",
        ] {
            let error =
                nats_log(&format!("[log]\nbackend = \"{backend}\"\n")).expect_err("refused");
            let text = format!("{error:#}");
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("alice"), "{text}");
            assert!(text.contains("***@"), "{text}");
            assert!(text.contains("password_file"), "{text}");
            assert!(text.contains("creds_file"), "{text}");
        }
    }

    #[test]
    fn nats_credentials_come_from_files_or_the_environment() {
        use tributary_event_log_nats::{NatsAuth, Secret};
        let dir = tempfile::tempdir().expect("tempdir");
        let password = dir.path().join("password");
        std::fs::write(&password, "hunter2\n").expect("write");
        let head = "[log]\nbackend = \"nats://a:4222\"\n[log.nats]\n";
        let with = |lines: &str| nats_log(&format!("{head}{lines}"));

        assert_eq!(with("").expect("valid").auth, NatsAuth::None);
        let config =
            with(&format!("user = \"alice\"\npassword_file = {password:?}\n")).expect("valid");
        assert_eq!(
            config.auth,
            NatsAuth::UserPassword {
                user: "alice".into(),
                password: Secret::new("hunter2"),
            }
        );
        assert!(!format!("{config:?}").contains("hunter2"));
        // Setting a variable is unsafe (and forbidden here): read one every process has.
        let path = std::env::var("PATH").expect("PATH is set");
        let config = with("user = \"alice\"\npassword_env = \"PATH\"\n").expect("valid");
        assert_eq!(
            config.auth,
            NatsAuth::UserPassword {
                user: "alice".into(),
                password: Secret::new(path),
            }
        );
        assert_eq!(
            with(&format!("token_file = {password:?}\n"))
                .expect("valid")
                .auth,
            NatsAuth::Token(Secret::new("hunter2"))
        );
        assert_eq!(
            with("creds_file = \"/run/secrets/t.creds\"\n")
                .expect("valid")
                .auth,
            NatsAuth::CredsFile("/run/secrets/t.creds".into())
        );
        assert_eq!(
            with("nkey_seed_file = \"/run/secrets/t.nk\"\n")
                .expect("valid")
                .auth,
            NatsAuth::NkeySeedFile("/run/secrets/t.nk".into())
        );

        for (lines, expected) in [
            (
                "user = \"alice\"\n".to_owned(),
                "exactly one of password_file and password_env",
            ),
            (format!("password_file = {password:?}\n"), "need a user"),
            (
                format!("user = \"a\"\npassword_file = {password:?}\ntoken_file = {password:?}\n"),
                "set one of",
            ),
            (
                "user = \"a\"\npassword_env = \"TRIBUTARY_TEST_UNSET_VARIABLE_9C1\"\n".to_owned(),
                "unset or empty",
            ),
            (
                "user = \"a\"\npassword_file = \"/nonexistent/pw\"\n".to_owned(),
                "cannot read log.nats.password_file",
            ),
            (
                "tls_client_cert_file = \"/c.pem\"\n".to_owned(),
                "go together",
            ),
        ] {
            let error = with(&lines).expect_err(&lines);
            let text = format!("{error:#}");
            assert!(text.contains(expected), "{lines}: {text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}

/// Listen addresses: an `IP:PORT`, or `localhost:PORT` for the IPv4 loopback (a listener binds
/// one address, and resolving a name at start-up could pick any).
pub mod listen_address {
    use std::net::{Ipv4Addr, SocketAddr};

    use serde::Deserialize as _;

    /// Parses `text` as a listen address.
    pub fn parse(text: &str) -> Result<SocketAddr, String> {
        if let Some(port) = text.strip_prefix("localhost:") {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("`{text}`: the port must be a number from 0 to 65535"))?;
            return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        }
        text.parse().map_err(|_| {
            format!("`{text}` is not a listen address: give IP:PORT (127.0.0.1:8080, [::]:8080) or localhost:PORT")
        })
    }

    /// [`parse`] for serde.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn localhost_is_the_loopback() {
            assert_eq!(
                super::parse("localhost:18180"),
                Ok("127.0.0.1:18180".parse().expect("addr"))
            );
            assert_eq!(
                super::parse("[::1]:1"),
                Ok("[::1]:1".parse().expect("addr"))
            );
            assert_eq!(
                super::parse("localhost:x"),
                Err("`localhost:x`: the port must be a number from 0 to 65535".to_owned())
            );
        }
    }
}
