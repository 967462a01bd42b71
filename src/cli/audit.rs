//! `tributary audit list`: the audit log of a running server (admin scope), as JSON lines.

use tributary_model::v1::ListAuditEntriesRequest;

use crate::cli::admin::{Connection, client, print_json};

/// `tributary audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Print audit entries, oldest first (JSON lines): time, credential, client address,
    /// action, target and outcome of every admin action and console login.
    List {
        #[command(flatten)]
        connection: Connection,
        /// Only entries with a greater id.
        #[arg(long, default_value_t = 0)]
        after_id: u64,
    },
}

/// Runs an audit subcommand.
pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::List {
            connection,
            after_id,
        } => {
            let mut admin = client(&connection).await?;
            let mut after_id = after_id;
            loop {
                let entries = admin
                    .list_audit_entries(ListAuditEntriesRequest {
                        after_id,
                        limit: 1000,
                    })
                    .await?
                    .into_inner()
                    .entries;
                let Some(last) = entries.last() else { break };
                after_id = last.id;
                for entry in &entries {
                    print_json(entry)?;
                }
            }
            Ok(())
        }
    }
}
