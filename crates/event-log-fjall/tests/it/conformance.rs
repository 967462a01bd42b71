//! The backend conformance suite against the fjall log, one temp directory per test. Segments
//! of 4 sequences, so retention drops whole segments and trims boundary ones in the suite.

use std::time::Duration;

use tributary_event_log::conformance::{Capabilities, Store};
use tributary_event_log::{LogError, Retention};
use tributary_event_log_fjall::{FjallConfig, FjallLog};
use tributary_test_kit::retry;

/// A data directory of its own.
struct Fjall {
    dir: tempfile::TempDir,
}

async fn fresh() -> Fjall {
    Fjall {
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

impl Store for Fjall {
    type Log = FjallLog;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dedup_spans_dead_letters: true,
            contiguous_appends: true,
        }
    }

    async fn open(&self, retention: Retention) -> Result<FjallLog, LogError> {
        // A log dropped just before lets go of the database once its last handle is gone.
        retry(Duration::from_secs(10), || {
            FjallLog::open(FjallConfig {
                retention: retention.clone(),
                segment_events: 4,
                ..FjallConfig::new(self.dir.path())
            })
        })
        .await
    }
}

tributary_event_log::conformance_tests!(fresh());
