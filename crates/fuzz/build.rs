//! Every plugin crate exports the same two C entry points (`tributary_adapter_v2`,
//! `tributary_abi_version`, from `export_adapter!`): right for the cdylib the server loads, a
//! duplicate symbol when three plugin rlibs are linked into one binary, as here. Nothing in
//! these binaries calls the entry points (the adapters run through their Rust types), so the
//! linker may keep any one of them.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg=-Wl,--allow-multiple-definition");
    }
}
