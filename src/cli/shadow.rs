//! `tributary adapter shadow ...`: run a candidate adapter beside a source's active one, read
//! how they differ, then promote or abort it (the `Adapters` shadow RPCs of a running server).

use std::fmt::Write as _;

use anyhow::Context;
use tributary_model::v1::{
    AbortShadowRequest, GetShadowRequest, PromoteShadowRequest, ShadowStatus, StartShadowRequest,
};

use super::admin::{Connection, connect};
use crate::proto::adapters_client::AdaptersClient;

/// `tributary adapter shadow` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ShadowCommand {
    /// Load CANDIDATE (a library file, or a version of the source's adapter in the plugin
    /// directory) and run it on a copy of every webhook of SOURCE; nothing it makes is stored.
    Start {
        #[command(flatten)]
        connection: Connection,
        source: String,
        candidate: String,
    },
    /// Counts, failures and the last differing webhooks with their field-level diffs.
    Diff {
        #[command(flatten)]
        connection: Connection,
        source: String,
        /// Print the status as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Swap the candidate in as the source's adapter (as a reload would) and end the shadow.
    Promote {
        #[command(flatten)]
        connection: Connection,
        source: String,
    },
    /// Drop the candidate; the active adapter is untouched.
    Abort {
        #[command(flatten)]
        connection: Connection,
        source: String,
    },
}

/// Runs a shadow subcommand.
pub fn run(command: ShadowCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(call(command))
}

async fn call(command: ShadowCommand) -> anyhow::Result<()> {
    let status = |result: Result<tonic::Response<ShadowStatus>, tonic::Status>| {
        result
            .map(tonic::Response::into_inner)
            .map_err(|status| anyhow::anyhow!("{}", status.message()))
    };
    match command {
        ShadowCommand::Start {
            connection,
            source,
            candidate,
        } => {
            let mut client = client(&connection).await?;
            let shadow = status(
                client
                    .start_shadow(StartShadowRequest { source, candidate })
                    .await,
            )?;
            println!(
                "shadowing source {} ({} {}) with candidate {} from {}",
                shadow.source,
                shadow.adapter,
                shadow.active_version,
                shadow.candidate_version,
                shadow.candidate_file
            );
        }
        ShadowCommand::Diff {
            connection,
            source,
            json,
        } => {
            let mut client = client(&connection).await?;
            let shadow = status(client.get_shadow(GetShadowRequest { source }).await)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&shadow)?);
            } else {
                print!("{}", render(&shadow));
            }
        }
        ShadowCommand::Promote { connection, source } => {
            let mut client = client(&connection).await?;
            let shadow = status(client.promote_shadow(PromoteShadowRequest { source }).await)?;
            println!(
                "promoted: source {} is served by {} {} (was {}); {} compared, {} differed",
                shadow.source,
                shadow.adapter,
                shadow.candidate_version,
                shadow.active_version,
                shadow.compared,
                shadow.differed
            );
        }
        ShadowCommand::Abort { connection, source } => {
            let mut client = client(&connection).await?;
            let shadow = status(client.abort_shadow(AbortShadowRequest { source }).await)?;
            println!(
                "aborted: candidate {} dropped; source {} stays on {} {}; {} compared, {} differed",
                shadow.candidate_version,
                shadow.source,
                shadow.adapter,
                shadow.active_version,
                shadow.compared,
                shadow.differed
            );
        }
    }
    Ok(())
}

async fn client(
    connection: &Connection,
) -> anyhow::Result<
    AdaptersClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            super::admin::Bearer,
        >,
    >,
> {
    let (channel, bearer) = connect(connection).await?;
    Ok(AdaptersClient::with_interceptor(channel, bearer))
}

/// The status as text: counts, then each kept webhook with its diff lines.
pub fn render(shadow: &ShadowStatus) -> String {
    let mut out = String::new();
    let counts = |counts: &[tributary_model::v1::ShadowCount]| {
        if counts.is_empty() {
            return "none".to_owned();
        }
        counts
            .iter()
            .map(|c| format!("{} {}", c.kind, c.count))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "source {}: candidate {} {} ({}) beside active {}",
        shadow.source,
        shadow.adapter,
        shadow.candidate_version,
        shadow.candidate_file,
        shadow.active_version
    );
    let _ = writeln!(
        out,
        "compared {}, differed {}",
        shadow.compared, shadow.differed
    );
    let _ = writeln!(out, "differences: {}", counts(&shadow.differences));
    let _ = writeln!(out, "candidate failures: {}", counts(&shadow.failures));
    for difference in &shadow.recent {
        let received = difference
            .received_at
            .and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
            .map(|t| t.to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\nwebhook received {received}: {}",
            difference.kinds.join(", ")
        );
        for event in &difference.events {
            let _ = writeln!(out, "  event {}", event.event_id);
            for change in &event.changes {
                let _ = writeln!(out, "    {change}");
            }
        }
        for line in &difference.outcome {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}
