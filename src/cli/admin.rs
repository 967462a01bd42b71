//! `tributary dead-letters ...` and `tributary consumers ...`: operator commands over the
//! Admin gRPC service of a running server.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tonic::Status;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tributary_model::v1::{
    DeadLetter, DeleteConsumerRequest, ListConsumersRequest, ListDeadLettersRequest,
    RedriveDeadLettersRequest, ResetConsumerRequest, reset_consumer_request::Position,
};

use super::endpoint::{self, Plane};
use super::table;
use crate::proto::admin_client::AdminClient;

/// Where the server is and how to authenticate.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// gRPC address of the running server: a URL or a bare host:port. Default: read from
    /// --config, else 127.0.0.1:50051.
    #[arg(long, env = "TRIBUTARY_SERVER")]
    pub server: Option<String>,
    /// The server's TOML config file: the CLI finds the address there (`ops.grpc_listen` for
    /// admin commands when set, else `grpc.listen`) and speaks TLS when `[grpc.tls]` is set.
    #[arg(long, short, env = "TRIBUTARY_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Bearer token of a credential with the admin scope (`[[grpc.credentials]]`). Prefer
    /// the environment variable or --token-file: a command line is visible to every user in
    /// `ps`.
    #[arg(long, env = "TRIBUTARY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the bearer token (surrounding whitespace ignored).
    #[arg(long, env = "TRIBUTARY_TOKEN_FILE", conflicts_with = "token")]
    pub token_file: Option<std::path::PathBuf>,
    /// PEM file of the CA that signed the server's certificate: connect over TLS (an
    /// `https://` address alone uses the system's roots).
    #[arg(long, env = "TRIBUTARY_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate, for a server that requires mutual TLS (with --client-key).
    #[arg(long, env = "TRIBUTARY_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<std::path::PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, env = "TRIBUTARY_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<std::path::PathBuf>,
}

/// `tributary dead-letters` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DeadLettersCommand {
    /// List unresolved dead letters (JSON lines).
    List {
        #[command(flatten)]
        connection: Connection,
        /// Also list resolved ones.
        #[arg(long)]
        all: bool,
        /// Include raw bodies (personal-data fields redacted; as text when UTF-8).
        #[arg(long)]
        raw: bool,
        /// With --raw: the bodies as received, not redacted (needs a credential with the
        /// personal_data scope).
        #[arg(long, requires = "raw")]
        unredacted: bool,
        /// Only dead letters of this source.
        #[arg(long)]
        source: Option<String>,
        /// Only dead letters whose reason contains this text.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Run dead letters again through the adapters now loaded.
    Redrive {
        #[command(flatten)]
        connection: Connection,
        /// Dead letter ids; none means every unresolved one.
        ids: Vec<u64>,
    },
}

/// `tributary consumers` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConsumersCommand {
    /// List durable consumers with their acknowledged sequence and lag (JSON lines).
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Move a consumer so its next event is the first after SEQUENCE.
    Reset {
        #[command(flatten)]
        connection: Connection,
        name: String,
        sequence: u64,
    },
    /// Delete a consumer.
    Delete {
        #[command(flatten)]
        connection: Connection,
        name: String,
    },
}

/// Adds `authorization: Bearer <token>` to every call when a token is given.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(header) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// A channel to the server's event stream and the interceptor that authenticates on it.
pub async fn connect(connection: &Connection) -> anyhow::Result<(Channel, Bearer)> {
    connect_to(connection, Plane::Stream).await
}

/// A channel to where the server serves `plane` ([`super::endpoint`]), and the interceptor
/// that authenticates on it. TLS when the server's config has `[grpc.tls]`, for an `https://`
/// address, or when a CA file or client certificate is given (these take precedence).
pub async fn connect_to(
    connection: &Connection,
    plane: Plane,
) -> anyhow::Result<(Channel, Bearer)> {
    let endpoint = endpoint::resolve(
        connection.server.as_deref(),
        connection.config.as_deref(),
        plane,
    )?;
    let mut builder = Channel::from_shared(endpoint.uri.clone())
        .with_context(|| format!("invalid server address {}", endpoint.uri))?;
    let explicit_tls = endpoint.uri.starts_with("https://")
        || connection.ca_file.is_some()
        || connection.client_cert.is_some();
    if explicit_tls && endpoint.uri.starts_with("http://") && endpoint.tls.is_none() {
        anyhow::bail!(
            "--server {} is plain http:// but TLS settings are given: use https://",
            endpoint.uri
        );
    }
    let tls = if connection.ca_file.is_some() || connection.client_cert.is_some() {
        Some(client_tls(connection)?)
    } else if endpoint.tls.is_some() {
        endpoint.tls
    } else if explicit_tls {
        Some(client_tls(connection)?)
    } else {
        None
    };
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .context("cannot set up TLS to the server")?;
    }
    let channel = builder
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", endpoint.uri))?;
    let token = match (&connection.token, &connection.token_file) {
        (Some(token), _) => Some(token.trim().to_owned()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --token-file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    let header = match token {
        Some(token) => Some(
            format!("Bearer {token}")
                .parse()
                .context("the token is not a valid header value")?,
        ),
        None => None,
    };
    Ok((channel, Bearer(header)))
}

/// The TLS settings of `connection`: its CA (else the system's roots) and client identity.
fn client_tls(connection: &Connection) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let mut tls = tonic::transport::ClientTlsConfig::new();
    match &connection.ca_file {
        Some(ca) => {
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
        }
        None => tls = tls.with_native_roots(),
    }
    if let (Some(cert), Some(key)) = (&connection.client_cert, &connection.client_key) {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            read(cert)?,
            read(key)?,
        ));
    }
    Ok(tls)
}

pub(crate) async fn client(
    connection: &Connection,
) -> anyhow::Result<AdminClient<InterceptedService<Channel, Bearer>>> {
    let (channel, bearer) = connect_to(connection, Plane::Admin).await?;
    Ok(AdminClient::with_interceptor(channel, bearer))
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Runs a dead-letters subcommand.
pub async fn dead_letters(command: DeadLettersCommand) -> anyhow::Result<()> {
    match command {
        DeadLettersCommand::List {
            connection,
            all,
            raw,
            unredacted,
            source,
            reason,
        } => {
            let mut admin = client(&connection).await?;
            let mut after_id = 0;
            let mut letters = Vec::new();
            loop {
                let page = admin
                    .list_dead_letters(ListDeadLettersRequest {
                        after_id,
                        limit: 1000,
                        include_resolved: all,
                        include_raw: raw,
                        unredacted,
                        source: source.clone().unwrap_or_default(),
                        reason: reason.clone().unwrap_or_default(),
                        raw_id: 0,
                    })
                    .await?
                    .into_inner()
                    .dead_letters;
                let Some(last) = page.last() else { break };
                after_id = last.id;
                letters.extend(page);
            }
            table::print_list(
                &letters,
                &[
                    "ID",
                    "SOURCE",
                    "TYPE",
                    "PROVIDER ID",
                    "RECEIVED",
                    "RESOLVED",
                    "REASON",
                ],
                |l| {
                    vec![
                        l.id.to_string(),
                        l.source.clone(),
                        l.provider_event_type.clone(),
                        l.provider_event_id.clone(),
                        table::time(l.received_at.as_ref()),
                        table::time(l.resolved_at.as_ref()),
                        l.reason.clone(),
                    ]
                },
                dead_letter_json,
            )?;
        }
        DeadLettersCommand::Redrive { connection, ids } => {
            let mut admin = client(&connection).await?;
            let all = ids.is_empty();
            let total = if all {
                count_unresolved(&mut admin).await?
            } else {
                ids.len() as u64
            };
            let progress = progress_bar(total);
            let mut after_id = 0;
            let (mut resolved, mut still_dead) = (0usize, 0usize);
            loop {
                let page = admin
                    .redrive_dead_letters(RedriveDeadLettersRequest {
                        ids: ids.clone(),
                        after_id,
                        limit: 0,
                    })
                    .await?
                    .into_inner();
                for outcome in &page.outcomes {
                    if outcome.resolved {
                        resolved += 1;
                    } else {
                        still_dead += 1;
                    }
                    progress.suspend(|| print_json(outcome))?;
                    progress.inc(1);
                }
                progress.set_message(format!("{resolved} resolved, {still_dead} still dead"));
                if !all || page.next_after_id == 0 {
                    break;
                }
                after_id = page.next_after_id;
            }
            progress.finish_and_clear();
            // The summary on stderr, so stdout stays one JSON object per line.
            eprintln!("redriven: {resolved} resolved, {still_dead} still dead");
        }
    }
    Ok(())
}

/// How many dead letters are unresolved now (the length of a redrive-all's progress bar).
async fn count_unresolved(
    admin: &mut AdminClient<InterceptedService<Channel, Bearer>>,
) -> anyhow::Result<u64> {
    let (mut count, mut after_id) = (0u64, 0);
    loop {
        let page = admin
            .list_dead_letters(ListDeadLettersRequest {
                after_id,
                limit: 1000,
                include_resolved: false,
                include_raw: false,
                unredacted: false,
                ..ListDeadLettersRequest::default()
            })
            .await?
            .into_inner()
            .dead_letters;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        after_id = last.id;
        count += page.len() as u64;
    }
}

/// A dead letter as JSON, its raw body as text when it is UTF-8 (base64 otherwise).
fn dead_letter_json(letter: &DeadLetter) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(letter)?;
    if let (Ok(text), Some(object)) = (std::str::from_utf8(&letter.raw), value.as_object_mut())
        && !letter.raw.is_empty()
    {
        object.insert("raw".to_owned(), serde_json::Value::from(text));
    }
    Ok(value)
}

/// A consumer's filter in one cell: `sources=a,b types=x.*` (`-` for none).
fn filter_text(filter: Option<&tributary_model::v1::Filter>) -> String {
    let Some(filter) = filter else {
        return "-".to_owned();
    };
    let mut parts = Vec::new();
    if !filter.sources.is_empty() {
        parts.push(format!("sources={}", filter.sources.join(",")));
    }
    if !filter.types.is_empty() {
        parts.push(format!("types={}", filter.types.join(",")));
    }
    parts.join(" ")
}

/// A progress bar on stderr (drawn only on a terminal) for `total` steps.
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} dead letters redriven ({msg}) {elapsed}")
    {
        bar.set_style(style);
    }
    bar
}

/// Runs a consumers subcommand.
pub async fn consumers(command: ConsumersCommand) -> anyhow::Result<()> {
    match command {
        ConsumersCommand::List { connection } => {
            let mut admin = client(&connection).await?;
            let consumers = admin
                .list_consumers(ListConsumersRequest {})
                .await?
                .into_inner()
                .consumers;
            table::print_list(
                &consumers,
                &["NAME", "ACKED", "LAG", "FILTER", "LAST ACK"],
                |c| {
                    vec![
                        c.name.clone(),
                        c.acked_sequence.to_string(),
                        c.lag.to_string(),
                        filter_text(c.filter.as_ref()),
                        table::time(c.acked_at.as_ref()),
                    ]
                },
                |c| Ok(serde_json::to_value(c)?),
            )?;
        }
        ConsumersCommand::Reset {
            connection,
            name,
            sequence,
        } => {
            let mut admin = client(&connection).await?;
            let consumer = admin
                .reset_consumer(ResetConsumerRequest {
                    name,
                    position: Some(Position::AfterSequence(sequence)),
                })
                .await?
                .into_inner();
            print_json(&consumer)?;
        }
        ConsumersCommand::Delete { connection, name } => {
            let mut admin = client(&connection).await?;
            let deleted = admin
                .delete_consumer(DeleteConsumerRequest { name })
                .await?
                .into_inner()
                .deleted;
            print_json(&serde_json::json!({ "deleted": deleted }))?;
        }
    }
    Ok(())
}
