//! NATS JetStream in the service's tests: the servers are the test kit's
//! ([`tributary_test_kit::nats`]); here, how a test's service is configured to use one.

pub use tributary_test_kit::free_port;
pub use tributary_test_kit::nats::{Nats, NatsCluster};

/// Which event log a test's server uses.
pub enum Backend {
    /// The embedded log on redb (`[log] engine = "redb"`).
    Redb,
    /// The embedded log on the log-structured engine, the default for a new data directory
    /// (`[log] engine = "fjall"`).
    Fjall,
    /// A single JetStream server of the test's own.
    Nats(Nats),
}

impl Backend {
    /// A fresh single-node JetStream for this test.
    pub fn nats() -> Backend {
        Backend::Nats(Nats::start())
    }

    /// `base` (a TOML config) with this backend selected.
    pub fn config(&self, base: &str) -> String {
        match self {
            Backend::Redb => format!("{base}\n[log]\nengine = \"redb\"\n"),
            Backend::Fjall => format!("{base}\n[log]\nengine = \"fjall\"\n"),
            Backend::Nats(nats) => nats_config(base, &nats.url()),
        }
    }
}

/// `base` with `log.backend` set to `urls` (appended: `[log]` may follow `[log.retention]`).
pub fn nats_config(base: &str, urls: &str) -> String {
    format!("{base}\n[log]\nbackend = \"{urls}\"\n")
}
