//! Golden fixtures through the real dynamically loaded plugin, exactly as the server loads it.
//! `UPDATE_FIXTURES=1 cargo test` rewrites the expectations (review the diff before committing).

use tributary_plugin_host::fixtures;

#[test]
fn golden_fixtures() {
    fixtures::assert_golden(env!("CARGO_PKG_NAME"), env!("CARGO_MANIFEST_DIR"));
}
