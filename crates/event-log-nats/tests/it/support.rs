//! What the crate's tests share: a `nats-server -js` of each test's own (the test kit's, on
//! free loopback ports, so tests run in parallel and leave nothing behind), a connection that
//! waits for it, and a look into its KV buckets.

use std::time::{Duration, Instant};

use tributary_event_log::LogError;
use tributary_event_log_nats::{NatsConfig, NatsLog};
pub use tributary_test_kit::nats::Nats;

/// A single JetStream server, healthy.
pub fn fresh() -> Nats {
    Nats::start()
}

/// Connects, trying again while the server starts (up to 20 seconds).
pub async fn connect(config: NatsConfig) -> Result<NatsLog, LogError> {
    let started = Instant::now();
    loop {
        match NatsLog::connect(config.clone()).await {
            Ok(log) => return Ok(log),
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// The keys of KV bucket `bucket` on `nats`, sorted.
pub async fn bucket_keys(nats: &Nats, bucket: &str) -> Vec<String> {
    use futures_util::TryStreamExt as _;
    let client = async_nats::connect(nats.url().as_str())
        .await
        .expect("client");
    let bucket = async_nats::jetstream::new(client)
        .get_key_value(bucket)
        .await
        .expect("bucket");
    let mut keys: Vec<String> = bucket
        .keys()
        .await
        .expect("keys")
        .try_collect()
        .await
        .expect("keys");
    keys.sort();
    keys
}
