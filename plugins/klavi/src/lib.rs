//! Klavi (Brazilian open finance) adapter: API event webhooks (links, consents, data requests
//! and data products) to canonical Tributary events.
//!
//! The body is a JSON array; every element becomes one canonical event (deduplicated on its
//! own `eventId`) or one dead-lettered item: when its eventType/eventName is unknown, and when
//! it is not a Klavi event at all (not an object, no `eventId` or no `eventName`), so one bad
//! element never costs its siblings. The tax ids (CPF, CNPJ) leave the adapter only after the
//! source's personal-data policy.

pub mod config;
pub mod envelope;
pub mod map;
pub mod verify;

use tributary_plugin_sdk::lenient;
use tributary_plugin_sdk::personal_data::PersonalDataGuard;
use tributary_plugin_sdk::prelude::*;

use crate::config::Config;
use crate::verify::Verifier;

/// JSON keys (lowercase) of Klavi payloads that hold personal data under Brazil's LGPD: the CPF
/// (`personalTaxId`), the CNPJ (`businessTaxId`), a product request's `taxId`, and the `cpf` /
/// `cnpj` spellings of Klavi's other APIs. The host redacts them when it shows a raw body.
pub const PERSONAL_DATA_FIELDS: &[&str] =
    &["personaltaxid", "businesstaxid", "taxid", "cpf", "cnpj"];

/// Keys whose string values are safe to show an operator in a raw body (ids, names of
/// events and products, statuses, times); every other string value is masked there.
pub const DISPLAY_FIELDS: &[&str] = &[
    "eventid",
    "eventname",
    "eventtype",
    "eventtime",
    "apiversion",
    "linkid",
    "consentid",
    "requestid",
    "analysisid",
    "createdat",
    "expireat",
    "status",
    "product",
    "failurereason",
    "institutioncode",
];

/// One configured Klavi source.
pub struct Klavi {
    verifier: Verifier,
    guard: PersonalDataGuard,
}

impl Adapter for Klavi {
    type Config = Config;

    fn info() -> AdapterInfo {
        AdapterInfo {
            name: "klavi".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            provider: "Klavi".into(),
            description: "Klavi open-finance API events: links, consents, data requests and \
                          data products"
                .into(),
            personal_data_fields: PERSONAL_DATA_FIELDS.iter().map(|f| (*f).into()).collect(),
            display_fields: DISPLAY_FIELDS.iter().map(|f| (*f).into()).collect(),
        }
    }

    fn new(config: Self::Config, host: &HostContext) -> Result<Self, String> {
        let verifier = Verifier::from_config(&config)?;
        let guard = config.personal_data.resolve(&host.installation_key)?;
        Ok(Self { verifier, guard })
    }

    fn warnings(&self) -> Vec<String> {
        self.verifier.warnings()
    }

    fn instance_info(&self) -> InstanceInfo {
        self.verifier.instance_info()
    }

    fn verify_secret(&self, request: &Request<'_>) -> Result<Option<SecretInfo>, Rejection> {
        self.verifier.verify(request)
    }

    fn verify(&self, request: &Request<'_>) -> Result<(), Rejection> {
        self.verifier.verify(request).map(drop)
    }

    fn normalize(&self, request: &Request<'_>) -> Result<Normalized, Rejection> {
        // Straight from the body into types, in one parse; through a `Value` only when the
        // body does not parse, for the exact error (see `lenient::from_body`).
        let parsed;
        let body = match lenient::from_body(request.body()) {
            Some(body) => body,
            None => {
                parsed = request.json()?;
                envelope::body_from_value(&parsed)?
            }
        };
        self.normalize_body(&body, request)
    }
}

impl Klavi {
    /// Maps every element of a body, however it was read.
    fn normalize_body(
        &self,
        body: &envelope::Body<'_>,
        request: &Request<'_>,
    ) -> Result<Normalized, Rejection> {
        let mut elements = envelope::elements(body, request.body())?;
        let mut normalized = Normalized::default();
        if elements.items.is_empty() {
            normalized
                .ignored
                .push("empty event array: nothing to store".to_owned());
            return Ok(normalized);
        }
        let items = elements.items;
        for (index, element) in items.iter().enumerate() {
            let (event, envelope) = match envelope::envelope(index, element) {
                Ok(found) => found,
                Err(reason) => {
                    // Not a Klavi event, yet authentic (the whole body is signed): kept as a
                    // dead letter. Without a usable eventId the host keys it on the element's
                    // content (`sha256:<hex of these bytes>`), so a retry of the same array
                    // adds nothing and it never collides with a sibling's eventId.
                    normalized.unmapped.push(UnmappedItem {
                        provider_event_id: String::new(),
                        provider_event_type: envelope::event_name(element),
                        reason: format!("{reason}: not a Klavi event, dead-lettered"),
                        raw: elements.raw(index)?.to_vec(),
                    });
                    continue;
                }
            };
            let reason = match envelope::classify(&envelope) {
                None => format!(
                    "unknown Klavi event: eventType {:?}, eventName {:?}",
                    envelope.event_type, envelope.event_name
                ),
                Some(kind) => match map::event(event, &envelope, kind, &self.guard) {
                    Ok(event) => {
                        normalized.events.push(event);
                        continue;
                    }
                    Err(reason) => reason,
                },
            };
            normalized.unmapped.push(UnmappedItem {
                provider_event_id: envelope.event_id.to_owned(),
                provider_event_type: envelope.event_name.to_owned(),
                reason,
                raw: elements.raw(index)?.to_vec(),
            });
        }
        Ok(normalized)
    }
}

export_adapter!(Klavi);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use tributary_plugin_sdk::testing::{dropped_fields, mutations, numbers_survive_a_value};

    fn adapter() -> Klavi {
        let host = HostContext {
            source: "klavi".into(),
            installation_key: "k".into(),
        };
        let config = serde_json::from_value(json!({"verification": {"disabled": true}}));
        Klavi::new(config.expect("config"), &host).expect("adapter")
    }

    fn request(body: &[u8]) -> WebhookRequest {
        WebhookRequest {
            body: body.to_vec(),
            ..Default::default()
        }
    }

    /// The same body through the `Value` path only (what `normalize` falls back to).
    fn run_via_value(a: &Klavi, body: &[u8]) -> Result<Normalized, Rejection> {
        let request = request(body);
        let request = Request::new(&request);
        let parsed = request.json()?;
        let body = envelope::body_from_value(&parsed)?;
        a.normalize_body(&body, &request)
    }

    /// Nothing documented is dropped silently: in every example of the Klavi documentation
    /// (the seed's events), changing any field changes the canonical result.
    #[test]
    fn every_documented_field_reaches_the_event() {
        let a = adapter();
        let run = |body: &Value| a.normalize(&Request::new(&request(body.to_string().as_bytes())));
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        let mut examples: Vec<_> = std::fs::read_dir(dir)
            .expect("fixtures")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                name.starts_with("seed-") && name.ends_with(".raw.json")
            })
            .collect();
        examples.sort();
        assert_eq!(examples.len(), 10);
        let mut dropped = std::collections::BTreeSet::new();
        for path in &examples {
            let body: Value =
                serde_json::from_slice(&std::fs::read(path).expect("raw")).expect("json");
            let original = run(&body).expect("maps");
            assert!(
                original.unmapped.is_empty() && original.events.len() == 1,
                "{path:?}"
            );
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            for field in dropped_fields(&body, &[], run) {
                dropped.insert(format!("{name} {field}"));
            }
        }
        assert!(dropped.is_empty(), "{dropped:#?}");
    }

    /// Bodies read straight into types give what reading them from a `Value` gives: every
    /// fixture with each node replaced by values of other types, repeated and escaped keys,
    /// nesting at serde_json's limit, and bodies the parser refuses (same rejection text).
    #[test]
    fn typed_reads_agree_with_the_value_path() {
        let a = adapter();
        let odd = [
            json!(null),
            json!(-12),
            json!(1.25),
            json!(" 258.722.521-37 "),
            json!(true),
            json!([1, "a", {"consentId": "x"}, null]),
            json!({"consentId": 9, "pix": "https://x", "eventId": "e", "eventName": "link_created"}),
        ];
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        let mut seeds: Vec<_> = std::fs::read_dir(dir)
            .expect("fixtures")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".raw.json"))
            .collect();
        seeds.sort();
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        for path in seeds {
            let seed = std::fs::read_to_string(&path).expect("fixture");
            bodies.push(seed.clone().into_bytes());
            if let Ok(root) = serde_json::from_str::<Value>(&seed) {
                bodies.extend(mutations(&root, &odd));
            }
            for (from, to) in [
                ("\"eventId\"", "\"eventId\": \"first\", \"eventId\""),
                ("\"eventName\"", "\"eventName\": 5, \"eventName\""),
                (
                    "\"payload\"",
                    "\"payload\": {\"linkId\": \"l\"}, \"payload\"",
                ),
                ("\"consents\"", "\"consents\": [{}, {}], \"consents\""),
                (
                    "\"productCallbackURL\"",
                    "\"productCallbackURL\": null, \"productsCallbackURL\"",
                ),
                ("\"eventName\"", "\"ev\\u0065ntName\""),
                ("\"payload\"", &format!("\"x\": {}, \"payload\"", deep(125))),
                ("\"payload\"", &format!("\"x\": {}, \"payload\"", deep(126))),
                ("\"eventId\"", "\"x\": 1e400, \"eventId\""),
            ] {
                bodies.push(seed.replacen(from, to, 1).into_bytes());
            }
            bodies.push(seed.as_bytes()[..seed.len() / 2].to_vec());
        }
        for body in [
            "[]",
            "[[]]",
            "\"x\"",
            "null",
            "[{}] x",
            "\u{feff}[]",
            "[1, {}, \"s\"]",
        ] {
            bodies.push(body.as_bytes().to_vec());
        }
        bodies.push(b"[{\"eventId\": \"\xff\"}]".to_vec());
        // Numbers a `Value` cannot hold are read exactly from the text only (the golden
        // fixtures check those); every other body reads the same either way.
        for body in bodies.iter().filter(|body| numbers_survive_a_value(body)) {
            assert_eq!(
                a.normalize(&Request::new(&request(body))),
                run_via_value(&a, body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(bodies.len() > 3_000, "{}", bodies.len());
    }

    /// In a partly bad array every element keeps its place and its own bytes: events for the
    /// good ones, dead letters (with the element's bytes as received) for the others.
    #[test]
    fn partly_bad_arrays_keep_order_and_element_bytes() {
        let body =
            br#" [ {"eventId": "a", "eventName": "link_created", "payload": {"linkId": "l1"}},
            7 , {"eventName": "link_created"},{"eventId":"d","eventName":"analysis_finished"},
            {"eventId": "e", "eventName": "Link Created"} ] "#;
        let normalized = adapter()
            .normalize(&Request::new(&request(body)))
            .expect("maps");
        let ids: Vec<&str> = normalized
            .events
            .iter()
            .filter_map(|e| e.provenance.as_ref())
            .map(|p| p.provider_event_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "e"]);
        let raw: Vec<&[u8]> = normalized.unmapped.iter().map(|u| &u.raw[..]).collect();
        assert_eq!(
            raw,
            [
                &b"7"[..],
                br#"{"eventName": "link_created"}"#,
                br#"{"eventId":"d","eventName":"analysis_finished"}"#,
            ]
        );
        assert_eq!(normalized.unmapped[1].provider_event_type, "link_created");
        assert_eq!(normalized.unmapped[2].provider_event_id, "d");
    }

    #[test]
    fn personal_data_fields_are_declared_in_lowercase() {
        let declared = tributary_plugin_sdk::ffi::adapter_info::<Klavi>().personal_data_fields;
        assert_eq!(declared.len(), PERSONAL_DATA_FIELDS.len(), "no duplicates");
        for field in PERSONAL_DATA_FIELDS {
            assert_eq!(*field, field.to_lowercase());
        }
        for key in ["personalTaxId", "businessTaxId", "taxId"] {
            assert!(declared.contains(&key.to_lowercase()), "{key}");
        }
    }
}
