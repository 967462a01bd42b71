//! Normalize cost per event of the arcadia adapter, per payload kind, in-process vs through its
//! dynamic library. Run after `cargo build --release --workspace` (the libraries):
//! `cargo bench -p tributary-bench --bench normalize_arcadia`.

mod common;

use common::Case;
use criterion::{Criterion, criterion_group, criterion_main};

const CASES: &[Case] = &[
    Case {
        name: "arcadia/statement",
        adapter: "arcadia",
        fixture: "seed-statement-new-data-available",
    },
    Case {
        name: "arcadia/credential",
        adapter: "arcadia",
        fixture: "seed-credential-status-change-success",
    },
    Case {
        name: "arcadia/meter",
        adapter: "arcadia",
        fixture: "seed-meter-new-data-available",
    },
];

fn normalize(c: &mut Criterion) {
    for case in CASES {
        common::bench_case::<tributary_adapter_arcadia::Arcadia>(c, case);
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = normalize
}
criterion_main!(benches);
