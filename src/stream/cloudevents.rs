//! `CloudEventStream.Subscribe`: the events of `EventStream.Subscribe` as CloudEvents 1.0 in the
//! CloudEvents Protobuf Format (`io.cloudevents.v1.CloudEvent`), so consumers built on
//! CloudEvents SDKs (Knative, Dapr, Argo Events) read them without knowing `tributary.v1`.
//!
//! Subscriptions are [`StreamService::open`]'s (same scopes, filters, start positions, durable
//! consumers, limits and traces); each event is mapped by the pure [`to_cloud_event`]. The
//! mapping is documented in docs/taxonomy.md ("CloudEvents").

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use prost::Message;
use tonic::{Request, Response, Status};
use tributary_model::cloudevents::v1::CloudEvent;
use tributary_model::cloudevents::v1::cloud_event::cloud_event_attribute_value::Attr;
use tributary_model::cloudevents::v1::cloud_event::{CloudEventAttributeValue, Data};
use tributary_model::v1::{Event, SubscribeRequest};
use tributary_model::well_known::Any;

use super::StreamService;
use crate::auth::Principal;
use crate::config::CloudEventsConfig;
use crate::proto::cloud_event_stream_server::CloudEventStream;

/// The CloudEvents specification version Tributary's envelopes follow (`Event.specversion`,
/// `CloudEvent.spec_version`).
pub const SPEC_VERSION: &str = "1.0";

/// The `google.protobuf.Any` type URL of `proto_data` and the `dataschema` attribute: the
/// canonical event, the only data a CloudEvent of this stream carries.
pub const EVENT_TYPE_URL: &str = "type.googleapis.com/tributary.v1.Event";

/// The media type of `proto_data` (the CloudEvents Protobuf Format's name for protobuf).
const DATA_CONTENT_TYPE: &str = "application/protobuf";

/// The `CloudEventStream` gRPC service: `EventStream`'s subscriptions, mapped.
#[derive(Clone)]
pub struct CloudEventService {
    stream: StreamService,
    config: Arc<CloudEventsConfig>,
}

impl CloudEventService {
    /// Delivers `stream`'s subscriptions named after `config` (`[cloudevents]`).
    pub fn new(stream: StreamService, config: CloudEventsConfig) -> Self {
        Self {
            stream,
            config: Arc::new(config),
        }
    }
}

/// A subscription's events as CloudEvents.
pub type CloudEventStreamResult = Pin<Box<dyn Stream<Item = Result<CloudEvent, Status>> + Send>>;

#[tonic::async_trait]
impl CloudEventStream for CloudEventService {
    type SubscribeStream = CloudEventStreamResult;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let subscriber = super::subscriber_context(&request);
        let principal = Principal::of(&request)?;
        let events = self
            .stream
            .open(
                &principal,
                request.into_inner(),
                super::Reader::CloudEventStream,
                subscriber,
            )
            .await?;
        let config = Arc::clone(&self.config);
        let cloud_events =
            events.map(move |item| item.map(|event| to_cloud_event(&event, &config)));
        Ok(Response::new(Box::pin(cloud_events)))
    }
}

/// `event` as a CloudEvent: `id` as is, `source` = `source_prefix` + the source name, `type` =
/// `type_prefix` + the canonical type, the optional and extension attributes of
/// docs/taxonomy.md (empty values left out), and the whole event, encoded, as `proto_data`, so
/// nothing (references, partner metadata, the typed payload) is lost to a consumer that decodes
/// it.
pub fn to_cloud_event(event: &Event, config: &CloudEventsConfig) -> CloudEvent {
    let mut attributes = HashMap::new();
    let mut put = |name: &str, attr: Attr| {
        attributes.insert(
            name.to_owned(),
            CloudEventAttributeValue { attr: Some(attr) },
        );
    };
    let mut put_string = |name: &str, value: &str| {
        if !value.is_empty() {
            put(name, Attr::CeString(value.to_owned()));
        }
    };
    put_string("datacontenttype", DATA_CONTENT_TYPE);
    put_string("subject", &event.subject);
    put_string("traceparent", &event.traceparent);
    put_string("tracestate", &event.tracestate);
    put_string("tributarysource", &event.source);
    if let Some(provenance) = &event.provenance {
        put_string("adapter", &provenance.adapter);
        put_string("adapterversion", &provenance.adapter_version);
        put_string("providereventid", &provenance.provider_event_id);
        put_string("providereventtype", &provenance.provider_event_type);
    }
    if let Some(replay_of) = &event.replay_of {
        put_string("replayofid", &replay_of.event_id);
        if replay_of.sequence > 0 {
            put_string("replayofsequence", &replay_of.sequence.to_string());
        }
    }
    // u64 values are decimal strings: the CloudEvents Integer is 32-bit.
    if event.sequence > 0 {
        put_string("tributarysequence", &event.sequence.to_string());
    }
    if event.raw_id > 0 {
        put_string("rawid", &event.raw_id.to_string());
    }
    put("dataschema", Attr::CeUriRef(EVENT_TYPE_URL.to_owned()));
    if let Some(time) = event.time {
        put("time", Attr::CeTimestamp(time));
    }
    if let Some(received_at) = event.received_at {
        put("receivedat", Attr::CeTimestamp(received_at));
    }
    CloudEvent {
        id: event.id.clone(),
        source: format!("{}{}", config.source_prefix, event.source),
        spec_version: SPEC_VERSION.to_owned(),
        r#type: format!("{}{}", config.type_prefix, event.r#type),
        attributes,
        data: Some(Data::ProtoData(Any {
            type_url: EVENT_TYPE_URL.to_owned(),
            value: event.encode_to_vec().into(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_model::v1::{Provenance, ReplayOf, StatementEvent, event::Payload};
    use tributary_model::well_known::Timestamp;

    fn config() -> CloudEventsConfig {
        CloudEventsConfig {
            source_prefix: "tributary://prod-eu/".into(),
            type_prefix: "com.example.tributary.".into(),
        }
    }

    fn full_event() -> Event {
        Event {
            id: "arcadia:whk_1".into(),
            source: "arcadia".into(),
            r#type: "statement.available".into(),
            subject: "stm_1".into(),
            time: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            datacontenttype: "application/protobuf".into(),
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            tracestate: "vendor=x".into(),
            sequence: u64::MAX,
            received_at: Some(Timestamp {
                seconds: 1_700_000_100,
                nanos: 0,
            }),
            provenance: Some(Provenance {
                adapter: "arcadia".into(),
                adapter_version: "0.2.0".into(),
                provider_event_id: "whk_1".into(),
                provider_event_type: "NEW_DATA_AVAILABLE".into(),
                ..Provenance::default()
            }),
            raw_id: 7,
            replay_of: Some(ReplayOf {
                event_id: "arcadia:whk_0".into(),
                sequence: 3,
                adapter_version: "0.1.0".into(),
            }),
            specversion: "1.0".into(),
            payload: Some(Payload::Statement(StatementEvent {
                id: "stm_1".into(),
                ..StatementEvent::default()
            })),
            ..Event::default()
        }
    }

    fn string(value: &str) -> Attr {
        Attr::CeString(value.into())
    }

    fn attributes(cloud_event: &CloudEvent) -> std::collections::BTreeMap<String, Attr> {
        cloud_event
            .attributes
            .iter()
            .map(|(name, value)| (name.clone(), value.attr.clone().expect("a value")))
            .collect()
    }

    #[test]
    fn a_full_event_maps_to_every_attribute() {
        let event = full_event();
        let cloud_event = to_cloud_event(&event, &config());
        assert_eq!(cloud_event.id, "arcadia:whk_1");
        assert_eq!(cloud_event.source, "tributary://prod-eu/arcadia");
        assert_eq!(cloud_event.spec_version, "1.0");
        assert_eq!(
            cloud_event.r#type,
            "com.example.tributary.statement.available"
        );
        let expected: std::collections::BTreeMap<String, Attr> = [
            ("datacontenttype", string("application/protobuf")),
            (
                "dataschema",
                Attr::CeUriRef("type.googleapis.com/tributary.v1.Event".into()),
            ),
            ("subject", string("stm_1")),
            (
                "time",
                Attr::CeTimestamp(Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 5,
                }),
            ),
            (
                "traceparent",
                string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ),
            ("tracestate", string("vendor=x")),
            ("tributarysource", string("arcadia")),
            ("tributarysequence", string("18446744073709551615")),
            (
                "receivedat",
                Attr::CeTimestamp(Timestamp {
                    seconds: 1_700_000_100,
                    nanos: 0,
                }),
            ),
            ("rawid", string("7")),
            ("adapter", string("arcadia")),
            ("adapterversion", string("0.2.0")),
            ("providereventid", string("whk_1")),
            ("providereventtype", string("NEW_DATA_AVAILABLE")),
            ("replayofid", string("arcadia:whk_0")),
            ("replayofsequence", string("3")),
        ]
        .into_iter()
        .map(|(name, attr)| (name.to_owned(), attr))
        .collect();
        assert_eq!(attributes(&cloud_event), expected);
        let Some(Data::ProtoData(any)) = &cloud_event.data else {
            panic!("proto_data: {:?}", cloud_event.data);
        };
        assert_eq!(any.type_url, "type.googleapis.com/tributary.v1.Event");
        assert_eq!(Event::decode(any.value.as_ref()).expect("an Event"), event);
    }

    #[test]
    fn empty_values_are_left_out_and_the_default_prefixes_apply() {
        let event = Event {
            id: "klavi:e1".into(),
            source: "klavi".into(),
            r#type: "consent.granted".into(),
            sequence: 1,
            ..Event::default()
        };
        let cloud_event = to_cloud_event(&event, &CloudEventsConfig::default());
        assert_eq!(cloud_event.source, "tributary:///klavi");
        assert_eq!(cloud_event.r#type, "consent.granted");
        let names: Vec<String> = attributes(&cloud_event).into_keys().collect();
        assert_eq!(
            names,
            [
                "datacontenttype",
                "dataschema",
                "tributarysequence",
                "tributarysource"
            ]
        );
    }

    #[test]
    fn attribute_names_follow_the_cloudevents_naming_rules() {
        // CloudEvents 1.0: lower-case a-z and 0-9 only, 20 characters at most recommended;
        // and none may shadow a REQUIRED attribute (those are fields of their own).
        let cloud_event = to_cloud_event(&full_event(), &config());
        assert_eq!(cloud_event.attributes.len(), 16, "every attribute is set");
        for name in cloud_event.attributes.keys() {
            assert!(
                (1..=20).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{name:?}"
            );
            assert!(
                !["id", "source", "specversion", "type"].contains(&name.as_str()),
                "{name}"
            );
        }
    }
}
