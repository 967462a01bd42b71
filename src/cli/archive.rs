//! `tributary raw get` and `tributary replay`: the raw archive over the Admin gRPC service of a
//! running server.

use std::io::Write;

use anyhow::{Context, bail};
use tributary_model::v1::{
    GetRawWebhookRequest, RawWebhook, ReplayRequest, get_raw_webhook_request::Target,
};
use tributary_model::well_known::Timestamp;

use crate::cli::admin::{Connection, client, print_json};

/// `tributary raw` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RawCommand {
    /// Print the webhook an event came from, decrypted (JSON; the body as text when it is
    /// UTF-8, else base64). Needs an admin credential: it shows personal data.
    Get {
        #[command(flatten)]
        connection: Connection,
        /// An event's sequence, an event id ("<source>:<provider event id>"), or
        /// "archive:<id>" for an archive entry.
        target: String,
        /// Write only the body to stdout, byte for byte as received.
        #[arg(long)]
        body: bool,
    },
}

/// `tributary replay` arguments.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The source whose archived webhooks run again through its adapter loaded now.
    #[arg(long)]
    pub source: String,
    /// Only webhooks received at or after this time (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Only webhooks received before this time (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// Only these event types (comma-separated; "consent.*" selects a domain).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Print what would change, store nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs a raw subcommand.
pub async fn raw(command: RawCommand) -> anyhow::Result<()> {
    let RawCommand::Get {
        connection,
        target,
        body,
    } = command;
    let target = parse_target(&target)?;
    let mut admin = client(&connection).await?;
    let raw = admin
        .get_raw_webhook(GetRawWebhookRequest {
            target: Some(target),
        })
        .await?
        .into_inner();
    if body {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&raw.body)?;
        stdout.flush()?;
        return Ok(());
    }
    print_json(&presented(&raw))
}

fn parse_target(target: &str) -> anyhow::Result<Target> {
    if let Some(id) = target.strip_prefix("archive:") {
        return Ok(Target::ArchiveId(
            id.parse().context("archive:<id> needs a number")?,
        ));
    }
    if let Ok(sequence) = target.parse() {
        return Ok(Target::Sequence(sequence));
    }
    if !target.contains(':') {
        bail!("give a sequence, an event id \"<source>:<provider event id>\", or archive:<id>");
    }
    Ok(Target::EventId(target.to_owned()))
}

/// The webhook as JSON, the body readable when it is text.
fn presented(raw: &RawWebhook) -> serde_json::Value {
    let mut value = serde_json::to_value(raw).unwrap_or_default();
    if let (Some(object), Ok(text)) = (value.as_object_mut(), std::str::from_utf8(&raw.body)) {
        object.insert("body".into(), serde_json::Value::String(text.to_owned()));
    }
    value
}

fn parse_time(text: &Option<String>, flag: &str) -> anyhow::Result<Option<Timestamp>> {
    text.as_ref()
        .map(|text| {
            serde_json::from_value(serde_json::Value::String(text.clone()))
                .with_context(|| format!("{flag} needs an RFC 3339 time (got {text:?})"))
        })
        .transpose()
}

/// Runs `tributary replay`: JSON lines of each replayed webhook on stdout (or, with
/// `--dry-run`, the differences as text), progress on stderr.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let request = ReplayRequest {
        source: args.source,
        from: parse_time(&args.from, "--from")?,
        to: parse_time(&args.to, "--to")?,
        types: args.types,
        dry_run: args.dry_run,
    };
    let mut admin = client(&args.connection).await?;
    let mut updates = admin.replay(request).await?.into_inner();
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    while let Some(progress) = updates.message().await? {
        if let Some(webhook) = &progress.webhook {
            if args.dry_run {
                // Every entry gets its outcome; the changes follow it.
                println!("archive {}: {}", webhook.archive_id, webhook.outcome);
                for diff in &webhook.diffs {
                    println!(
                        "event {} (original sequence {})",
                        diff.event_id, diff.original_sequence
                    );
                    for change in &diff.changes {
                        println!("  {change}");
                    }
                }
                if !webhook.error.is_empty() {
                    println!("  not replayed: {}", webhook.error);
                }
            } else {
                print_json(webhook)?;
            }
        }
        let line = format!(
            "{} {} webhooks (archive entry {}): {} stored, {} duplicates, {} unchanged, {} failed",
            if progress.done {
                "replayed"
            } else {
                "replaying"
            },
            progress.webhooks,
            progress.position,
            progress.stored,
            progress.duplicates,
            progress.unchanged,
            progress.failed
        );
        // One line updated in place on a terminal; elsewhere only the final totals.
        if interactive && !progress.done {
            eprint!("\r{line}");
        } else if progress.done {
            eprintln!("{}{line}", if interactive { "\r" } else { "" });
        }
    }
    Ok(())
}
