//! The backend conformance suite against NATS JetStream, on a `nats-server` of each test's
//! own.

use std::time::Duration;

use tributary_event_log::conformance::{Capabilities, Store};
use tributary_event_log::{LogError, Retention};
use tributary_event_log_nats::{NatsConfig, NatsLog};
use tributary_test_kit::nats::Nats;

use crate::support;

/// A server of the test's own.
struct JetStream(Nats);

async fn fresh() -> JetStream {
    JetStream(Nats::start())
}

impl Store for JetStream {
    type Log = NatsLog;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dedup_spans_dead_letters: false,
            contiguous_appends: false,
        }
    }

    async fn open(&self, retention: Retention) -> Result<NatsLog, LogError> {
        let config = NatsConfig {
            stream: "CONFORMANCE".into(),
            subject_prefix: "conformance".into(),
            retention,
            connect_timeout: Duration::from_secs(20),
            ..NatsConfig::new(vec![self.0.url()])
        };
        // The server may still be starting JetStream: try again until it answers.
        support::connect(config).await
    }
}

tributary_event_log::conformance_tests!(fresh());
