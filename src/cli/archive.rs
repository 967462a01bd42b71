//! `tributary raw get`, `tributary replay` and `tributary archive rekey`: the raw archive over
//! the Admin gRPC service of a running server.

use std::io::Write;

use anyhow::{Context, bail};
use tributary_model::v1::{
    GetRawWebhookRequest, RawWebhook, RekeyArchiveRequest, RekeyArchiveResponse, ReplayRequest,
    get_raw_webhook_request::Target,
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

/// `tributary archive` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ArchiveCommand {
    /// Re-seal the raw archive and the dead letters' raw items with the current key (the
    /// first of the server's key file), in place, after a new key was put first: prints
    /// progress, then which key ids still seal something, and which can leave the key file.
    /// Safe to run again (items already sealed with the current key are left alone). Needs an
    /// admin credential with the personal_data scope: it decrypts.
    Rekey {
        #[command(flatten)]
        connection: Connection,
        /// Start after this archive id (resume an interrupted run); only a run from the
        /// start can tell which keys are still in use.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Items examined per call to the server (at most 10,000).
        #[arg(long, default_value_t = 1_000)]
        batch: u32,
    },
}

/// Runs an archive subcommand.
pub async fn archive(command: ArchiveCommand) -> anyhow::Result<()> {
    let ArchiveCommand::Rekey {
        connection,
        after,
        batch,
    } = command;
    let mut admin = client(&connection).await?;
    let mut entries = RekeyTotals::default();
    let mut letters = RekeyTotals::default();
    for (totals, dead_letters, start) in [(&mut entries, false, after), (&mut letters, true, 0)] {
        let what = if dead_letters {
            "dead letter"
        } else {
            "archive entry"
        };
        let mut next = start;
        loop {
            let page = admin
                .rekey_archive(RekeyArchiveRequest {
                    after_id: next,
                    limit: batch,
                    dead_letters,
                })
                .await?
                .into_inner();
            for failure in &page.failures {
                eprintln!("{what} {}: not re-sealed: {}", failure.id, failure.reason);
            }
            totals.add(&page);
            if page.next_after_id == 0 {
                break;
            }
            next = page.next_after_id;
            eprintln!(
                "through {what} {next}: examined {}, rewritten {}, already current {}, failed {}",
                totals.examined, totals.rewritten, totals.already_current, totals.failed
            );
        }
    }
    for line in summary(&entries, &letters, after) {
        println!("{line}");
    }
    let failed = entries.failed + letters.failed;
    if failed > 0 {
        bail!("{failed} items could not be re-sealed (listed above); their keys must stay");
    }
    Ok(())
}

/// What one walk (archive entries or dead letters) did, summed over its calls.
#[derive(Debug, Default)]
struct RekeyTotals {
    current_key_id: String,
    configured_key_ids: Vec<String>,
    examined: u64,
    rewritten: u64,
    already_current: u64,
    failed: u64,
    missing: u64,
    in_clear: u64,
    by_key: std::collections::BTreeMap<String, u64>,
}

impl RekeyTotals {
    fn add(&mut self, page: &RekeyArchiveResponse) {
        self.current_key_id.clone_from(&page.current_key_id);
        self.configured_key_ids.clone_from(&page.configured_key_ids);
        self.examined += page.examined;
        self.rewritten += page.rewritten;
        self.already_current += page.already_current;
        self.failed += page.failed;
        self.missing += page.missing;
        self.in_clear += page.in_clear;
        for count in &page.by_key_id {
            *self.by_key.entry(count.key_id.clone()).or_default() += count.count;
        }
    }

    fn by_key_line(&self) -> String {
        if self.by_key.is_empty() {
            return "none".to_owned();
        }
        self.by_key
            .iter()
            .map(|(key_id, count)| format!("{key_id} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn uses(&self, key_id: &str) -> u64 {
        self.by_key.get(key_id).copied().unwrap_or(0)
    }
}

/// The final report: totals, items per key id, and for each old key whether anything still
/// needs it (known only for a run from the first archive entry).
fn summary(entries: &RekeyTotals, letters: &RekeyTotals, after: u64) -> Vec<String> {
    let mut lines = vec![
        format!(
            "archive entries: examined {}, rewritten {}, already current {}, failed {}, removed meanwhile {}",
            entries.examined,
            entries.rewritten,
            entries.already_current,
            entries.failed,
            entries.missing
        ),
        format!(
            "dead letters: examined {}, rewritten {}, already current {}, failed {}, removed meanwhile {}, stored in clear {}",
            letters.examined,
            letters.rewritten,
            letters.already_current,
            letters.failed,
            letters.missing,
            letters.in_clear
        ),
        format!("archive entries by key id: {}", entries.by_key_line()),
        format!("dead letters by key id: {}", letters.by_key_line()),
    ];
    if after > 0 {
        lines.push(format!(
            "started after archive entry {after}: run without --after to learn which keys are still in use"
        ));
        return lines;
    }
    let current = &letters.current_key_id;
    for key_id in letters
        .configured_key_ids
        .iter()
        .filter(|id| *id != current)
    {
        let (in_entries, in_letters) = (entries.uses(key_id), letters.uses(key_id));
        lines.push(if in_entries == 0 && in_letters == 0 {
            format!(
                "key {key_id}: nothing is sealed with it any more; it can be removed from the key file"
            )
        } else {
            format!(
                "key {key_id}: still seals {in_entries} archive entries and {in_letters} dead letters; keep it"
            )
        });
    }
    lines
}
