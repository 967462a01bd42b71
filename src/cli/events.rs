//! `tributary events tail` follows the stream like `kubectl logs -f`: a `Subscribe` that
//! reconnects when the server goes away (a restart, a network blip) and resumes right after the
//! last event it printed, so nothing is skipped or printed twice. `tributary events get N`
//! prints one event.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_stream::StreamExt;
use tonic::Code;
use tributary_event_log::filtered::type_selected;
use tributary_model::v1::{
    Event, Filter, GetEventRequest, SubscribeRequest, subscribe_request::Start,
};

use super::admin::{Connection, connect};
use crate::app::timestamp;
use crate::proto::event_stream_client::EventStreamClient;

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One canonical JSON object per line (proto3 JSON), for scripts.
    Json,
    /// For people: a summary line per event (`tail`), indented JSON (`get`).
    Pretty,
}

/// `tributary events` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Follow the event stream; reconnects and resumes after a server restart.
    Tail {
        #[command(flatten)]
        connection: Connection,
        /// Only these sources (repeat or comma-separate).
        #[arg(long, value_delimiter = ',')]
        source: Vec<String>,
        /// Only these types: exact, or domain prefixes like `consent.*` (repeat or
        /// comma-separate).
        #[arg(long = "type", value_delimiter = ',')]
        types: Vec<String>,
        /// Start at this sequence (inclusive).
        #[arg(long, group = "start")]
        from_sequence: Option<u64>,
        /// Start at the first event received at or after this time (RFC 3339).
        #[arg(long, group = "start")]
        from_time: Option<String>,
        /// Only events appended from now on (the default).
        #[arg(long, group = "start")]
        from_latest: bool,
        /// Output format; default: pretty on a terminal, json otherwise.
        #[arg(long, value_enum)]
        output: Option<Output>,
    },
    /// Print the event with this sequence. A credential scoped to some sources or types names
    /// the event's own with --source and --type.
    Get {
        #[command(flatten)]
        connection: Connection,
        sequence: u64,
        /// Only if the event is of one of these sources (an error otherwise).
        #[arg(long, value_delimiter = ',')]
        source: Vec<String>,
        /// Only if the event's type is one of these, or a pattern covering it (`statement.*`).
        #[arg(long = "type", value_delimiter = ',')]
        types: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Pretty)]
        output: Output,
    },
}

/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Runs an events subcommand.
pub async fn run(command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Tail {
            connection,
            source,
            types,
            from_sequence,
            from_time,
            from_latest: _,
            output,
        } => {
            let start = match (from_sequence, from_time) {
                (Some(sequence), _) => Start::AfterSequence(sequence.saturating_sub(1)),
                (None, Some(time)) => {
                    let at: jiff::Timestamp = time
                        .parse()
                        .with_context(|| format!("--from-time {time}: expected RFC 3339"))?;
                    Start::FromTime(timestamp(at.into()))
                }
                (None, None) => Start::FromLatest(true),
            };
            let output = output.unwrap_or_else(|| {
                if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    Output::Pretty
                } else {
                    Output::Json
                }
            });
            let filter = Filter {
                sources: source,
                types,
            };
            tail(&connection, filter, start, output).await
        }
        EventsCommand::Get {
            connection,
            sequence,
            source,
            types,
            output,
        } => {
            let filter = Filter {
                sources: source,
                types,
            };
            get(&connection, sequence, filter, output).await
        }
    }
}

/// Statuses that a retry cannot fix: the command stops with them.
fn fatal(code: Code) -> bool {
    matches!(
        code,
        Code::Unauthenticated
            | Code::PermissionDenied
            | Code::InvalidArgument
            | Code::OutOfRange
            | Code::NotFound
            | Code::Unimplemented
    )
}

async fn tail(
    connection: &Connection,
    filter: Filter,
    mut start: Start,
    output: Output,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(100);
    let mut stdout = std::io::stdout().lock();
    loop {
        let stream = match connect(connection).await {
            Ok((channel, bearer)) => {
                EventStreamClient::with_interceptor(channel, bearer)
                    .subscribe(SubscribeRequest {
                        filter: Some(filter.clone()),
                        start: Some(start),
                        ..SubscribeRequest::default()
                    })
                    .await
            }
            Err(error) => {
                eprintln!("{error:#}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let mut stream = match stream {
            Ok(stream) => stream.into_inner(),
            Err(status) if fatal(status.code()) => return Err(status.into()),
            Err(status) => {
                eprintln!(
                    "subscribe failed: {}; retrying in {backoff:?}",
                    status.message()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    print_event(&mut stdout, &event, output, false)?;
                    stdout.flush()?;
                    // Resume right after it, whatever the original start was.
                    start = Start::AfterSequence(event.sequence);
                }
                Err(status) if fatal(status.code()) => return Err(status.into()),
                Err(status) => {
                    eprintln!("stream interrupted: {}; reconnecting", status.message());
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

async fn get(
    connection: &Connection,
    sequence: u64,
    filter: Filter,
    output: Output,
) -> anyhow::Result<()> {
    if sequence == 0 {
        bail!("sequences start at 1");
    }
    let (channel, bearer) = connect(connection).await?;
    // The server authorizes by the event's own source and type.
    let event = EventStreamClient::with_interceptor(channel, bearer)
        .get_event(GetEventRequest { sequence })
        .await?
        .into_inner();
    let source_matches = filter.sources.is_empty() || filter.sources.contains(&event.source);
    if !(source_matches && type_selected(&event.r#type, &filter.types)) {
        bail!(
            "event {sequence} is {} of source {}, not of the given --source/--type",
            event.r#type,
            event.source
        );
    }
    print_event(&mut std::io::stdout().lock(), &event, output, true)
}

fn print_event(
    out: &mut impl Write,
    event: &Event,
    output: Output,
    whole: bool,
) -> anyhow::Result<()> {
    match (output, whole) {
        (Output::Json, _) => writeln!(out, "{}", serde_json::to_string(event)?)?,
        (Output::Pretty, true) => writeln!(out, "{}", serde_json::to_string_pretty(event)?)?,
        (Output::Pretty, false) => {
            let received = event
                .received_at
                .as_ref()
                .and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
                .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            writeln!(
                out,
                "#{:<6} {received}  {:<12} {:<28} {}",
                event.sequence, event.source, event.r#type, event.subject
            )?;
        }
    }
    Ok(())
}
