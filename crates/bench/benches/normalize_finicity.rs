//! Normalize cost per event of the finicity adapter, per payload kind, in-process vs through its
//! dynamic library. Run after `cargo build --release --workspace` (the libraries):
//! `cargo bench -p tributary-bench --bench normalize_finicity`.

mod common;

use common::Case;
use criterion::{Criterion, criterion_group, criterion_main};

const CASES: &[Case] = &[
    Case {
        name: "finicity/added-accounts",
        adapter: "finicity",
        fixture: "added",
    },
    Case {
        name: "finicity/discovered-accounts",
        adapter: "finicity",
        fixture: "discovered",
    },
];

fn normalize(c: &mut Criterion) {
    for case in CASES {
        common::bench_case::<tributary_adapter_finicity::Finicity>(c, case);
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = normalize
}
criterion_main!(benches);
