//! What the raw archive costs an HTTP worker per webhook: sealing the Arcadia statement seed
//! (filter the headers, encode, compress, hash, encrypt) and opening it again.
//! `cargo bench --bench archive_seal` (docs/benchmarks.md, "Adapter and plugin-boundary cost").

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tributary::archive::Archive;
use tributary::config::ArchiveConfig;
use tributary_model::v1::{Header, WebhookRequest};
use tributary_model::well_known::Timestamp;

fn request() -> WebhookRequest {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/plugins/arcadia/fixtures/seed-statement-new-data-available.raw.json"
    ))
    .expect("the Arcadia statement seed");
    let header = |name: &str, value: &str| Header {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    WebhookRequest {
        source: "arcadia".to_owned(),
        method: "POST".to_owned(),
        path: "/webhooks/arcadia".to_owned(),
        headers: vec![
            header("host", "tributary.internal:8080"),
            header("user-agent", "Arcadia-Webhooks/2.0"),
            header("content-type", "application/json"),
            header("content-length", &body.len().to_string()),
            header("accept-encoding", "gzip"),
            header("arc-webhook-signature", &"ab12".repeat(16)),
            header("x-request-id", "5f8d7a6e-1c2b-4e3f-9a8b-7c6d5e4f3a2b"),
            header("authorization", "Bearer not-archived"),
        ],
        body,
        received_at: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        ..WebhookRequest::default()
    }
}

fn seal(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let archive = Archive::open_configured(&ArchiveConfig::default(), dir.path())
        .expect("keys")
        .expect("the archive is on by default");
    let request = request();
    let secrets = vec!["a-shared-secret-of-the-source".to_owned()];
    c.bench_function("archive/seal statement", |b| {
        b.iter(|| {
            archive
                .seal(black_box(&request), ("arcadia", "1.0.0"), &secrets)
                .expect("seal")
        })
    });
    let entry = archive
        .seal(&request, ("arcadia", "1.0.0"), &secrets)
        .expect("seal");
    c.bench_function("archive/open statement", |b| {
        b.iter(|| archive.open(black_box(&entry)).expect("open"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = seal
}
criterion_main!(benches);
