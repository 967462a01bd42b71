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
    fs::write(out.join("event_schema.rs"), event_schema(&fds)?)?;
    fs::write(out.join("field_numbers.rs"), field_numbers(&fds)?)?;
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

/// The wire shape of `tributary.v1.Event` and every message under it, as Rust tables for
/// `check.rs`: per message (`MESSAGES[i]`, `EVENT` first), its fields by number with the kind
/// of value each holds, so stored events can be checked the way prost decodes them without
/// decoding them.
/// The messages whose field numbers code outside prost needs (encoders of appended fields,
/// partial decoders): `(full name, module name)`.
const NUMBERED: &[(&str, &str)] = &[
    ("tributary.v1.Event", "event"),
    ("tributary.v1.Provenance", "provenance"),
    ("tributary.v1.DeadLetter", "dead_letter"),
];

/// `pub mod <module> { pub const <FIELD>: u32 = <number>; ... }` for each of [`NUMBERED`].
fn field_numbers(
    fds: &protox::prost_reflect::prost_types::FileDescriptorSet,
) -> Result<String, Box<dyn std::error::Error>> {
    use std::fmt::Write as _;
    let mut code = String::new();
    for (full_name, module) in NUMBERED {
        let (package, name) = full_name
            .rsplit_once('.')
            .ok_or_else(|| format!("{full_name}: no package"))?;
        let message = fds
            .file
            .iter()
            .filter(|file| file.package() == package)
            .flat_map(|file| &file.message_type)
            .find(|message| message.name() == name)
            .ok_or_else(|| format!("message {full_name} not in the descriptor set"))?;
        writeln!(code, "/// Field numbers of `{full_name}`.")?;
        writeln!(code, "pub mod {module} {{")?;
        for field in &message.field {
            writeln!(
                code,
                "    pub const {}: u32 = {};",
                field.name().to_uppercase(),
                field.number()
            )?;
        }
        writeln!(code, "}}")?;
    }
    Ok(code)
}

fn event_schema(
    fds: &protox::prost_reflect::prost_types::FileDescriptorSet,
) -> Result<String, Box<dyn std::error::Error>> {
    use std::collections::HashMap;
    use std::fmt::Write as _;
    // Every message by full name (".pkg.Outer.Inner").
    let mut messages = HashMap::new();
    fn collect<'a>(
        prefix: &str,
        message: &'a protox::prost_reflect::prost_types::DescriptorProto,
        into: &mut HashMap<String, &'a protox::prost_reflect::prost_types::DescriptorProto>,
    ) {
        let name = format!("{prefix}.{}", message.name());
        for nested in &message.nested_type {
            collect(&name, nested, into);
        }
        into.insert(name, message);
    }
    for file in &fds.file {
        let prefix = match file.package() {
            "" => String::new(),
            package => format!(".{package}"),
        };
        for message in &file.message_type {
            collect(&prefix, message, &mut messages);
        }
    }
    let mut order = vec![".tributary.v1.Event".to_owned()];
    let mut index: HashMap<String, usize> = HashMap::from([(order[0].clone(), 0)]);
    let mut tables = Vec::new();
    let mut next = 0;
    while next < order.len() {
        let name = order[next].clone();
        next += 1;
        let message = messages
            .get(&name)
            .ok_or_else(|| format!("message {name} not in the descriptor set"))?;
        let mut fields: Vec<(i32, String)> = Vec::new();
        for field in &message.field {
            use protox::prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
            let repeated = field.label() == Label::Repeated;
            let kind = match field.r#type() {
                Type::Int64
                | Type::Uint64
                | Type::Int32
                | Type::Bool
                | Type::Uint32
                | Type::Enum
                | Type::Sint32
                | Type::Sint64 => format!("Kind::Varint {{ repeated: {repeated} }}"),
                Type::Fixed32 | Type::Sfixed32 | Type::Float => {
                    format!("Kind::Fixed32 {{ repeated: {repeated} }}")
                }
                Type::Fixed64 | Type::Sfixed64 | Type::Double => {
                    format!("Kind::Fixed64 {{ repeated: {repeated} }}")
                }
                Type::String => "Kind::String".to_owned(),
                Type::Bytes => "Kind::Bytes".to_owned(),
                Type::Message => {
                    let target = field.type_name().to_owned();
                    let at = match index.get(&target) {
                        Some(at) => *at,
                        None => {
                            order.push(target.clone());
                            index.insert(target, order.len() - 1);
                            order.len() - 1
                        }
                    };
                    format!("Kind::Message({at})")
                }
                Type::Group => return Err(format!("{name}: groups are not supported").into()),
            };
            fields.push((field.number(), kind));
        }
        fields.sort();
        tables.push((name, fields));
    }
    let mut code = String::from(
        "// Generated by build.rs (event_schema) from proto/: the wire shape of tributary.v1.Event.\n",
    );
    // Indexed by field number (a direct look-up per field): numbers are small here.
    writeln!(code, "pub(crate) const EVENT: usize = 0;")?;
    writeln!(code, "pub(crate) static MESSAGES: &[&[Option<Kind>]] = &[")?;
    for (name, fields) in &tables {
        let max = fields.last().map_or(0, |(number, _)| *number);
        if max > 1024 {
            return Err(format!("{name}: field number {max} is too large for a table").into());
        }
        writeln!(code, "    // {name}")?;
        write!(code, "    &[")?;
        let mut fields = fields.iter().peekable();
        for number in 0..=max {
            match fields.next_if(|(n, _)| *n == number) {
                Some((_, kind)) => write!(code, "Some({kind}), ")?,
                None => write!(code, "None, ")?,
            }
        }
        writeln!(code, "],")?;
    }
    writeln!(code, "];")?;
    Ok(code)
}
