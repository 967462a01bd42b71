//! Arcadia (utility data, "Plug" API 2024-02-21) adapter for Tributary.
//!
//! One webhook carries one event: `{createdAt, data, errors[], eventType, id, resource}`. The
//! `(resource, eventType)` pair picks the canonical type (see README.md); pairs this adapter
//! does not know are dead-lettered with a reason.

mod config;
mod map;
mod verify;

use tributary_plugin_sdk::personal_data::PersonalDataGuard;
use tributary_plugin_sdk::prelude::*;

pub use config::{Config, LegacyHmacConfig, VerificationConfig};

/// JSON keys (lowercase) of Arcadia payloads that hold personal data: login usernames, account,
/// meter and point-of-delivery numbers (raw, normalized, summary and previous forms), service
/// addresses and site names, the e-mail addresses in `createdBy`/`lastModifiedBy`, uploaded
/// file names and the download `token` (it grants access to an export). The host redacts them
/// when it shows a raw body.
/// Keys whose string values are safe to show an operator in a raw body (ids, event types,
/// statuses, dates and codes); every other string value is masked there.
pub const DISPLAY_FIELDS: &[&str] = &[
    "id",
    "eventtype",
    "apiversion",
    "accountid",
    "credentialid",
    "meterid",
    "statementid",
    "summaryaccountid",
    "deletiontargetid",
    "publisherprovideraccountid",
    "status",
    "statusdetail",
    "resource",
    "code",
    "classification",
    "providerclassification",
    "servicetype",
    "servicetypeclassification",
    "dataingestionmethod",
    "downloadmethod",
    "transfermethod",
    "currencycode",
    "createdat",
    "lastmodifiedat",
    "discoveredat",
    "statementdate",
    "periodstartdate",
    "periodenddate",
    "duedate",
    "correlationid",
];

pub const PERSONAL_DATA_FIELDS: &[&str] = &[
    "username",
    "username2",
    "username3",
    "username4",
    "accountnumber",
    "accountnumbers",
    "normalizedaccountnumber",
    "summaryaccountnumber",
    "normalizedsummaryaccountnumber",
    "meternumber",
    "normalizedmeternumber",
    "previousmeternumber",
    "pointofdeliverynumber",
    "normalizedpointofdeliverynumber",
    "serviceaddress",
    "site",
    "sitenames",
    "createdby",
    "lastmodifiedby",
    "email",
    "filename",
    "token",
];

/// The Arcadia adapter: one instance per configured source.
pub struct Arcadia {
    verifier: verify::Verifier,
    mapper: map::Mapper,
}

impl Adapter for Arcadia {
    type Config = Config;

    fn info() -> AdapterInfo {
        AdapterInfo {
            name: "arcadia".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            provider: "Arcadia".into(),
            description:
                "Arcadia Plug API webhooks (utility credentials, accounts, statements, meters)"
                    .into(),
            personal_data_fields: PERSONAL_DATA_FIELDS.iter().map(|f| (*f).into()).collect(),
            display_fields: DISPLAY_FIELDS.iter().map(|f| (*f).into()).collect(),
        }
    }

    fn new(config: Config, host: &HostContext) -> Result<Self, String> {
        config.validate()?;
        let guard: PersonalDataGuard = config.personal_data.resolve(&host.installation_key)?;
        Ok(Self {
            verifier: verify::Verifier::from_config(config.verification)?,
            mapper: map::Mapper::new(guard, config.default_currency),
        })
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
        // Straight from the body into types; through a `Value` only when that cannot be done
        // with the same outcome (see `Envelope::from_body`).
        let parsed;
        let envelope = match map::Envelope::from_body(request.body()) {
            Some(envelope) => envelope?,
            None => {
                parsed = request.json()?;
                map::Envelope::from_value(&parsed)?
            }
        };
        Ok(self.normalize_envelope(&envelope, request))
    }
}

impl Arcadia {
    fn normalize_envelope(
        &self,
        envelope: &map::Envelope<'_>,
        request: &Request<'_>,
    ) -> Normalized {
        let mapped = self.mapper.map(envelope);
        single_event(mapped, &envelope.id, &envelope.event_type, request)
    }
}

export_adapter!(Arcadia);

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_plugin_sdk::testing::{dropped_fields, mutations, numbers_survive_a_value};

    fn adapter() -> Arcadia {
        let host = HostContext {
            source: "arcadia".into(),
            installation_key: "k".into(),
        };
        Arcadia::new(Config::default(), &host).expect("default config")
    }

    fn run(a: &Arcadia, body: &serde_json::Value) -> Result<Normalized, Rejection> {
        let request = WebhookRequest {
            body: body.to_string().into_bytes(),
            ..Default::default()
        };
        a.normalize(&Request::new(&request))
    }

    /// Every known pair with `data` fields of the wrong JSON type: mapped or dead-lettered,
    /// never a panic, never a rejection.
    #[test]
    fn odd_shapes_never_panic() {
        let a = adapter();
        let pairs = [
            ("CREDENTIAL", "STATUS_CHANGE"),
            ("CREDENTIAL", "REAL_TIME_CREDENTIAL_VALIDATION_FAILURE"),
            ("MFA_METHOD_PROMPT", "MFA_CHALLENGE_METHOD"),
            ("MFA_CODE_PROMPT", "MFA_CHALLENGE_CODE"),
            ("ACCOUNT", "STATUS_CHANGE"),
            ("STATEMENT", "NEW_DATA_AVAILABLE"),
            ("METER", "STATUS_CHANGE"),
            ("FILE", "STATUS_CHANGE"),
            ("DELETION", "STATUS_CHANGE"),
            ("DOWNLOAD", "STATUS_CHANGE"),
        ];
        let odd = serde_json::json!({
            "id": 7, "status": ["x"], "provider": "p", "credential": 3,
            "verificationMethods": {"a": 1}, "selectedVerificationMethod": [1],
            "accountData": [1, "x", {"meterData": "y", "amountDue": "1e5"}],
            "accounts": [null, {"id": {}}], "serviceTypes": [1, null],
            "accountNumbers": [1, null], "totalAccounts": 99_999_999_999_i64,
            "customData": [1], "correlationIds": "c", "amountDue": true,
            "createdAt": "yesterday", "statementDate": "2023-02-30",
            "summaryAccountNumber": 7, "prepaid": "yes", "isAccessible": 1,
            "siteNames": {"a": 1}, "meterConstantMultiplier": "x",
            "previousMeterConstantMultiplier": [2], "currentTariff": [1],
            "serviceAddress": 5, "site": {"id": 3, "name": {}}, "token": {"t": 1},
            "credentials": "c", "credentialIds": [null, 4], "credential": "crd_x",
            "latestNewStatementAt": false
        });
        for (resource, event_type) in pairs {
            for data in [odd.clone(), serde_json::json!({}), serde_json::json!([1])] {
                let body = serde_json::json!({
                    "id": "whk_x", "eventType": event_type, "resource": resource,
                    "createdAt": 5, "errors": {"not": "an array"}, "data": data,
                });
                let normalized = run(&a, &body).expect("never rejected");
                assert_eq!(normalized.events.len() + normalized.unmapped.len(), 1);
            }
        }
    }

    /// Nothing documented is dropped silently: in every example of the Arcadia documentation
    /// (the seed and its scenario walk-throughs), changing any field changes the canonical
    /// result, except the e-mail addresses the adapter withholds on purpose (`createdBy`,
    /// `lastModifiedBy`), which must change nothing.
    #[test]
    fn every_documented_field_reaches_the_event() {
        let a = adapter();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        let mut examples: Vec<_> = std::fs::read_dir(dir)
            .expect("fixtures")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                (name.starts_with("seed-") || name.starts_with("scenario-"))
                    && name.ends_with(".raw.json")
            })
            .collect();
        examples.sort();
        assert!(examples.len() >= 60, "{}", examples.len());
        let mut dropped = std::collections::BTreeSet::new();
        for path in &examples {
            let body: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path).expect("raw")).expect("json");
            let original = run(&a, &body).expect("maps");
            assert!(
                original.unmapped.is_empty() && original.events.len() == 1,
                "{}",
                path.display()
            );
            let resource = body["resource"].as_str().unwrap_or_default().to_owned();
            for field in dropped_fields(&body, &["createdBy", "lastModifiedBy"], |b| run(&a, b)) {
                dropped.insert(format!("{resource} {field}"));
            }
        }
        assert!(dropped.is_empty(), "{dropped:#?}");
    }

    /// The same body through the `Value` path only (what `normalize` falls back to).
    fn run_via_value(a: &Arcadia, body: &[u8]) -> Result<Normalized, Rejection> {
        let request = WebhookRequest {
            body: body.to_vec(),
            ..Default::default()
        };
        let request = Request::new(&request);
        let parsed = request.json()?;
        let envelope = map::Envelope::from_value(&parsed)?;
        Ok(a.normalize_envelope(&envelope, &request))
    }

    fn run_bytes(a: &Arcadia, body: &[u8]) -> Result<Normalized, Rejection> {
        let request = WebhookRequest {
            body: body.to_vec(),
            ..Default::default()
        };
        a.normalize(&Request::new(&request))
    }

    /// Statement, meter and credential bodies read straight into types give what the `Value` path gives:
    /// every node replaced by values of other types, credential keys added, repeated keys
    /// (the last wins), escaped keys, a wrong `data` hint, nesting at serde_json's limit, and
    /// bodies the parser refuses (same rejection text).
    #[test]
    fn typed_reads_agree_with_the_value_path() {
        let a = adapter();
        let odd = [
            serde_json::json!(null),
            serde_json::json!(12),
            serde_json::json!(-1.25),
            serde_json::json!("7.5"),
            serde_json::json!(true),
            serde_json::json!([1, "a", {"id": "x"}]),
            serde_json::json!({"id": "crd_9", "fullAddress": " 1 A St ", "name": "n"}),
        ];
        let fixtures = [
            include_str!("../fixtures/seed-statement-new-data-available.raw.json"),
            include_str!("../fixtures/statement-summary-account-and-credential.raw.json"),
            include_str!("../fixtures/seed-meter-new-data-available.raw.json"),
            include_str!("../fixtures/meter-status-change-all-fields.raw.json"),
            include_str!("../fixtures/meter-status-change-other-shapes.raw.json"),
            include_str!("../fixtures/seed-credential-status-change-success.raw.json"),
            include_str!("../fixtures/credential-errors-usernames-extra-fields.raw.json"),
            include_str!("../fixtures/scenario-mfa-failure-4-rtcv-failure.raw.json"),
            include_str!("../fixtures/mfa-challenge-method-with-errors.raw.json"),
        ];
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        for seed in fixtures {
            let root: serde_json::Value = serde_json::from_str(seed).expect("fixture");
            bodies.push(seed.as_bytes().to_vec());
            bodies.extend(mutations(&root, &odd));
            for key in [
                "credentialId",
                "credential",
                "credentialIds",
                "credentials",
                "correlationId",
                "customData",
            ] {
                for value in &odd {
                    let mut body = root.clone();
                    body["data"][key] = value.clone();
                    bodies.push(body.to_string().into_bytes());
                }
            }
            for text in [
                seed.replacen("\"id\"", "\"id\" : 1, \"id\"", 1),
                seed.replacen("\"data\"", "\"data\" : 5, \"data\"", 1),
                seed.replacen(
                    "\"resource\"",
                    "\"resource\" : \"CREDENTIAL\", \"resource\"",
                    1,
                ),
                seed.replacen("\"resource\"", "\"resourc\\u0065\"", 1),
                seed.replacen(
                    "\"STATEMENT\"",
                    "\"CREDENTIAL\", \"note\": \"STATEMENT\"",
                    1,
                ),
                seed.replacen("\"METER\"", "\"STATEMENT\"", 1),
                seed.replacen("\"METER\"", "\"CREDENTIAL\", \"note\": \"METER\"", 1),
                seed.replacen("\"CREDENTIAL\"", "\"ACCOUNT\", \"note\": \"CREDENTIAL\"", 1),
                seed.replacen(
                    "\"data\" : {",
                    &format!("\"data\" : {{\"x\": {},", deep(126)),
                    1,
                ),
                seed.replacen(
                    "\"data\" : {",
                    &format!("\"data\" : {{\"x\": {},", deep(127)),
                    1,
                ),
                seed.replacen("\"id\"", "\"x\": 1e400, \"id\"", 1),
                seed.replacen("\"id\" : \"", "\"id\" : \"\\q", 1),
                seed[..seed.len() / 2].to_owned(),
            ] {
                bodies.push(text.into_bytes());
            }
            let mut invalid_utf8 = seed.as_bytes().to_vec();
            invalid_utf8.insert(seed.find("\"id\"").expect("id") + 1, 0xff);
            bodies.push(invalid_utf8);
        }
        for body in ["[]", "\"STATEMENT\"", "{\"resource\": \"METER\"}"] {
            bodies.push(body.as_bytes().to_vec());
        }
        // Numbers a `Value` cannot hold are read exactly from the text only (the golden
        // fixtures check those); every other body reads the same either way.
        for body in bodies.iter().filter(|body| numbers_survive_a_value(body)) {
            assert_eq!(
                run_bytes(&a, body),
                run_via_value(&a, body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(bodies.len() > 2_000, "{}", bodies.len());
    }

    #[test]
    fn config_refuses_unknown_fields_and_bad_currency() {
        let unknown = serde_json::json!({"verification": {"header": {"a": "b"}}});
        assert!(serde_json::from_value::<Config>(unknown).is_err());
        let host = HostContext {
            installation_key: "k".into(),
            ..Default::default()
        };
        let config: Config =
            serde_json::from_value(serde_json::json!({"default_currency": "usd"})).expect("parses");
        assert!(Arcadia::new(config, &host).is_err());
        assert_eq!(adapter().warnings().len(), 1);
    }

    #[test]
    fn personal_data_fields_are_declared_in_lowercase() {
        let declared = tributary_plugin_sdk::ffi::adapter_info::<Arcadia>().personal_data_fields;
        assert_eq!(declared.len(), PERSONAL_DATA_FIELDS.len(), "no duplicates");
        for field in PERSONAL_DATA_FIELDS {
            assert_eq!(*field, field.to_lowercase());
        }
        for key in [
            "username",
            "username2",
            "accountNumber",
            "accountNumbers",
            "meterNumber",
            "normalizedMeterNumber",
            "createdBy",
            "lastModifiedBy",
            "token",
            "summaryAccountNumber",
            "previousMeterNumber",
            "serviceAddress",
            "site",
            "siteNames",
        ] {
            assert!(declared.contains(&key.to_lowercase()), "{key}");
        }
    }
}
