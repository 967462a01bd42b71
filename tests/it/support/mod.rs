//! Shared helpers of the integration tests: the server under test, NATS servers, the bundled
//! fixtures, adapters built for a test, and checks over delivered events.

pub mod adapters;
pub mod collector;
pub mod events;
pub mod fixtures;
pub mod nats;
pub mod server;

use std::path::{Path, PathBuf};

pub use events::{ack, assert_exactly_once, next_event, provider_ids};
pub use fixtures::{
    ARCADIA_AUTH, ARCADIA_TOKEN, Fixture, NO_RATE_LIMIT, arcadia_seed, arcadia_source,
    arcadia_webhook, delivered_json, expected_delivery, fixture, fixtures, hmac_hex, load_client,
    post_arcadia, unix_now,
};
pub use nats::{Backend, Nats, NatsCluster, nats_config};
pub use server::{Server, serve_command};

/// The tests that load the machine (floods, a cargo build) or bound how long something takes.
/// They take turns: each one measures or needs the two cores that separate test binaries, run
/// one after another, used to give it.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for this heavy test's turn; the turn lasts as long as the guard.
pub async fn heavy_turn() -> tokio::sync::MutexGuard<'static, ()> {
    HEAVY.lock().await
}

/// [`heavy_turn`] for a test outside an async runtime.
pub fn heavy_turn_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    HEAVY.blocking_lock()
}

/// The directory cargo built the plugins into (next to the binary).
pub fn plugin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tributary"))
        .parent()
        .expect("binary has a directory")
        .to_path_buf()
}

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
