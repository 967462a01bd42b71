//! The loaded plugin's start-up behaviour (config errors, warnings) and a sweep proving tax ids
//! never leave the adapter in clear unless the policy keeps them.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use tributary_plugin_host::{AdapterInstance, Plugin, fixtures};
use tributary_plugin_sdk::model::v1::{AdapterResult, Header, WebhookRequest, adapter_result};
use tributary_plugin_sdk::model::well_known::Timestamp;

const TAX_IDS: [&str; 5] = [
    "25872252137",
    "258.722.521-37",
    "12345678000195",
    "12.345.678/0001-95",
    "12345678901",
];

fn plugin() -> Arc<Plugin> {
    fixtures::load_built(env!("CARGO_PKG_NAME"))
}

fn create(plugin: &Arc<Plugin>, config: serde_json::Value) -> Result<AdapterInstance, String> {
    fixtures::create_instance(plugin, "klavi", "k", &config).map_err(|e| e.to_string())
}

#[test]
fn config_typos_are_refused_at_start_up() {
    let plugin = plugin();
    assert!(create(&plugin, json!({"secret": "x"})).is_err());
    assert!(create(&plugin, json!({"verification": "off"})).is_err());
    assert!(create(&plugin, json!({"verification": "none"})).is_err());
    assert!(
        create(
            &plugin,
            json!({"secret_key": "x", "verification": {"disabled": true}})
        )
        .is_err()
    );
    assert!(create(&plugin, json!({"personal_data": {"default": "encrypt"}})).is_err());
    let instance = create(&plugin, json!({"verification": {"secrets": ["x"]}})).expect("valid");
    assert!(instance.warnings().is_empty());
    // The old key still starts, with a deprecation warning.
    let old = create(&plugin, json!({"secret_key": "x"})).expect("valid config");
    assert_eq!(
        old.warnings(),
        [
            "klavi: the config key `secret_key` is deprecated and still read: move its value to \
          `verification.secrets`"
        ]
    );
}

#[test]
fn missing_secret_and_disabled_verification_warn() {
    let plugin = plugin();
    use tributary_plugin_sdk::model::v1::VerificationState;
    let no_secret = create(&plugin, json!({})).expect("starts");
    assert!(
        no_secret
            .warnings()
            .iter()
            .any(|w| w.contains("verification.secrets"))
    );
    // Fail closed, reported as a value: not configured, every webhook refused.
    assert_eq!(
        no_secret.instance_info().verification,
        VerificationState::NotConfigured as i32
    );
    let off = create(&plugin, json!({"verification": {"disabled": true}})).expect("starts");
    assert!(off.warnings().iter().any(|w| w.contains("verification")));
    assert_eq!(
        off.instance_info().verification,
        VerificationState::Disabled as i32
    );
}

/// Every fixture body, run with every policy except `keep`, verification off: no tax id in
/// clear anywhere in the result except the raw bytes of dead-lettered items.
#[test]
fn tax_ids_never_leave_in_clear_unless_kept() {
    let plugin = plugin();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let policies = [
        json!({}),
        json!({"hash_key": "another"}),
        json!({"default": "mask"}),
        json!({"default": "keep", "fields": {"personal_tax_id": "mask", "business_tax_id": "hash"}}),
    ];
    let mut bodies = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
        let path = entry.expect("entry").path();
        if !path.to_string_lossy().ends_with(".raw.json") {
            continue;
        }
        let body = std::fs::read(&path).expect("raw body");
        bodies += 1;
        for policy in &policies {
            let instance = create(
                &plugin,
                json!({"verification": {"disabled": true}, "personal_data": policy}),
            )
            .expect("starts");
            let request = WebhookRequest {
                source: "klavi".into(),
                method: "POST".into(),
                headers: vec![Header {
                    name: "content-type".into(),
                    value: "application/json".into(),
                }],
                body: body.clone(),
                received_at: Some(Timestamp {
                    seconds: 1_704_067_200,
                    nanos: 0,
                }),
                ..Default::default()
            };
            let mut result: AdapterResult = instance.handle(&request).expect("handled");
            if let Some(adapter_result::Outcome::Normalized(normalized)) = &mut result.outcome {
                for item in &mut normalized.unmapped {
                    item.raw.clear();
                }
            }
            let text = serde_json::to_string(&result).expect("serializes");
            for id in TAX_IDS {
                assert!(
                    !text.contains(id),
                    "{} with {policy}: tax id {id} in clear",
                    path.display()
                );
            }
        }
    }
    assert!(bodies > 20, "only {bodies} fixture bodies found");
}
