//! Helpers shared by the crate's tests.

use std::path::Path;
use std::time::{Duration, Instant};

use tributary_event_log::{AppendOutcome, AppendRequest, EventLog, Retention};
use tributary_event_log_fjall::{FjallConfig, FjallLog};
use tributary_model::v1::{Event, Provenance};

pub const SOURCE: &str = "s";

pub fn event(id: &str) -> Event {
    Event {
        id: format!("{SOURCE}:{id}"),
        source: SOURCE.into(),
        r#type: "test.stored".into(),
        provenance: Some(Provenance {
            provider_event_id: id.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn request(ids: &[&str]) -> AppendRequest {
    AppendRequest {
        source: SOURCE.into(),
        events: ids.iter().map(|id| event(id).into()).collect(),
        dead_letters: Vec::new(),
        archive: None,
    }
}

/// Opens the log in `dir` with `segment_events` per segment, retrying while the previous
/// log still holds the database.
pub fn open(dir: &Path, segment_events: u64, retention: Retention) -> FjallLog {
    let started = Instant::now();
    loop {
        let config = FjallConfig {
            segment_events,
            retention: retention.clone(),
            ..FjallConfig::new(dir)
        };
        match FjallLog::open(config) {
            Ok(log) => return log,
            Err(error) if started.elapsed() > Duration::from_secs(10) => {
                panic!("cannot open: {error}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

pub async fn append(log: &FjallLog, request: AppendRequest) -> AppendOutcome {
    log.append(request).await.expect("append")
}

pub async fn sequences(log: &FjallLog) -> Vec<u64> {
    log.read_after(0, 1000)
        .await
        .expect("read")
        .iter()
        .map(|e| e.sequence)
        .collect()
}
