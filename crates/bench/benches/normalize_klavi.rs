//! Normalize cost per event of the klavi adapter, per payload kind, in-process vs through its
//! dynamic library. Run after `cargo build --release --workspace` (the libraries):
//! `cargo bench -p tributary-bench --bench normalize_klavi`.

mod common;

use common::Case;
use criterion::{Criterion, criterion_group, criterion_main};

const CASES: &[Case] = &[Case {
    name: "klavi/consent",
    adapter: "klavi",
    fixture: "seed-consent-authorised",
}];

fn normalize(c: &mut Criterion) {
    for case in CASES {
        common::bench_case::<tributary_adapter_klavi::Klavi>(c, case);
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = normalize
}
criterion_main!(benches);
