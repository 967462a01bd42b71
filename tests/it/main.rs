//! Tributary's integration tests: one test binary (`cargo test --test it`), so the workspace links
//! the service and its dependencies into one executable instead of one per file.
//!
//! Every test starts what it needs on free loopback ports (the real `tributary` binary, its own
//! nats-server processes, collectors) in temporary directories of its own, so tests run in
//! parallel in this one process. Filter by module path: `cargo test --test it delivery::`,
//! `cargo test --test it ingest::klavi`.

mod support;

/// Adapter plugins as the server loads them: the C example, crash isolation, hot reload, bad
/// libraries, and the adapter tutorial.
mod adapters {
    mod c_example;
    mod crash;
    mod loading;
    mod reload;
    mod shadow;
    mod tutorial;
    mod verification;
}

/// Each bundled provider's webhooks end to end: HTTP in, gRPC out.
mod ingest {
    mod arcadia;
    mod content_type;
    mod finicity;
    mod klavi;
    mod standard_webhooks;
    mod stored_as_returned;
}

/// NATS JetStream as the event log: several instances, outages, a 3-node cluster.
mod nats {
    mod cluster;
    mod instances;
}

/// Metrics and traces.
mod telemetry {
    mod health;
    mod metrics;
    mod traces;
}

mod abuse;
mod archive;
mod audit;
mod cli_help;
mod cli_tls;
mod clients;
mod cloudevents;
mod console;
mod console_sessions;
mod conventions;
mod delivery;
mod engines;
mod grpc_auth;
mod personal_data;
mod quotas;
mod redrive;
mod security;
mod storage_faults;
mod surfaces;
