//! Start-up through the real dynamically loaded plugin: config errors and operator warnings.

use serde_json::json;
use tributary_plugin_host::{AdapterInstance, fixtures};

fn create(config: serde_json::Value) -> Result<AdapterInstance, String> {
    let plugin = fixtures::load_built(env!("CARGO_PKG_NAME"));
    fixtures::create_instance(&plugin, "finicity", "k", &config).map_err(|e| e.to_string())
}

#[test]
fn configured_secret_starts_without_warnings() {
    let instance =
        create(json!({"verification": {"secrets": ["s"]}, "signature_header": "X-Signature"}))
            .expect("starts");
    assert!(instance.warnings().is_empty(), "{:?}", instance.warnings());
    assert_eq!(instance.plugin().info().name, "finicity");
    assert_eq!(
        instance.instance_info().verification,
        tributary_plugin_sdk::model::v1::VerificationState::On as i32
    );
}

#[test]
fn the_old_secret_key_starts_with_a_deprecation_warning() {
    let instance = create(json!({"secret": "s"})).expect("starts");
    assert_eq!(
        instance.warnings(),
        [
            "finicity: the config key `secret` is deprecated and still read: move its value to \
          `verification.secrets`"
        ]
    );
}

#[test]
fn missing_secret_starts_but_warns() {
    let instance = create(json!({})).expect("starts");
    assert!(
        instance
            .warnings()
            .iter()
            .any(|w| w.contains("no secret configured")),
        "{:?}",
        instance.warnings()
    );
}

#[test]
fn verification_off_warns() {
    let instance = create(json!({"verification": {"disabled": true}})).expect("starts");
    assert!(
        instance
            .warnings()
            .iter()
            .any(|w| w.contains("switched off")),
        "{:?}",
        instance.warnings()
    );
}

#[test]
fn bad_config_is_refused_at_start_up() {
    for config in [
        json!({"secret": "s", "signature_heder": "X"}),
        json!({"verification": "off"}),
        json!({"verification": "none"}),
        json!({"secret": "s", "verification": {"disabled": true}}),
        json!({"secret": "s", "verification": {"secrets": ["n"]}}),
        json!({"verification": {"secrets": [{"secret": "s", "not_after": "soon"}]}}),
        json!({"secret": "s", "signature_header": ""}),
        json!({"secret": "s", "personal_data": {"default": "encrypt"}}),
    ] {
        assert!(create(config.clone()).is_err(), "{config} was accepted");
    }
}
