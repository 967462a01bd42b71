//! `tributary dead-letters ...` and `tributary consumers ...`: operator commands over the
//! Admin gRPC service of a running server.

use anyhow::Context;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tributary_model::v1::{
    DeleteConsumerRequest, ListConsumersRequest, ListDeadLettersRequest, RedriveDeadLettersRequest,
    ResetConsumerRequest, reset_consumer_request::Position,
};

use crate::proto::admin_client::AdminClient;

/// Where the server is and how to authenticate.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// gRPC address of the running server.
    #[arg(
        long,
        env = "TRIBUTARY_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// Bearer token of a credential with the admin scope (`[[grpc.credentials]]`).
    #[arg(long, env = "TRIBUTARY_TOKEN")]
    pub token: Option<String>,
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
        /// Include raw bodies (personal-data fields redacted).
        #[arg(long)]
        raw: bool,
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

async fn client(
    connection: &Connection,
) -> anyhow::Result<
    AdminClient<
        tonic::service::interceptor::InterceptedService<Channel, impl tonic::service::Interceptor>,
    >,
> {
    let channel = Channel::from_shared(connection.server.clone())
        .context("invalid --server address")?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", connection.server))?;
    let header: Option<MetadataValue<_>> = match &connection.token {
        Some(token) => Some(
            format!("Bearer {token}")
                .parse()
                .context("the token is not a valid header value")?,
        ),
        None => None,
    };
    Ok(AdminClient::with_interceptor(
        channel,
        move |mut request: tonic::Request<()>| {
            if let Some(header) = &header {
                request
                    .metadata_mut()
                    .insert("authorization", header.clone());
            }
            Ok(request)
        },
    ))
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
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
        } => {
            let mut admin = client(&connection).await?;
            let mut after_id = 0;
            loop {
                let page = admin
                    .list_dead_letters(ListDeadLettersRequest {
                        after_id,
                        limit: 1000,
                        include_resolved: all,
                        include_raw: raw,
                    })
                    .await?
                    .into_inner()
                    .dead_letters;
                let Some(last) = page.last() else { break };
                after_id = last.id;
                for letter in &page {
                    print_json(letter)?;
                }
            }
        }
        DeadLettersCommand::Redrive { connection, ids } => {
            let mut admin = client(&connection).await?;
            let all = ids.is_empty();
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
                    print_json(outcome)?;
                }
                // Progress on stderr, so stdout stays one JSON object per line.
                eprintln!("redriven: {resolved} resolved, {still_dead} still dead");
                if !all || page.next_after_id == 0 {
                    break;
                }
                after_id = page.next_after_id;
            }
        }
    }
    Ok(())
}

/// Runs a consumers subcommand.
pub async fn consumers(command: ConsumersCommand) -> anyhow::Result<()> {
    match command {
        ConsumersCommand::List { connection } => {
            let mut admin = client(&connection).await?;
            for consumer in admin
                .list_consumers(ListConsumersRequest {})
                .await?
                .into_inner()
                .consumers
            {
                print_json(&consumer)?;
            }
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
