//! Start-up: connect, create the streams and buckets when absent, and refuse an existing
//! stream whose settings would break the log's guarantees.

use std::time::{Duration, Instant};

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType, Stream};
use async_nats::jetstream::{self, ErrorCode, kv};
use tributary_event_log::LogError;

use crate::{NatsAuth, NatsConfig, Storage, redacted_servers, server_url_problem};

/// What `ensure` found or created.
pub(crate) struct Parts {
    pub events: Stream,
    pub dead: Stream,
    pub consumers: kv::Store,
    pub dead_state: kv::Store,
    pub dead_state_stream: Stream,
    pub dedup: Option<kv::Store>,
    pub archive: Stream,
    pub archive_links: kv::Store,
    pub archive_links_stream: Stream,
}

/// Who sets a stream's limits (`max_age`, `max_bytes`, duplicate window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limits {
    /// Its owner (`nats stream edit`): the stream is shared, so a difference is only logged.
    Kept,
    /// `[log.retention]`: a changed limit (say, a shorter archive age for personal data) must
    /// take effect on restart, so the stream is updated.
    Applied,
}

/// JetStream refuses a `max_age` under 100 ms.
const MIN_MAX_AGE: Duration = Duration::from_millis(100);

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks names before anything reaches the server.
pub(crate) fn validate(config: &NatsConfig) -> Result<(), LogError> {
    if config.servers.is_empty() {
        return Err(LogError::Invalid("no NATS server URL given".into()));
    }
    if let Some(problem) = config.servers.iter().find_map(|s| server_url_problem(s)) {
        return Err(LogError::Invalid(problem));
    }
    if config.tls.client_cert_file.is_some() != config.tls.client_key_file.is_some() {
        return Err(LogError::Invalid(
            "a TLS client certificate needs its key, and a key its certificate".into(),
        ));
    }
    if !valid_name(&config.stream) {
        return Err(LogError::Invalid(format!(
            "stream name {:?} must be A-Z a-z 0-9 _ -",
            config.stream
        )));
    }
    if !valid_name(&config.subject_prefix) {
        return Err(LogError::Invalid(format!(
            "subject prefix {:?} must be one token of A-Z a-z 0-9 _ -",
            config.subject_prefix
        )));
    }
    if !(1..=5).contains(&config.replicas) {
        return Err(LogError::Invalid(format!(
            "replicas must be 1 to 5 (got {})",
            config.replicas
        )));
    }
    Ok(())
}

/// Credentials read once, before connecting.
enum Credentials {
    None,
    /// The credentials file's text (JWT and seed).
    Creds(String),
    Seed(String),
    UserPassword(String, String),
    Token(String),
}

/// Reads the credential files. Errors name the file and what is wrong, never its contents.
fn load_credentials(auth: &NatsAuth) -> Result<Credentials, LogError> {
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read_to_string(path).map_err(|e| {
            LogError::Invalid(format!(
                "cannot read the NATS {what} {}: {e}",
                path.display()
            ))
        })
    };
    Ok(match auth {
        NatsAuth::None => Credentials::None,
        NatsAuth::CredsFile(path) => {
            let text = read(path, "credentials file")?;
            // Parsed here so that a broken file is reported at once, not as a failed connect.
            async_nats::ConnectOptions::with_credentials(&text).map_err(|e| {
                LogError::Invalid(format!(
                    "NATS credentials file {} is not usable: {e}",
                    path.display(),
                ))
            })?;
            Credentials::Creds(text)
        }
        NatsAuth::NkeySeedFile(path) => {
            let text = read(path, "nkey seed file")?;
            let seed = text
                .lines()
                .map(str::trim)
                .find(|line| line.starts_with('S'))
                .unwrap_or_default()
                .to_owned();
            if let Err(e) = nkeys::KeyPair::from_seed(&seed) {
                return Err(LogError::Invalid(format!(
                    "NATS nkey seed file {} holds no valid seed (a line starting with S): {e}",
                    path.display(),
                )));
            }
            Credentials::Seed(seed)
        }
        NatsAuth::UserPassword { user, password } => {
            Credentials::UserPassword(user.clone(), password.expose().to_owned())
        }
        NatsAuth::Token(token) => Credentials::Token(token.expose().to_owned()),
    })
}

/// How often the client pings its server to notice one that stopped answering.
const PING_INTERVAL: Duration = Duration::from_secs(2);

/// The client options for one attempt: credentials, TLS, timeouts, reconnecting forever.
fn options(
    config: &NatsConfig,
    credentials: &Credentials,
) -> Result<async_nats::ConnectOptions, LogError> {
    let mut options = async_nats::ConnectOptions::new()
        .name("tributary")
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(config.request_timeout))
        // A frozen server keeps its socket open: three unanswered pings (about 6 s, not the
        // default 3 minutes) and the client moves to another server of the cluster.
        .ping_interval(PING_INTERVAL)
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 100).min(1000))
        });
    options = match credentials {
        Credentials::None => options,
        Credentials::Creds(text) => options
            .credentials(text)
            .map_err(|e| LogError::Invalid(format!("NATS credentials are not usable: {e}")))?,
        Credentials::Seed(seed) => options.nkey(seed.clone()),
        Credentials::UserPassword(user, password) => {
            options.user_and_password(user.clone(), password.clone())
        }
        Credentials::Token(token) => options.token(token.clone()),
    };
    let tls = &config.tls;
    if let Some(ca) = &tls.ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&tls.client_cert_file, &tls.client_key_file) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    if tls.is_set() || config.servers.iter().any(|s| s.starts_with("tls://")) {
        options = options.require_tls(true);
    }
    Ok(options)
}

/// Connects, retrying until `connect_timeout`. Once connected the client reconnects by itself
/// forever (every second at most between attempts). Logs and errors name the servers without
/// credentials (URLs carrying some are refused by `validate` anyway).
pub(crate) async fn connect(config: &NatsConfig) -> Result<async_nats::Client, LogError> {
    let credentials = load_credentials(&config.auth)?;
    let servers = redacted_servers(&config.servers);
    let started = Instant::now();
    loop {
        match options(config, &credentials)?
            .connect(config.servers.as_slice())
            .await
        {
            Ok(client) => return Ok(client),
            Err(error) if started.elapsed() < config.connect_timeout => {
                tracing::warn!(%error, %servers, "NATS not reachable yet");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => {
                return Err(LogError::storage(
                    format!(
                        "cannot connect to NATS at {servers} within {:?}",
                        config.connect_timeout
                    ),
                    error,
                ));
            }
        }
    }
}

fn storage_type(config: &NatsConfig) -> StorageType {
    match config.storage {
        Storage::File => StorageType::File,
        Storage::Memory => StorageType::Memory,
    }
}

fn events_config(config: &NatsConfig) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        description: Some("Tributary canonical events".into()),
        subjects: vec![config.events_filter()],
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        storage: storage_type(config),
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        max_age: config.max_age.unwrap_or_default(),
        max_bytes: config
            .max_bytes
            .map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)),
        max_messages: -1,
        max_messages_per_subject: -1,
        ..Default::default()
    }
}

/// The archive's age limit as JetStream takes it: zero for none, at least [`MIN_MAX_AGE`]
/// (so `Duration::ZERO`, "remove at once", removes after 100 ms).
fn archive_max_age(config: &NatsConfig) -> Duration {
    config
        .retention
        .archive_max_age
        .map_or(Duration::ZERO, |age| age.max(MIN_MAX_AGE))
}

/// JetStream's rule: the duplicate window may not exceed a non-zero `max_age`.
fn window_within(window: Duration, max_age: Duration) -> Duration {
    if max_age.is_zero() {
        window
    } else {
        window.min(max_age)
    }
}

fn archive_config(config: &NatsConfig) -> stream::Config {
    let max_age = archive_max_age(config);
    stream::Config {
        name: config.archive_stream(),
        description: Some("Tributary raw archive (sealed webhooks)".into()),
        subjects: vec![config.archive_filter()],
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        storage: storage_type(config),
        num_replicas: config.replicas,
        duplicate_window: window_within(config.duplicate_window, max_age),
        max_age,
        max_bytes: config
            .retention
            .archive_max_bytes
            .map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)),
        max_messages: -1,
        max_messages_per_subject: -1,
        ..Default::default()
    }
}

fn dead_letters_config(config: &NatsConfig) -> stream::Config {
    stream::Config {
        name: config.dead_letter_stream(),
        description: Some("Tributary dead letters (items an adapter could not map)".into()),
        subjects: vec![config.dead_letters_filter()],
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        storage: storage_type(config),
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        ..Default::default()
    }
}

/// Why an existing stream cannot serve as the log; `None` when it can. Settings that only
/// differ (replicas, storage, limits, window) are logged, not refused: the stream is shared and
/// its owner changes them with `nats stream edit`.
fn incompatibility(found: &stream::Config, wanted: &stream::Config) -> Option<String> {
    let name = &wanted.name;
    if found.subjects != wanted.subjects {
        return Some(format!(
            "stream {name} exists with subjects {:?}, expected {:?}",
            found.subjects, wanted.subjects
        ));
    }
    if found.retention != RetentionPolicy::Limits {
        return Some(format!(
            "stream {name} exists with retention {:?}: it would delete events when a consumer \
             acknowledges them; the log needs limits retention",
            found.retention
        ));
    }
    if found.max_messages_per_subject > 0 {
        return Some(format!(
            "stream {name} keeps only {} messages per subject: it would drop events",
            found.max_messages_per_subject
        ));
    }
    if found.discard == DiscardPolicy::New && (found.max_bytes > 0 || found.max_messages > 0) {
        tracing::warn!(stream = %name, "discard policy `new`: appends fail once the stream is full");
    }
    if found.sealed {
        return Some(format!("stream {name} is sealed: nothing can be appended"));
    }
    if found.mirror.is_some() {
        return Some(format!(
            "stream {name} is a mirror: it does not accept appends"
        ));
    }
    if found.duplicate_window < wanted.duplicate_window {
        tracing::warn!(
            stream = %name,
            found = ?found.duplicate_window,
            configured = ?wanted.duplicate_window,
            "the existing stream's duplicate window is shorter than configured: provider retries \
             after it are stored again"
        );
    }
    if found.num_replicas != wanted.num_replicas
        || found.storage != wanted.storage
        || found.max_age != wanted.max_age
        || found.max_bytes != wanted.max_bytes
    {
        tracing::warn!(
            stream = %name,
            replicas = found.num_replicas,
            storage = ?found.storage,
            max_age = ?found.max_age,
            max_bytes = found.max_bytes,
            "the existing stream's settings differ from the configuration; keeping the stream's"
        );
    }
    None
}

/// Updates `found`'s limits to `wanted`'s when they differ; returns the stream as it is now.
async fn apply_limits(
    js: &jetstream::Context,
    found: Stream,
    wanted: &stream::Config,
) -> Result<Stream, LogError> {
    let current = &found.cached_info().config;
    if current.max_age == wanted.max_age
        && current.max_bytes == wanted.max_bytes
        && current.duplicate_window == wanted.duplicate_window
    {
        return Ok(found);
    }
    let name = &wanted.name;
    let updated = stream::Config {
        max_age: wanted.max_age,
        max_bytes: wanted.max_bytes,
        duplicate_window: wanted.duplicate_window,
        ..current.clone()
    };
    js.update_stream(&updated)
        .await
        .map_err(|e| LogError::storage(format!("cannot apply retention to stream {name}"), e))?;
    tracing::info!(
        stream = %name,
        max_age = ?wanted.max_age,
        max_bytes = wanted.max_bytes,
        "applied the configured retention to the existing stream"
    );
    js.get_stream(name)
        .await
        .map_err(|e| LogError::storage(format!("cannot read stream {name}"), e))
}

async fn ensure_stream(
    js: &jetstream::Context,
    wanted: stream::Config,
    limits: Limits,
) -> Result<Stream, LogError> {
    let name = wanted.name.clone();
    match js.get_stream(&name).await {
        Ok(found) => {
            let current = &found.cached_info().config;
            // Limits about to be applied are no difference worth a warning.
            let compared = match limits {
                Limits::Kept => wanted.clone(),
                Limits::Applied => stream::Config {
                    max_age: current.max_age,
                    max_bytes: current.max_bytes,
                    duplicate_window: current.duplicate_window,
                    ..wanted.clone()
                },
            };
            if let Some(reason) = incompatibility(current, &compared) {
                return Err(LogError::Invalid(format!(
                    "{reason}; refusing to start (fix or remove the stream, or configure \
                     another [log.nats] stream)"
                )));
            }
            match limits {
                Limits::Kept => Ok(found),
                Limits::Applied => apply_limits(js, found, &wanted).await,
            }
        }
        Err(error) => {
            let missing = matches!(
                error.kind(),
                GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND
            );
            if !missing {
                return Err(LogError::storage(
                    format!("cannot reach JetStream for stream {name}"),
                    error,
                ));
            }
            match js.create_stream(wanted.clone()).await {
                Ok(stream) => {
                    tracing::info!(stream = %name, replicas = wanted.num_replicas, "created stream");
                    Ok(stream)
                }
                // Another instance may have created it at the same moment.
                Err(create) => js
                    .get_stream(&name)
                    .await
                    .map_err(|_| LogError::storage(format!("cannot create stream {name}"), create)),
            }
        }
    }
}

/// A KV bucket is a stream named `KV_<bucket>` on `$KV.<bucket>.>` with one message per key.
/// async-nats' own `create_key_value` reads account fields nats-server 2.9 does not send, so
/// the stream is created here with the same settings.
fn bucket_config(
    config: &NatsConfig,
    bucket: &str,
    description: &str,
    max_age: Duration,
) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.into()),
        subjects: vec![format!("$KV.{bucket}.>")],
        retention: RetentionPolicy::Limits,
        max_messages_per_subject: 1,
        max_messages: -1,
        max_bytes: -1,
        max_message_size: -1,
        storage: storage_type(config),
        num_replicas: config.replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        max_age,
        // JetStream's rule: the duplicate window may not exceed max_age (2 minutes otherwise,
        // as async-nats sets it).
        duplicate_window: if max_age.is_zero() {
            Duration::from_secs(120)
        } else {
            max_age.min(Duration::from_secs(120))
        },
        ..Default::default()
    }
}

/// Finds or creates a KV bucket whose entries expire after `max_age` (zero: never). An
/// existing bucket with another `max_age` keeps it (logged) with [`Limits::Kept`], like a
/// stream, and is updated with [`Limits::Applied`].
async fn ensure_bucket(
    js: &jetstream::Context,
    config: &NatsConfig,
    bucket: String,
    description: &str,
    max_age: Duration,
    limits: Limits,
) -> Result<kv::Store, LogError> {
    if let Ok(store) = js.get_key_value(&bucket).await {
        if let Ok(stream) = js.get_stream(format!("KV_{bucket}")).await {
            let found = stream.cached_info().config.max_age;
            if limits == Limits::Applied {
                let wanted = bucket_config(config, &bucket, description, max_age);
                apply_limits(js, stream, &wanted).await?;
            } else if found != max_age {
                tracing::warn!(
                    %bucket,
                    found = ?found,
                    configured = ?max_age,
                    "the existing KV bucket's max_age differs from the configuration; keeping \
                     the bucket's (change it with `nats kv edit`)"
                );
            }
        }
        return Ok(store);
    }
    if let Err(create) = js
        .create_stream(bucket_config(config, &bucket, description, max_age))
        .await
    {
        tracing::debug!(%create, %bucket, "bucket creation failed; perhaps created meanwhile");
    }
    js.get_key_value(&bucket)
        .await
        .map_err(|e| LogError::storage(format!("cannot create KV bucket {bucket}"), e))
}

/// Finds or creates everything the log uses.
pub(crate) async fn ensure(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> Result<Parts, LogError> {
    let events = ensure_stream(js, events_config(config), Limits::Kept).await?;
    let dead = ensure_stream(js, dead_letters_config(config), Limits::Kept).await?;
    let consumers = ensure_bucket(
        js,
        config,
        config.consumers_bucket(),
        "Tributary durable consumer positions",
        Duration::ZERO,
        Limits::Kept,
    )
    .await?;
    let dead_state = ensure_bucket(
        js,
        config,
        config.dead_letter_bucket(),
        "Tributary dead-letter redrive state",
        Duration::ZERO,
        Limits::Kept,
    )
    .await?;
    let state_stream = format!("KV_{}", config.dead_letter_bucket());
    let dead_state_stream = js
        .get_stream(&state_stream)
        .await
        .map_err(|e| LogError::storage(format!("cannot read stream {state_stream}"), e))?;
    let horizon = config.retention.dedup_horizon;
    let dedup = if horizon.is_zero() {
        None
    } else {
        Some(
            ensure_bucket(
                js,
                config,
                config.dedup_bucket(),
                "Tributary dedup keys (source, provider event id) seen, for the dedup horizon",
                horizon,
                Limits::Kept,
            )
            .await?,
        )
    };
    let archive = ensure_stream(js, archive_config(config), Limits::Applied).await?;
    let archive_links = ensure_bucket(
        js,
        config,
        config.archive_links_bucket(),
        "Tributary raw-archive links ((source, content key) -> entry id, sequences, dead letters)",
        archive_max_age(config),
        Limits::Applied,
    )
    .await?;
    let links_stream = format!("KV_{}", config.archive_links_bucket());
    let archive_links_stream = js
        .get_stream(&links_stream)
        .await
        .map_err(|e| LogError::storage(format!("cannot read stream {links_stream}"), e))?;
    Ok(Parts {
        events,
        dead,
        consumers,
        dead_state,
        dead_state_stream,
        dedup,
        archive,
        archive_links,
        archive_links_stream,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_subjects_or_work_queue_retention_are_refused() {
        let config = NatsConfig::new(vec!["nats://127.0.0.1:4222".into()]);
        let wanted = events_config(&config);
        assert!(incompatibility(&wanted, &wanted).is_none());
        let other = stream::Config {
            subjects: vec!["orders.>".into()],
            ..wanted.clone()
        };
        let reason = incompatibility(&other, &wanted).expect("refused");
        assert!(reason.contains("orders.>"), "{reason}");
        let queue = stream::Config {
            retention: RetentionPolicy::WorkQueue,
            ..wanted.clone()
        };
        assert!(incompatibility(&queue, &wanted).is_some());
    }
}
