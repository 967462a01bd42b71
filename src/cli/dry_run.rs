//! `tributary adapter try`: runs a payload through a running server's adapter with the
//! `Normalize` RPC and prints the canonical result. Nothing is stored.

use std::path::PathBuf;

use anyhow::{Context, bail};
use tributary_model::v1::{Header, NormalizeRequest, adapter_result::Outcome};

use super::admin::{Connection, connect_to};
use super::endpoint::Plane;
use crate::proto::adapters_client::AdaptersClient;

/// Options of `tributary adapter try`.
#[derive(Debug, clap::Args)]
pub struct TryArgs {
    /// The source to run the payload through (a configured source, or an adapter's name).
    pub source: String,
    /// The raw body, byte for byte as the provider would send it.
    pub file: PathBuf,
    #[command(flatten)]
    pub connection: Connection,
    /// A request header, `name=value` (repeatable), e.g. a signature.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// The raw query string, without '?'.
    #[arg(long, default_value = "")]
    pub query: String,
    /// Skip signature / token verification (for a payload without its signature).
    #[arg(long)]
    pub skip_verification: bool,
}

fn parse_header(text: &str) -> anyhow::Result<Header> {
    let Some((name, value)) = text.split_once('=') else {
        bail!("header `{text}` is not NAME=VALUE");
    };
    Ok(Header {
        name: name.trim().to_ascii_lowercase(),
        value: value.to_owned(),
    })
}

/// Runs `tributary adapter try`. Exits non-zero when the adapter rejects the payload.
pub fn run(args: &TryArgs) -> anyhow::Result<()> {
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let headers = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let request = NormalizeRequest {
        source: args.source.clone(),
        body,
        headers,
        query: args.query.clone(),
        skip_verification: args.skip_verification,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let response = runtime.block_on(async {
        let (channel, bearer) = connect_to(&args.connection, Plane::Admin).await?;
        let mut client = AdaptersClient::with_interceptor(channel, bearer);
        anyhow::Ok(client.normalize(request).await?)
    })?;
    let result = response.into_inner().result.unwrap_or_default();
    println!("{}", serde_json::to_string_pretty(&result)?);
    if let Some(Outcome::Rejection(rejection)) = &result.outcome {
        bail!("the adapter rejected the payload: {}", rejection.reason);
    }
    Ok(())
}
