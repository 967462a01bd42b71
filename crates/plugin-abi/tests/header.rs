//! The published C header is generated from this crate by cbindgen and must be current.
//! `UPDATE_HEADER=1 cargo test -p tributary-plugin-abi` regenerates it.

use std::path::Path;

#[test]
fn c_header_is_generated_from_the_rust_definitions() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("utf-8 header");
    let path = crate_dir.join("include/tributary_plugin.h");
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write header");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} is stale: run `UPDATE_HEADER=1 cargo test -p tributary-plugin-abi` and commit it",
        path.display()
    );
}
