//! The backend conformance suite against the embedded (redb) log, one temp directory per test.

use std::time::Duration;

use tributary_event_log::conformance::{Capabilities, Store};
use tributary_event_log::{LogError, Retention};
use tributary_event_log_redb::{EmbeddedConfig, EmbeddedLog};
use tributary_test_kit::retry;

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
        retry(Duration::from_secs(10), || {
            EmbeddedLog::open(EmbeddedConfig {
                retention: retention.clone(),
                ..EmbeddedConfig::new(self.dir.path())
            })
        })
        .await
    }
}

tributary_event_log::conformance_tests!(fresh());
