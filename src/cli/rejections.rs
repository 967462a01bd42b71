//! `tributary rejections list`: the last webhooks a running server rejected, from its
//! in-memory rejection log (Admin/ListRejections; admin scope).

use tributary_model::v1::{ListRejectionsRequest, RejectedWebhook};

use super::admin::{Connection, client};
use super::table;

/// `tributary rejections` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RejectionsCommand {
    /// The last rejected webhooks, newest first: time, client, status, reason, redacted
    /// headers, body size and SHA-256 (never the body). A table on a terminal, JSON lines
    /// otherwise.
    List {
        #[command(flatten)]
        connection: Connection,
        /// Only this source's ("(unknown source)" for names that are not configured).
        #[arg(long, default_value = "")]
        source: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// Runs a rejections subcommand.
pub async fn run(command: RejectionsCommand) -> anyhow::Result<()> {
    let RejectionsCommand::List {
        connection,
        source,
        limit,
    } = command;
    let mut admin = client(&connection).await?;
    let rejections = admin
        .list_rejections(ListRejectionsRequest { source, limit })
        .await?
        .into_inner()
        .rejections;
    table::print_list(
        &rejections,
        &["TIME", "SOURCE", "CLIENT", "STATUS", "BODY", "REASON"],
        row,
        |r| Ok(serde_json::to_value(r)?),
    )
}

fn row(r: &RejectedWebhook) -> Vec<String> {
    vec![
        table::time(r.received_at.as_ref()),
        r.source.clone(),
        r.client_address.clone(),
        format!("{} {}", r.status, r.code),
        format!("{} bytes", r.body_size),
        r.reason.clone(),
    ]
}
