//! The event log on NATS JetStream, for running many stateless Tributary instances against one
//! shared stream (see docs/deployment.md).
//!
//! The mapping, in short:
//! - canonical events are messages of one stream (`TRIBUTARY_EVENTS` by default) on subjects
//!   `<prefix>.events.<source>.<type>`; the **stream sequence is the event sequence**;
//! - dedup is JetStream's within the stream's duplicate window (the `Nats-Msg-Id` header is
//!   `<source>:<dedup key>`: the provider event id, or `rules::dedup_key` for a replay) and,
//!   beyond it, a KV bucket `<stream>_DEDUP` of the keys seen, kept for the dedup horizon
//!   (see `dedup`);
//! - dead letters are messages of a second stream (`<stream>_DEAD_LETTERS`, the message
//!   sequence is the dead-letter id); their redrive state lives in a KV bucket;
//! - raw-archive entries are messages of a third stream (`<stream>_ARCHIVE`, the message
//!   sequence is the entry id); what each webhook stored lives in a KV bucket (see `archive`);
//! - durable consumer positions live in a KV bucket, updated with compare-and-set so acks stay
//!   cumulative whichever instance receives them;
//! - every instance follows the stream with an ordered consumer, so an event appended through
//!   one instance wakes live subscribers on all of them.

mod append;
mod archive;
mod consumers;
mod dead_letters;
mod dedup;
mod read;
mod setup;
mod tasks;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::Stream;
use async_trait::async_trait;
use futures_util::future::join_all;
use prost::Message as _;
use tokio::sync::watch;
use tributary_event_log::rules;
use tributary_event_log::{
    AppendOutcome, AppendRequest, EventLog, LogError, PendingEvent, RedriveOutcome, Reseal,
    ResealOutcome, Retention, SourceName, StoredEvent,
};
use tributary_model::v1::{ArchiveEntry, Consumer, DeadLetter, Event, Filter};
use tributary_model::well_known::Timestamp;

/// Where JetStream keeps the streams' data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// On disk (the default).
    #[default]
    File,
    /// In memory only: lost when every replica restarts. Tests and benchmarks.
    Memory,
}

/// A password or token: kept out of `Debug` output, and so out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How the log authenticates to NATS. Credentials never go in server URLs (refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NatsAuth {
    /// No credentials.
    #[default]
    None,
    /// A NATS credentials file (user JWT and nkey seed, e.g. from `nsc`).
    CredsFile(PathBuf),
    /// A file holding a user nkey seed (`SU...`).
    NkeySeedFile(PathBuf),
    /// User name and password.
    UserPassword { user: String, password: Secret },
    /// A token.
    Token(Secret),
}

/// TLS to NATS: required when a server URL is `tls://` or any file here is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// PEM CA certificate(s) the servers' certificates chain to; default: the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, when the servers verify clients (with `client_key_file`).
    pub client_cert_file: Option<PathBuf>,
    /// PEM key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

impl NatsTls {
    fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.client_cert_file.is_some() || self.client_key_file.is_some()
    }
}

/// Why `url` cannot name a NATS server, `None` when it can: it must be `nats://` or `tls://`
/// and carry no credentials (`user:password@` or `token@`): those go in files or the
/// environment, never in a URL, which ends up in logs and error messages. The reason never
/// repeats the credentials.
pub fn server_url_problem(url: &str) -> Option<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some(format!(
            "{:?} is not a NATS server URL (nats://host:port or tls://host:port)",
            redact_url(url)
        ));
    };
    if scheme != "nats" && scheme != "tls" {
        return Some(format!(
            "{} is not a NATS server URL: the scheme must be nats:// or tls://",
            redact_url(url)
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Some(format!(
            "{} carries credentials in the URL; refused (URLs end up in logs): give them in \
             [log.nats] instead: creds_file, nkey_seed_file, user with password_file or \
             password_env, or token_file",
            redact_url(url)
        ));
    }
    if authority.is_empty() {
        return Some(format!("{} names no host", redact_url(url)));
    }
    None
}

/// `url` with any credentials (`user:password@`, `token@`) replaced by `***`, for logs and
/// errors.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{host}{tail}"),
        None => format!("{host}{tail}"),
    }
}

/// The server URLs, credentials redacted, comma-separated.
pub(crate) fn redacted_servers(servers: &[String]) -> String {
    servers
        .iter()
        .map(|s| redact_url(s))
        .collect::<Vec<_>>()
        .join(",")
}

/// Settings of the JetStream log. Its `Debug` output shows the servers without credentials
/// and no secret.
#[derive(Clone)]
pub struct NatsConfig {
    /// NATS server URLs (`nats://host:port`, or `tls://host:port`); any one of a cluster is
    /// enough, more help the first connection. Never with credentials (see `auth`).
    pub servers: Vec<String>,
    /// Credentials.
    pub auth: NatsAuth,
    /// TLS settings.
    pub tls: NatsTls,
    /// Name of the events stream; the other names derive from it (`<stream>_DEAD_LETTERS`,
    /// `<stream>_ARCHIVE`, KV buckets `<stream>_CONSUMERS`, `<stream>_DEAD_LETTER_STATE`,
    /// `<stream>_DEDUP` and `<stream>_ARCHIVE_LINKS`).
    pub stream: String,
    /// First subject token: events on `<prefix>.events.>`, dead letters on
    /// `<prefix>.dead_letters.>`, raw-archive entries on `<prefix>.archive.>`.
    pub subject_prefix: String,
    /// Replicas of every stream and bucket (1, or 3 on a 3-node cluster).
    pub replicas: usize,
    /// File or memory storage.
    pub storage: Storage,
    /// JetStream's dedup window (`Nats-Msg-Id`). Beyond it the `<stream>_DEDUP` bucket keeps
    /// dedup for `retention.dedup_horizon`.
    pub duplicate_window: Duration,
    /// Hard age limit JetStream enforces itself, whatever durable consumers still need.
    pub max_age: Option<Duration>,
    /// Hard size limit JetStream enforces itself (oldest messages go first), whatever durable
    /// consumers still need.
    pub max_bytes: Option<u64>,
    /// Retention Tributary applies itself, like the embedded log: never past what a durable
    /// consumer has not acknowledged unless `override_consumers`; dead letters by age and
    /// count; `dedup_horizon` is the `<stream>_DEDUP` bucket's `max_age` (zero: no bucket);
    /// the archive's limits are the `<stream>_ARCHIVE` stream's own, set on every start.
    pub retention: Retention,
    /// How long start-up waits for NATS.
    pub connect_timeout: Duration,
    /// Bound on every JetStream request and publish acknowledgement.
    pub request_timeout: Duration,
    /// How long `append` keeps retrying while JetStream has no leader or cannot be reached
    /// (an election, a node lost, a reconnect) before it fails: the webhook's own deadline
    /// less a margin ([`append_budget_within`]), so the provider gets a 2xx after a pause
    /// rather than a 5xx. Zero: one attempt.
    pub append_budget: Duration,
}

/// The [`NatsConfig::append_budget`] that fits in a request deadline of `deadline`: a tenth
/// of it (at least a second, at most five) is left for the rest of the request (reading the
/// body, the adapter, the answer).
pub fn append_budget_within(deadline: Duration) -> Duration {
    let margin = (deadline / 10).clamp(Duration::from_secs(1), Duration::from_secs(5));
    deadline.saturating_sub(margin)
}

impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let servers: Vec<String> = self.servers.iter().map(|s| redact_url(s)).collect();
        f.debug_struct("NatsConfig")
            .field("servers", &servers)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("replicas", &self.replicas)
            .field("storage", &self.storage)
            .field("duplicate_window", &self.duplicate_window)
            .field("max_age", &self.max_age)
            .field("max_bytes", &self.max_bytes)
            .field("retention", &self.retention)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("append_budget", &self.append_budget)
            .finish()
    }
}

impl NatsConfig {
    /// Defaults for `servers`: no credentials, stream `TRIBUTARY_EVENTS`, R1 file storage, a
    /// 4-day dedup window, default retention (no event limits), 27 s of append retries (the
    /// HTTP front end's default 30 s request deadline, less its margin).
    pub fn new(servers: Vec<String>) -> Self {
        Self {
            servers,
            auth: NatsAuth::None,
            tls: NatsTls::default(),
            stream: "TRIBUTARY_EVENTS".into(),
            subject_prefix: "tributary".into(),
            replicas: 1,
            storage: Storage::File,
            duplicate_window: Duration::from_secs(4 * 24 * 3600),
            max_age: None,
            max_bytes: None,
            retention: Retention::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            append_budget: append_budget_within(Duration::from_secs(30)),
        }
    }

    fn events_filter(&self) -> String {
        format!("{}.events.>", self.subject_prefix)
    }

    fn dead_letters_filter(&self) -> String {
        format!("{}.dead_letters.>", self.subject_prefix)
    }

    fn archive_filter(&self) -> String {
        format!("{}.archive.>", self.subject_prefix)
    }

    fn archive_stream(&self) -> String {
        format!("{}_ARCHIVE", self.stream)
    }

    fn archive_links_bucket(&self) -> String {
        format!("{}_ARCHIVE_LINKS", self.stream)
    }

    fn dead_letter_stream(&self) -> String {
        format!("{}_DEAD_LETTERS", self.stream)
    }

    fn consumers_bucket(&self) -> String {
        format!("{}_CONSUMERS", self.stream)
    }

    fn dead_letter_bucket(&self) -> String {
        format!("{}_DEAD_LETTER_STATE", self.stream)
    }

    fn dedup_bucket(&self) -> String {
        format!("{}_DEDUP", self.stream)
    }
}

/// The JetStream event log. Cheap to clone.
#[derive(Clone)]
pub struct NatsLog {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: NatsConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    events: Stream,
    dead: Stream,
    consumers: jetstream::kv::Store,
    dead_state: jetstream::kv::Store,
    /// The stream behind `dead_state`, which dead-letter retention sweeps.
    dead_state_stream: Stream,
    /// Where the next dead-letter state sweep continues (0: from the start).
    sweep_after: AtomicU64,
    /// Keys seen, beyond the duplicate window; `None` with a zero dedup horizon.
    dedup: Option<jetstream::kv::Store>,
    /// The raw archive's entries and their links (see `archive`).
    archive: Stream,
    archive_links: jetstream::kv::Store,
    /// The stream behind `archive_links`, which archive retention sweeps.
    archive_links_stream: Stream,
    /// Where the next link sweep continues (0: from the start).
    links_sweep_after: AtomicU64,
    last_tx: watch::Sender<u64>,
    last_rx: watch::Receiver<u64>,
    health: Mutex<Result<(), String>>,
    /// Dedup keys of stored items whose KV write failed, for the repair task (see `dedup`).
    unrecorded: Mutex<Vec<(String, u64)>>,
}

/// Dedup keys waiting for the repair task at most; beyond it the oldest are dropped (logged):
/// JetStream's duplicate window still dedups their items.
const MAX_UNRECORDED: usize = 100_000;

impl NatsLog {
    /// Connects to NATS (waiting up to `connect_timeout`), creates the streams and buckets
    /// when absent, refuses an incompatible existing stream, and starts following the stream.
    pub async fn connect(config: NatsConfig) -> Result<Self, LogError> {
        setup::validate(&config)?;
        let client = setup::connect(&config).await?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout)
            .build(client.clone());
        let parts = setup::ensure(&js, &config).await?;
        let last = parts.events.cached_info().state.last_sequence;
        let (last_tx, last_rx) = watch::channel(last);
        let inner = Arc::new(Inner {
            config,
            client,
            js,
            events: parts.events,
            dead: parts.dead,
            consumers: parts.consumers,
            dead_state: parts.dead_state,
            dead_state_stream: parts.dead_state_stream,
            sweep_after: AtomicU64::new(0),
            dedup: parts.dedup,
            archive: parts.archive,
            archive_links: parts.archive_links,
            archive_links_stream: parts.archive_links_stream,
            links_sweep_after: AtomicU64::new(0),
            last_tx,
            last_rx,
            health: Mutex::new(Ok(())),
            unrecorded: Mutex::new(Vec::new()),
        });
        tasks::spawn(&inner);
        tracing::info!(
            stream = %inner.config.stream,
            last_sequence = last,
            "event log on NATS JetStream"
        );
        Ok(Self { inner })
    }
}

impl Inner {
    fn set_health(&self, status: Result<(), String>) {
        if let Ok(mut health) = self.health.lock() {
            *health = status;
        }
    }

    /// Queues dedup keys for the repair task.
    fn queue_unrecorded(&self, keys: Vec<(String, u64)>) {
        if keys.is_empty() {
            return;
        }
        if let Ok(mut queue) = self.unrecorded.lock() {
            queue.extend(keys);
            if queue.len() > MAX_UNRECORDED {
                let dropped = queue.len() - MAX_UNRECORDED;
                queue.drain(..dropped);
                tracing::warn!(
                    dropped,
                    "too many dedup keys waiting; the oldest are left to JetStream's \
                     duplicate window"
                );
            }
        }
    }

    /// The dedup keys queued for the repair task, emptying the queue.
    fn take_unrecorded(&self) -> Vec<(String, u64)> {
        self.unrecorded
            .lock()
            .map(|mut queue| std::mem::take(&mut *queue))
            .unwrap_or_default()
    }

    /// Announces that the stream holds at least `sequence`.
    fn saw(&self, sequence: u64) {
        self.last_tx.send_if_modified(|last| {
            let newer = sequence > *last;
            if newer {
                *last = sequence;
            }
            newer
        });
    }

    fn known_last(&self) -> u64 {
        *self.last_rx.borrow()
    }

    /// The newest sequence, asked of the stream leader.
    async fn fresh_last(&self) -> Result<u64, LogError> {
        let info = read::stream_info(&self.events).await?;
        self.saw(info.state.last_sequence);
        Ok(info.state.last_sequence.max(self.known_last()))
    }

    /// Fails fast while the connection is down instead of queueing publishes that would time
    /// out (and might still be stored after the caller gave up).
    fn require_connection(&self) -> Result<(), LogError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => {
                let reason = unreachable_reason(&state);
                self.set_health(Err(reason.clone()));
                Err(LogError::unavailable(reason))
            }
        }
    }

    fn event_subject(&self, source: &str, event_type: &str) -> String {
        format!(
            "{}.events.{}.{}",
            self.config.subject_prefix,
            token(source),
            type_tokens(event_type)
        )
    }

    fn dead_letter_subject(&self, source: &str) -> String {
        format!(
            "{}.dead_letters.{}",
            self.config.subject_prefix,
            token(source)
        )
    }

    fn archive_subject(&self, source: &str) -> String {
        format!("{}.archive.{}", self.config.subject_prefix, token(source))
    }

    /// Publishes `events` of `source` in order, except those whose dedup key is recorded, and
    /// waits for every acknowledgement, then records their keys. Only acknowledged,
    /// non-duplicate messages count as stored, and duplicates of a message in `sent` (published
    /// by an earlier attempt of the same append, whose acknowledgement was lost): those were
    /// stored by this append. Every message published is added to `sent`.
    async fn publish_events(
        &self,
        source: &SourceName,
        events: &[PendingEvent],
        outcome: &mut AppendOutcome,
        sent: &mut HashSet<String>,
    ) -> Result<(), LogError> {
        // Replays dedup apart from their originals (`rules::dedup_key`).
        let ids: Vec<_> = events.iter().map(PendingEvent::dedup_key).collect();
        let keys: Vec<String> = ids
            .iter()
            .map(|id| dedup::key(dedup::Kind::Event, source.as_str(), id))
            .collect();
        let seen = dedup::seen(self, &keys).await?;
        let mut pending = Vec::with_capacity(events.len());
        let mut this_attempt = HashSet::new();
        let mut pending_keys = Vec::with_capacity(events.len());
        for (((event, id), key), seen) in events.iter().zip(&ids).zip(keys).zip(seen) {
            if seen {
                outcome.duplicates += 1;
                continue;
            }
            // Stored as given (an adapter's bytes, the envelope fields appended); the stream
            // sequence is the event's, appended when it is read.
            let id = message_id(source, id);
            let message = PublishMessage::build()
                .payload(event.encode())
                .message_id(id.as_str());
            let subject = self.event_subject(source.as_str(), event.event_type());
            pending.push(self.js.send_publish(subject, message).await.map_err(|e| {
                LogError::storage(format!("cannot publish to {}", self.config.stream), e)
            })?);
            pending_keys.push((key, ours(sent, &mut this_attempt, id)));
        }
        let acks = join_all(pending.into_iter().map(|ack| ack.into_future())).await;
        let mut stored = Vec::with_capacity(acks.len());
        for (ack, (key, ours)) in acks.into_iter().zip(pending_keys) {
            let ack = ack.map_err(|e| {
                LogError::storage(
                    format!(
                        "JetStream did not acknowledge an event ({})",
                        self.config.stream
                    ),
                    e,
                )
            })?;
            if ack.duplicate && !(ours && ack.sequence != 0) {
                outcome.duplicates += 1;
            } else {
                self.saw(ack.sequence);
                outcome.sequences.push(ack.sequence);
            }
            stored.push((key, ack.sequence));
        }
        dedup::remember(self, stored).await;
        Ok(())
    }

    /// Publishes `letters` like `publish_events` does events; returns the ids of those newly
    /// stored.
    async fn publish_dead_letters(
        &self,
        source: &SourceName,
        letters: &[DeadLetter],
        outcome: &mut AppendOutcome,
        sent: &mut HashSet<String>,
    ) -> Result<Vec<u64>, LogError> {
        let keys: Vec<String> = letters
            .iter()
            .map(|l| {
                dedup::key(
                    dedup::Kind::DeadLetter,
                    source.as_str(),
                    &l.provider_event_id,
                )
            })
            .collect();
        let seen = dedup::seen(self, &keys).await?;
        let mut pending = Vec::with_capacity(letters.len());
        let mut this_attempt = HashSet::new();
        let mut pending_keys = Vec::with_capacity(letters.len());
        for ((letter, key), seen) in letters.iter().zip(keys).zip(seen) {
            if seen {
                outcome.duplicates += 1;
                continue;
            }
            let mut stored = letter.clone();
            stored.id = 0;
            let id = message_id(source, &letter.provider_event_id);
            let message = PublishMessage::build()
                .payload(stored.encode_to_vec().into())
                .message_id(id.as_str());
            let subject = self.dead_letter_subject(source.as_str());
            pending.push(self.js.send_publish(subject, message).await.map_err(|e| {
                LogError::storage(
                    format!("cannot publish to {}", self.config.dead_letter_stream()),
                    e,
                )
            })?);
            pending_keys.push((key, ours(sent, &mut this_attempt, id)));
        }
        let acks = join_all(pending.into_iter().map(|ack| ack.into_future())).await;
        let mut stored = Vec::with_capacity(acks.len());
        let mut ids = Vec::with_capacity(acks.len());
        for (ack, (key, ours)) in acks.into_iter().zip(pending_keys) {
            let ack = ack.map_err(|e| {
                LogError::storage(
                    format!(
                        "JetStream did not acknowledge a dead letter ({})",
                        self.config.dead_letter_stream()
                    ),
                    e,
                )
            })?;
            if ack.duplicate && !(ours && ack.sequence != 0) {
                outcome.duplicates += 1;
            } else {
                outcome.dead_lettered += 1;
                ids.push(ack.sequence);
            }
            stored.push((key, ack.sequence));
        }
        dedup::remember(self, stored).await;
        Ok(ids)
    }

    /// Records the result of a write for `/readyz`.
    fn record<T>(&self, result: Result<T, LogError>) -> Result<T, LogError> {
        match &result {
            Ok(_) => self.set_health(Ok(())),
            Err(error @ LogError::Storage { .. }) => self.set_health(Err(error.detail())),
            Err(_) => {}
        }
        result
    }
}

/// Whether a duplicate acknowledgement of `id` would be this append's own message: `id` was
/// published by an earlier attempt (`sent`) and is its first copy in this attempt (a second
/// copy within the request is a duplicate of the first). Records `id` in both sets.
fn ours(sent: &mut HashSet<String>, this_attempt: &mut HashSet<String>, id: String) -> bool {
    let first_copy = this_attempt.insert(id.clone());
    let sent_before = !sent.insert(id);
    first_copy && sent_before
}

/// Shown on `/readyz` and logged: names no server (URLs stay out of health strings).
fn unreachable_reason(state: &async_nats::connection::State) -> String {
    format!("NATS JetStream is unreachable (connection {state}); reconnecting")
}

/// The `Nats-Msg-Id`: `<source>:<dedup key>` (the provider event id, or `rules::dedup_key`
/// for an event). A [`SourceName`] holds no `:`, so the id splits at its first `:` and
/// (source, id) pairs cannot collide: `s` + `x:y` is `s:x:y`, and `s:x` is no source name.
/// Ids that are not plain printable ASCII (they come from providers) are hex-encoded behind a
/// `%`, so no byte can break the header and distinct ids stay distinct.
pub(crate) fn message_id(source: &SourceName, id: &str) -> String {
    let plain = id.bytes().all(|b| (0x21..=0x7e).contains(&b)) && !id.starts_with('%');
    if plain {
        format!("{source}:{id}")
    } else {
        let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{source}:%{hex}")
    }
}

/// One subject token: characters outside `A-Z a-z 0-9 _ -` become `_`.
pub(crate) fn token(text: &str) -> String {
    if text.is_empty() {
        return "_".into();
    }
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A dotted canonical type (`consent.granted`) as subject tokens.
fn type_tokens(event_type: &str) -> String {
    if event_type.is_empty() {
        return "unknown".into();
    }
    event_type
        .split('.')
        .map(token)
        .collect::<Vec<_>>()
        .join(".")
}

#[async_trait]
impl EventLog for NatsLog {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, LogError> {
        let source = rules::validate_append(&request)?;
        let inner = &self.inner;
        let budget = inner.config.append_budget;
        let result = append::append(inner, &source, request, budget).await;
        inner.record(result)
    }

    async fn read_after(&self, after: u64, max: usize) -> Result<Vec<Event>, LogError> {
        read::events_after(&self.inner, after, max).await
    }

    async fn read_stored_after(
        &self,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        read::stored_events_after(&self.inner, after, max).await
    }

    async fn sequence_before_time(&self, time: Timestamp) -> Result<u64, LogError> {
        read::sequence_before_time(&self.inner, time).await
    }

    async fn first_sequence(&self) -> Result<u64, LogError> {
        read::first_sequence(&self.inner).await
    }

    async fn dead_letters(&self, after: u64, max: usize) -> Result<Vec<DeadLetter>, LogError> {
        dead_letters::list(&self.inner, after, max).await
    }

    async fn redrive(
        &self,
        id: u64,
        events: Vec<PendingEvent>,
        still_failing: Option<String>,
    ) -> Result<RedriveOutcome, LogError> {
        self.inner.require_connection()?;
        let result = dead_letters::redrive(&self.inner, id, events, still_failing).await;
        self.inner.record(result)
    }

    async fn open_consumer(
        &self,
        name: &str,
        start_after: u64,
        filter: &Filter,
    ) -> Result<Consumer, LogError> {
        consumers::open(&self.inner, name, start_after, filter).await
    }

    async fn ack(&self, name: &str, sequence: u64) -> Result<Consumer, LogError> {
        consumers::move_to(&self.inner, name, sequence, false).await
    }

    async fn reset_consumer(&self, name: &str, after: u64) -> Result<Consumer, LogError> {
        consumers::move_to(&self.inner, name, after, true).await
    }

    async fn delete_consumer(&self, name: &str) -> Result<bool, LogError> {
        consumers::delete(&self.inner, name).await
    }

    async fn consumers(&self) -> Result<Vec<Consumer>, LogError> {
        consumers::list(&self.inner).await
    }

    async fn archive_entry(&self, id: u64) -> Result<Option<ArchiveEntry>, LogError> {
        archive::entry(&self.inner, id).await
    }

    async fn archive_entries(&self, after: u64, max: usize) -> Result<Vec<ArchiveEntry>, LogError> {
        archive::list(&self.inner, after, max).await
    }

    async fn reseal_archive_entry(&self, reseal: Reseal) -> Result<ResealOutcome, LogError> {
        rules::validate_reseal(&reseal)?;
        archive::reseal(&self.inner, &reseal).await
    }

    async fn reseal_dead_letter(&self, reseal: Reseal) -> Result<ResealOutcome, LogError> {
        rules::validate_reseal(&reseal)?;
        dead_letters::reseal(&self.inner, &reseal).await
    }

    async fn sequence_of(
        &self,
        source: &str,
        provider_event_id: &str,
    ) -> Result<Option<u64>, LogError> {
        let key = dedup::key(dedup::Kind::Event, source, provider_event_id);
        let Some(sequence) = dedup::recorded_sequence(&self.inner, &key).await? else {
            return Ok(None);
        };
        // The key outlives its event (dedup horizon); events go only from the front.
        let first = read::first_sequence(&self.inner).await?;
        Ok((sequence >= first).then_some(sequence))
    }

    fn last_sequence(&self) -> watch::Receiver<u64> {
        self.inner.last_rx.clone()
    }

    fn health(&self) -> Result<(), String> {
        let inner = &self.inner;
        let state = inner.client.connection_state();
        if state != async_nats::connection::State::Connected {
            return Err(unreachable_reason(&state));
        }
        inner
            .health
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| Err("health lock poisoned".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_header_safe_and_distinct() {
        let source = |name: &str| SourceName::new(name).expect("valid");
        assert_eq!(message_id(&source("arcadia"), "whk_1"), "arcadia:whk_1");
        assert_eq!(message_id(&source("arcadia"), "a b"), "arcadia:%612062");
        assert_eq!(message_id(&source("arcadia"), "%61"), "arcadia:%253631");
        assert_ne!(
            message_id(&source("s"), "a\r\nb"),
            message_id(&source("s"), "a  b")
        );
        // The first `:` ends the source: `s:x` cannot be one, so `s` + `x:y` is unambiguous.
        assert_eq!(message_id(&source("s"), "x:y"), "s:x:y");
        assert!(SourceName::new("s:x").is_err());
    }

    #[test]
    fn only_a_retried_first_copy_is_this_appends_own_message() {
        let mut sent = HashSet::new();
        let mut first = HashSet::new();
        assert!(!ours(&mut sent, &mut first, "s:a".into()));
        assert!(!ours(&mut sent, &mut first, "s:a".into()), "second copy");
        let mut retry = HashSet::new();
        assert!(ours(&mut sent, &mut retry, "s:a".into()));
        assert!(!ours(&mut sent, &mut retry, "s:a".into()), "second copy");
        assert!(!ours(&mut sent, &mut retry, "s:b".into()), "never sent");
    }

    #[test]
    fn the_append_budget_leaves_a_margin() {
        let secs = |s| Duration::from_secs(s);
        assert_eq!(append_budget_within(secs(30)), secs(27));
        assert_eq!(append_budget_within(secs(5)), secs(4));
        assert_eq!(append_budget_within(secs(1)), secs(0));
        assert_eq!(append_budget_within(secs(120)), secs(115));
    }

    #[test]
    fn urls_with_credentials_are_refused_without_repeating_them() {
        for url in [
            "nats://10.0.0.1:4222",
            "tls://nats-1:4222",
            "nats://[::1]:4222",
        ] {
            assert_eq!(server_url_problem(url), None, "{url}");
        }
        for (url, shown) in [
            ("nats://alice:hunter2@h:4222", "nats://***@h:4222"),
            ("tls://tok3n@h:4222", "tls://***@h:4222"),
            ("nats://:hunter2@h", "nats://***@h"),
            ("nats://a:b@c@h:1", "nats://***@h:1"),
        ] {
            let problem = server_url_problem(url).expect("refused");
            assert!(problem.contains(shown), "{problem}");
            assert!(problem.contains("password_file"), "{problem}");
            for secret in ["hunter2", "tok3n", "alice"] {
                assert!(!problem.contains(secret), "{problem}");
            }
        }
        let bad_scheme = server_url_problem("redis://u:hunter2@h").expect("refused");
        assert!(bad_scheme.contains("nats:// or tls://"), "{bad_scheme}");
        assert!(!bad_scheme.contains("hunter2"), "{bad_scheme}");
        let no_scheme = server_url_problem("u:hunter2@h:4222").expect("refused");
        assert!(!no_scheme.contains("hunter2"), "{no_scheme}");
        assert!(server_url_problem("nats://").is_some());
    }

    #[test]
    fn redaction_removes_only_credentials() {
        assert_eq!(redact_url("nats://h:4222"), "nats://h:4222");
        assert_eq!(redact_url("nats://u:p@h:4222/x?y"), "nats://***@h:4222/x?y");
        assert_eq!(redact_url("u:p@h:4222"), "***@h:4222");
        assert_eq!(
            redacted_servers(&["nats://a:1".into(), "tls://t@b:2".into()]),
            "nats://a:1,tls://***@b:2"
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_and_health() {
        let config = NatsConfig {
            auth: NatsAuth::UserPassword {
                user: "alice".into(),
                password: Secret::new("hunter2"),
            },
            ..NatsConfig::new(vec!["nats://10.1.2.3:4222".into()])
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Secret(***)"), "{shown}");
        let in_url = NatsConfig::new(vec!["nats://bob:hunter2@h:4222".into()]);
        let shown = format!("{in_url:?}");
        assert!(shown.contains("nats://***@h:4222"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("bob"),
            "{shown}"
        );
        let token = format!("{:?}", NatsAuth::Token(Secret::new("tok3n")));
        assert_eq!(token, "Token(Secret(***))");
        let reason = unreachable_reason(&async_nats::connection::State::Disconnected);
        assert_eq!(
            reason,
            "NATS JetStream is unreachable (connection disconnected); reconnecting"
        );
    }

    #[test]
    fn subjects_are_valid_tokens() {
        assert_eq!(token("finicity-sandbox"), "finicity-sandbox");
        assert_eq!(token("a.b *>"), "a_b___");
        assert_eq!(type_tokens("consent.granted"), "consent.granted");
        assert_eq!(type_tokens("a..b"), "a._.b");
        assert_eq!(type_tokens(""), "unknown");
    }
}
