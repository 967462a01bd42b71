//! What a webhook costs the fjall log: appends webhooks of one ~1 KB event each, with or
//! without a ~1.3 KB archive entry, from many concurrent callers (group commit), and prints
//! the wall time and the bytes the process wrote to storage. The same webhooks as the redb
//! backend's `redb_append_cost`, so the engines compare directly:
//! `CALLERS=1 target/release/examples/fjall_append_cost archive 20000 durable` (docs/benchmarks.md).
//!
//! `CALLERS` callers in flight at once (default 64); `blocking` as a fourth argument runs each
//! caller on a thread of its own calling `append_blocking` instead of async tasks. `STEP=N`
//! prints the rate of every N webhooks, to see whether the cost grows with the log
//! (`RANDOM_IDS=1`: provider ids in no order, as real providers send them); an append
//! slower than 50 ms is printed as it happens (a stall).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tributary_event_log::{AppendRequest, EventLog, LogError, PendingEvent};
use tributary_event_log_fjall::{FjallConfig, FjallLog};
use tributary_model::v1::{ArchiveEntry, Event, Provenance};
use tributary_model::well_known::Timestamp;

/// Callers in flight at once, like the load generator's connections.
const CALLERS: usize = 64;

/// The provider's id of webhook `n`: in order, or (`RANDOM_IDS=1`) scattered like real
/// providers' ids, so that dedup lookups cannot skip tables by their key ranges.
fn provider_id(n: usize) -> String {
    if std::env::var_os("RANDOM_IDS").is_some() {
        format!(
            "evt_{:016x}",
            (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        )
    } else {
        format!("evt_{n:08}")
    }
}

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
            provider_event_id: provider_id(n),
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

/// Bytes this process caused to be written to storage (`write_bytes` of /proc/self/io).
fn write_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes: "))
        .and_then(|n| n.trim().parse().ok())
}

async fn run_async(
    log: &FjallLog,
    total: usize,
    callers: usize,
    archive: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let step: usize = std::env::var("STEP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let done = Arc::new(AtomicUsize::new(0));
    let mut step_started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let log = log.clone();
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            for n in (caller..total).step_by(callers) {
                let started = Instant::now();
                log.append(webhook(n, archive)).await?;
                let took = started.elapsed();
                if took > std::time::Duration::from_millis(50) {
                    println!("slow append: webhook {n} took {took:.2?}");
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, LogError>(())
        }));
    }
    if step > 0 {
        let mut reported = 0;
        while reported + step <= total {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let count = done.load(Ordering::Relaxed);
            if count >= reported + step {
                let elapsed = step_started.elapsed().as_secs_f64();
                println!(
                    "up to {count}: {:.0} webhooks/s",
                    (count - reported) as f64 / elapsed
                );
                reported = count;
                step_started = Instant::now();
            }
        }
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

fn run_blocking(
    log: &FjallLog,
    total: usize,
    callers: usize,
    archive: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..callers)
            .map(|caller| {
                scope.spawn(move || {
                    for n in (caller..total).step_by(callers) {
                        log.append_blocking(webhook(n, archive))?;
                    }
                    Ok::<_, LogError>(())
                })
            })
            .collect();
        for thread in threads {
            thread.join().map_err(|_| "a caller panicked")??;
        }
        Ok(())
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).skip_while(|a| a == "--");
    let archive = match args.next().as_deref() {
        Some("archive") => true,
        Some("plain") => false,
        _ => {
            return Err(
                "usage: fjall_append_cost archive|plain [webhooks] [durable] [blocking]".into(),
            );
        }
    };
    let total: usize = args.next().map_or(Ok(20_000), |n| n.parse())?;
    let durable = args.next().as_deref() == Some("durable");
    let blocking = args.next().as_deref() == Some("blocking");
    let callers = match std::env::var("CALLERS") {
        Ok(n) => n.parse::<usize>()?.max(1),
        Err(_) => CALLERS,
    };
    let dir = tempfile::tempdir()?;
    let mut config = FjallConfig::new(dir.path());
    config.durable = durable;
    let log = FjallLog::open(config)?;
    let written_before = write_bytes();
    let started = Instant::now();
    if blocking {
        run_blocking(&log, total, callers, archive)?;
    } else {
        run_async(&log, total, callers, archive).await?;
    }
    let elapsed = started.elapsed();
    let written = write_bytes()
        .zip(written_before)
        .map(|(after, before)| after.saturating_sub(before));
    // Closing persists what is buffered; counted separately (not part of any commit).
    drop(log);
    let closed = write_bytes()
        .zip(written_before)
        .map(|(after, before)| after.saturating_sub(before));
    // Opening again replays the journal's tail and reads counters and segment records: it
    // should not grow with the number of events stored.
    let reopen_started = Instant::now();
    let mut reopen = FjallConfig::new(dir.path());
    reopen.durable = durable;
    let reopened = FjallLog::open(reopen)?;
    let reopen_time = reopen_started.elapsed();
    let first = reopened.first_sequence().await?;
    let last = *reopened.last_sequence().borrow();
    drop(reopened);
    println!("reopened in {reopen_time:.2?}: sequences {first}..={last}");
    let show = |bytes: Option<u64>| bytes.map_or("?".to_owned(), |b| b.to_string());
    println!(
        "{} webhooks, archive {}, durable {durable}, {callers} callers{}: {:.2?} ({:.1} µs per \
         webhook), {} bytes written ({} per webhook; {} with the close)",
        total,
        if archive { "on" } else { "off" },
        if blocking { " (blocking)" } else { "" },
        elapsed,
        elapsed.as_secs_f64() * 1e6 / total as f64,
        show(written),
        show(written.map(|w| w / total as u64)),
        show(closed),
    );
    Ok(())
}
