//! Generates the gRPC service code (tonic) for proto/tributary/v1/service.proto. Message types
//! come from the `tributary-model` crate, so the model has one definition everywhere.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let fds = protox::compile(["tributary/v1/service.proto"], [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .extern_path(".tributary.v1", "::tributary_model::v1")
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(fds)?;
    Ok(())
}
