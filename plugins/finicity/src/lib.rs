//! Finicity / Mastercard Open Banking Connect adapter: verifies the `X-Finicity-Signature`
//! HMAC and maps each of the 16 Connect webhook events onto one canonical event (`ping` is
//! acknowledged and ignored). See the crate README for the config and the mapping table.

mod config;
mod envelope;
mod map;
mod verify;

use tributary_plugin_sdk::lenient;
use tributary_plugin_sdk::personal_data::PersonalDataGuard;
use tributary_plugin_sdk::prelude::*;

pub use config::{Config, DEFAULT_SIGNATURE_HEADER};
use envelope::Envelope;
use verify::Verifier;

/// The `eventType` Finicity sends to check the webhook URL; acknowledged, never stored.
const PING: &str = "ping";

/// JSON keys (lowercase) of Finicity payloads that hold personal data: an account's `number`
/// (and the `realAccountNumber` / `accountNumber` spellings of other Finicity APIs), its
/// masked display form, its `name` and the customer's own `accountNickname`, and contact
/// fields. `customerId`/`consumerId` are Finicity's opaque ids. The host redacts these keys
/// when it shows a raw body.
/// Keys whose string values are safe to show an operator in a raw body (ids, event types,
/// statuses, codes); every other string value is masked there.
pub const DISPLAY_FIELDS: &[&str] = &[
    "eventid",
    "eventtype",
    "customerid",
    "consumerid",
    "institutionid",
    "institutionloginid",
    "reportid",
    "portfolioid",
    "loanapplicationid",
    "status",
    "type",
    "code",
    "currency",
    "channel",
    "marketsegment",
];

pub const PERSONAL_DATA_FIELDS: &[&str] = &[
    "number",
    "accountnumber",
    "realaccountnumber",
    "accountnumberdisplay",
    "name",
    "accountnickname",
    "username",
    "email",
    "phone",
];

/// One configured Finicity source.
pub struct Finicity {
    verifier: Verifier,
    guard: PersonalDataGuard,
}

impl Adapter for Finicity {
    type Config = Config;

    fn info() -> AdapterInfo {
        AdapterInfo {
            name: "finicity".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            provider: "Finicity (Mastercard Open Banking)".into(),
            description: "Finicity / Mastercard Open Banking Connect webhooks: session activity, \
                          connections, MFA and accounts, signed with HMAC-SHA256."
                .into(),
            personal_data_fields: PERSONAL_DATA_FIELDS.iter().map(|f| (*f).into()).collect(),
            display_fields: DISPLAY_FIELDS.iter().map(|f| (*f).into()).collect(),
        }
    }

    fn new(config: Config, host: &HostContext) -> Result<Self, String> {
        let verifier = Verifier::from_config(&config)?;
        let guard = config.personal_data.resolve(&host.installation_key)?;
        Ok(Finicity { verifier, guard })
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
        // Straight from the body into types; through a `Value` only when the body does not
        // parse, for the exact error (see `lenient::from_body`).
        let parsed;
        let body = match lenient::from_body(request.body()) {
            Some(body) => body,
            None => {
                parsed = request.json()?;
                envelope::body_from_value(&parsed)?
            }
        };
        Ok(self.normalize_body(Envelope::parse(body)?, request))
    }
}

impl Finicity {
    /// Maps a checked envelope, however its body was read.
    fn normalize_body(&self, envelope: Envelope<'_>, request: &Request<'_>) -> Normalized {
        if envelope.event_type == PING {
            return Normalized {
                ignored: vec![PING.into()],
                ..Default::default()
            };
        }
        let mapped = map::event(&envelope, &self.guard);
        single_event(mapped, &envelope.event_id, &envelope.event_type, request)
    }
}

export_adapter!(Finicity);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use tributary_plugin_sdk::testing::{dropped_fields, mutations, numbers_survive_a_value};

    fn adapter() -> Finicity {
        let host = HostContext {
            source: "finicity".into(),
            installation_key: "k".into(),
        };
        let config = serde_json::from_value(json!({"verification": {"disabled": true}}));
        Finicity::new(config.expect("config"), &host).expect("adapter")
    }

    fn request(body: &[u8]) -> WebhookRequest {
        WebhookRequest {
            body: body.to_vec(),
            ..Default::default()
        }
    }

    /// The same body through the `Value` path only (what `normalize` falls back to).
    fn run_via_value(a: &Finicity, body: &[u8]) -> Result<Normalized, Rejection> {
        let request = request(body);
        let request = Request::new(&request);
        let parsed = request.json()?;
        let body = envelope::body_from_value(&parsed)?;
        Ok(a.normalize_body(Envelope::parse(body)?, &request))
    }

    /// Nothing documented is dropped silently: in the example of every Connect event (the
    /// envelope and payloads of shared/providers.md), changing any field changes the canonical
    /// result, except `accountNumberDisplay` (withheld: the last digits of the mapped `number`),
    /// which must change nothing.
    #[test]
    fn every_documented_field_reaches_the_event() {
        let a = adapter();
        let run = |body: &Value| a.normalize(&Request::new(&request(body.to_string().as_bytes())));
        let mut dropped = std::collections::BTreeSet::new();
        for name in MAPPED_EXAMPLES {
            let path = format!("{}/fixtures/{name}.raw.json", env!("CARGO_MANIFEST_DIR"));
            let body: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("raw")).expect("json");
            let original = run(&body).expect("maps");
            assert!(
                original.unmapped.is_empty() && original.events.len() == 1,
                "{name}"
            );
            for field in dropped_fields(&body, &["accountNumberDisplay"], run) {
                dropped.insert(format!("{name} {field}"));
            }
        }
        assert!(dropped.is_empty(), "{dropped:#?}");
    }

    /// The fixtures that are the documented example of a Connect event (all but `ping`).
    const MAPPED_EXAMPLES: [&str; 15] = [
        "accounts-deleted",
        "added",
        "adding",
        "credentials-updated",
        "discovered",
        "done",
        "institution-not-found",
        "institution-not-supported",
        "institution-supported",
        "invalid-credentials",
        "mfa",
        "mfa-updated",
        "processing",
        "started",
        "unable-to-connect",
    ];

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
            json!(" 1607450357 "),
            json!(true),
            json!([1, "a", {"id": "x"}, null]),
            json!({"id": 9, "text": " Q ", "reportId": "r"}),
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
                ("\"eventType\"", "\"eventType\": \"ping\", \"eventType\""),
                ("\"eventId\"", "\"eventId\": 1, \"eventId\""),
                (
                    "\"payload\"",
                    "\"payload\": {\"accounts\": [1]}, \"payload\"",
                ),
                ("\"accounts\"", "\"accounts\": 5, \"accounts\""),
                ("\"eventType\"", "\"ev\\u0065ntType\""),
                ("\"payload\"", &format!("\"x\": {}, \"payload\"", deep(126))),
                ("\"payload\"", &format!("\"x\": {}, \"payload\"", deep(127))),
                ("\"eventId\"", "\"x\": 1e400, \"eventId\""),
            ] {
                bodies.push(seed.replacen(from, to, 1).into_bytes());
            }
            bodies.push(seed.as_bytes()[..seed.len() / 2].to_vec());
        }
        for body in [
            "[]",
            "\"x\"",
            "null",
            "{\"eventType\": \"ping\"} x",
            "\u{feff}{}",
        ] {
            bodies.push(body.as_bytes().to_vec());
        }
        bodies.push(b"{\"eventType\": \"\xff\"}".to_vec());
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

    #[test]
    fn personal_data_fields_are_declared_in_lowercase() {
        let declared = tributary_plugin_sdk::ffi::adapter_info::<Finicity>().personal_data_fields;
        assert_eq!(declared.len(), PERSONAL_DATA_FIELDS.len(), "no duplicates");
        for field in PERSONAL_DATA_FIELDS {
            assert_eq!(*field, field.to_lowercase());
        }
        for key in ["number", "name", "accountNickname", "accountNumberDisplay"] {
            assert!(declared.contains(&key.to_lowercase()), "{key}");
        }
    }
}
