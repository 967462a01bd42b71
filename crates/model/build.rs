//! Compiles proto/tributary/v1 into prost types plus their proto3 JSON (serde) mapping, and,
//! with the `grpc` feature, the tonic services and clients on those same types. Also compiles
//! the CloudEvents Protobuf Format (proto/io/cloudevents/v1), which `CloudEventStream` streams
//! (prost types only: no JSON mapping, CloudEvents has its own JSON format). protox is a
//! pure-Rust protobuf compiler: no `protoc` is needed on the machine.

use std::{env, fs, path::PathBuf};

use protox::prost::Message as _;

const PROTOS: &[&str] = &[
    "io/cloudevents/v1/cloudevents.proto",
    "tributary/v1/common.proto",
    "tributary/v1/connection.proto",
    "tributary/v1/utility.proto",
    "tributary/v1/session.proto",
    "tributary/v1/consent.proto",
    "tributary/v1/event.proto",
    "tributary/v1/plugin.proto",
    "tributary/v1/dead_letter.proto",
    "tributary/v1/archive.proto",
    "tributary/v1/service.proto",
    "tributary/v1/cloudevent_stream.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let out = PathBuf::from(env::var("OUT_DIR")?);

    let fds = protox::compile(PROTOS, [&root])?;
    let descriptor_bytes = fds.encode_to_vec();
    fs::write(out.join("tributary_descriptor.bin"), &descriptor_bytes)?;

    prost_build::Config::new()
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(fds.clone())?;

    // Services only: the messages above are their types (one definition everywhere). Plugins
    // depend on this crate without the feature, so they never build tonic.
    if env::var_os("CARGO_FEATURE_GRPC").is_some() {
        let grpc_out = out.join("grpc");
        fs::create_dir_all(&grpc_out)?;
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(true)
            .out_dir(&grpc_out)
            .extern_path(".tributary.v1", "crate::v1")
            .extern_path(".io.cloudevents.v1", "crate::cloudevents::v1")
            .compile_well_known_types(true)
            .extern_path(".google.protobuf", "::pbjson_types")
            .compile_fds(fds.clone())?;
        // The servers again, with `Event` sent as pre-encoded bytes (`wire::EncodedEvent`):
        // prost resolves the most specific extern path, so every other message stays `v1`.
        let encoded_out = out.join("grpc_encoded");
        fs::create_dir_all(&encoded_out)?;
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(false)
            .out_dir(&encoded_out)
            .extern_path(".tributary.v1", "crate::v1")
            .extern_path(".tributary.v1.Event", "crate::wire::EncodedEvent")
            .extern_path(".io.cloudevents.v1", "crate::cloudevents::v1")
            .compile_well_known_types(true)
            .extern_path(".google.protobuf", "::pbjson_types")
            .compile_fds(fds)?;
    }

    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .build(&[".tributary.v1"])?;
    Ok(())
}
