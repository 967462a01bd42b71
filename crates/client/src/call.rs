//! The generated gRPC client as this crate uses it: every call carries the bearer token and the
//! caller's trace context.

use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tributary_model::grpc::event_stream_client::EventStreamClient;

/// The generated client with this crate's interceptor.
pub(crate) type Raw = EventStreamClient<InterceptedService<Channel, CallMetadata>>;

/// Adds the bearer token and the caller's W3C trace context (so the server links its deliver
/// spans to the subscriber's trace) to every call.
#[derive(Clone)]
pub(crate) struct CallMetadata {
    authorization: Option<AsciiMetadataValue>,
}

impl CallMetadata {
    /// Sends `authorization` (a `Bearer` value) with every call, when given.
    pub(crate) fn new(authorization: Option<AsciiMetadataValue>) -> Self {
        Self { authorization }
    }
}

impl Interceptor for CallMetadata {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        let cx = opentelemetry::Context::current();
        if cx.span().span_context().is_valid() {
            TraceContextPropagator::new()
                .inject_context(&cx, &mut MetadataInjector(request.metadata_mut()));
        }
        Ok(request)
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::AsciiMetadataKey::from_bytes(key.as_bytes()),
            AsciiMetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}
