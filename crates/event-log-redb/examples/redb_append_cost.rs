//! What the raw archive costs the redb writer: appends webhooks of one ~1 KB event each, with
//! or without a ~1.3 KB archive entry, from many concurrent callers (group commit), and prints
//! the wall time. Count instructions for a figure that noise does not move:
//! `perf stat -e instructions:u target/release/examples/redb_append_cost -- archive 20000`
//! against the same with `plain` (docs/benchmarks.md, "The engine").

use std::time::Instant;

use tributary_event_log::{AppendRequest, EventLog, PendingEvent};
use tributary_event_log_redb::{EmbeddedConfig, EmbeddedLog};
use tributary_model::v1::{ArchiveEntry, Event, Provenance};
use tributary_model::well_known::Timestamp;

/// Callers in flight at once, like the load generator's connections (`CALLERS` overrides it:
/// `CALLERS=1` commits every webhook on its own, as at a low rate).
const CALLERS: usize = 64;

fn webhook(n: usize, archive: bool) -> AppendRequest {
    let received_at = Some(Timestamp {
        seconds: 1_700_000_000 + n as i64 / 1000,
        nanos: 0,
    });
    let event = Event {
        id: format!("bench:evt_{n:08}"),
        source: "bench".to_owned(),
        r#type: "statement.available".to_owned(),
        subject: format!("act_{n:08}"),
        datacontenttype: "application/protobuf".to_owned(),
        received_at,
        provenance: Some(Provenance {
            provider_event_id: format!("evt_{n:08}"),
            adapter: "bench".to_owned(),
            adapter_version: "1.0.0".to_owned(),
            ..Provenance::default()
        }),
        traceparent: format!("00-{:032x}-{:016x}-01", n, n),
        ..Event::default()
    };
    // Ciphertext does not compress: bytes that look like it.
    let ciphertext = (0..1300u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(n as u32) >> 13) as u8)
        .collect();
    AppendRequest {
        source: "bench".to_owned(),
        events: vec![PendingEvent::from_event(&event)],
        dead_letters: Vec::new(),
        archive: archive.then(|| ArchiveEntry {
            source: "bench".to_owned(),
            content_key: format!("sha256:{n:064x}"),
            received_at,
            adapter: "bench".to_owned(),
            adapter_version: "1.0.0".to_owned(),
            key_id: "k1".to_owned(),
            nonce: vec![7; 24],
            ciphertext,
            compression: "lz4".to_owned(),
            ..ArchiveEntry::default()
        }),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).skip_while(|a| a == "--");
    let archive = match args.next().as_deref() {
        Some("archive") => true,
        Some("plain") => false,
        _ => return Err("usage: redb_append_cost archive|plain [webhooks] [durable]".into()),
    };
    let total: usize = args.next().map_or(Ok(20_000), |n| n.parse())?;
    let durable = args.next().as_deref() == Some("durable");
    let dir = tempfile::tempdir()?;
    let mut config = EmbeddedConfig::new(dir.path());
    config.durable = durable;
    let log = EmbeddedLog::open(config)?;
    let started = Instant::now();
    let in_flight = match std::env::var("CALLERS") {
        Ok(n) => n.parse()?,
        Err(_) => CALLERS,
    };
    let mut callers = Vec::new();
    for caller in 0..in_flight {
        let log = log.clone();
        callers.push(tokio::spawn(async move {
            for n in (caller..total).step_by(in_flight) {
                log.append(webhook(n, archive)).await?;
            }
            Ok::<_, tributary_event_log::LogError>(())
        }));
    }
    for caller in callers {
        caller.await??;
    }
    let elapsed = started.elapsed();
    println!(
        "{} webhooks, archive {}, durable {durable}: {:.2?} ({:.1} µs per webhook)",
        total,
        if archive { "on" } else { "off" },
        elapsed,
        elapsed.as_secs_f64() * 1e6 / total as f64
    );
    Ok(())
}
