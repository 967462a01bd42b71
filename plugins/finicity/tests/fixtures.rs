//! Golden fixtures through the real dynamically loaded plugin, exactly as the server loads it.
//! `UPDATE_FIXTURES=1 cargo test` rewrites the expectations (review the diff before committing).

use std::path::Path;

use tributary_plugin_host::{Plugin, fixtures};

#[test]
fn golden_fixtures() {
    let library = fixtures::built_library(env!("CARGO_PKG_NAME"));
    let plugin = Plugin::load(&library).expect("plugin loads");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    let report = fixtures::run_dir(&plugin, &dir, update).expect("fixtures run");
    assert!(report.passed(), "{report}");
}
