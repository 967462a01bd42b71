//! The canonical Tributary event model: every provider's webhook becomes these types.
//!
//! Generated from `proto/tributary/v1` with prost; each message also (de)serializes as proto3
//! JSON (camelCase names, RFC 3339 timestamps, enum names), which is what golden fixtures and
//! the dry-run output use.

/// `tributary.v1`: the canonical event, its payloads, the plugin-boundary messages and the
/// gRPC request/response messages. (Generated: the proto comments use `<placeholder>` text,
/// which is not rustdoc markup.)
#[allow(clippy::all, missing_docs, rustdoc::invalid_html_tags)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/tributary.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/tributary.v1.serde.rs"));
}

/// Field numbers of the messages that the host and the logs encode or read field by field
/// (appended fields, partial reads), generated from the descriptors so they cannot drift
/// from proto/.
pub mod fields {
    include!(concat!(env!("OUT_DIR"), "/field_numbers.rs"));
}

/// The plugin's answer with its events left encoded, for storing them as they come back.
pub mod plugin_wire;

/// Checks that stored bytes decode as a `tributary.v1.Event`, without decoding them.
pub mod check;

/// `io.cloudevents.v1`: the CloudEvents Protobuf Format (`CloudEvent`, `CloudEventBatch`), as
/// the `CloudEventStream` service streams it to CloudEvents SDKs.
pub mod cloudevents {
    /// The CloudEvents 1.0 protobuf messages (proto/io/cloudevents/v1/cloudevents.proto).
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/io.cloudevents.v1.rs"));
    }
}

/// `tributary.v1` gRPC services (server traits) and clients, on the [`v1`] message types.
#[cfg(feature = "grpc")]
#[allow(clippy::all, missing_docs)]
pub mod grpc {
    include!(concat!(env!("OUT_DIR"), "/grpc/tributary.v1.rs"));
}

/// Wire types the server sends as already-encoded bytes.
#[cfg(feature = "grpc")]
pub mod wire;

/// Services generated on [`wire`] types: the `EventStream` server whose `Subscribe` streams
/// [`wire::EncodedEvent`]s (the same bytes on the wire as `v1::Event`).
#[cfg(feature = "grpc")]
pub mod encoded {
    pub use crate::encoded_services::event_stream_server;
}

/// Every `tributary.v1` server, generated again with `Event` as [`wire::EncodedEvent`]; only
/// `EventStream` is used (see [`encoded`]).
#[cfg(feature = "grpc")]
#[allow(clippy::all, missing_docs, dead_code)]
mod encoded_services {
    include!(concat!(env!("OUT_DIR"), "/grpc_encoded/tributary.v1.rs"));
}

/// Encoded `FileDescriptorSet` of `tributary.v1` (and `io.cloudevents.v1`), for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tributary_descriptor.bin"));

pub use pbjson_types as well_known;
