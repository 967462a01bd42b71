//! The backend conformance suite against the embedded (redb) log, one temp directory per test.

use std::time::{Duration, Instant};

use tributary_event_log::conformance::{Capabilities, Store};
use tributary_event_log::{LogError, Retention};
use tributary_event_log_redb::{EmbeddedConfig, EmbeddedLog};

/// A data directory of its own.
struct Redb {
    dir: tempfile::TempDir,
}

async fn fresh() -> Redb {
    Redb {
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

impl Store for Redb {
    type Log = EmbeddedLog;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dedup_spans_dead_letters: true,
            contiguous_appends: true,
        }
    }

    async fn open(&self, retention: Retention) -> Result<EmbeddedLog, LogError> {
        // A log dropped just before lets go of the file when its writer thread ends.
        let started = Instant::now();
        loop {
            let config = EmbeddedConfig {
                retention: retention.clone(),
                ..EmbeddedConfig::new(self.dir.path())
            };
            match EmbeddedLog::open(config) {
                Ok(log) => return Ok(log),
                Err(_) if started.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

tributary_event_log::conformance_tests!(fresh());
