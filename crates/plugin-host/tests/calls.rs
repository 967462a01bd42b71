//! What a call into an adapter can end in.

mod common;

use std::sync::Arc;

use common::build_probe;
use tributary_model::v1::{WebhookRequest, adapter_result::Outcome};
use tributary_plugin_host::{AdapterInstance, HandleError, Plugin};

fn probe(dir: &std::path::Path) -> AdapterInstance {
    let plugin = Plugin::load(&build_probe(dir, "probe")).expect("loads");
    AdapterInstance::create(plugin, br#"{"host": {}, "config": {}}"#).expect("created")
}

fn request(body: &str) -> WebhookRequest {
    WebhookRequest {
        source: "probe".to_owned(),
        body: body.as_bytes().to_vec(),
        ..Default::default()
    }
}

#[test]
fn the_host_types_are_shareable_across_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<AdapterInstance>();
    send_sync::<Arc<AdapterInstance>>();
    send_sync::<Plugin>();
    send_sync::<HandleError>();
    send_sync::<tributary_plugin_host::LoadError>();
}

#[test]
fn a_result_that_does_not_decode_is_undecodable_not_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let instance = probe(dir.path());
    let error = instance
        .handle(&request("GARBAGE"))
        .expect_err("undecodable");
    let HandleError::Undecodable { adapter, reason } = &error else {
        panic!("expected Undecodable, got {error:?}");
    };
    assert_eq!(adapter, "probe");
    assert!(
        reason.starts_with("3 bytes, not a tributary.v1.AdapterResult: "),
        "{reason}"
    );
    assert!(
        error
            .to_string()
            .starts_with("adapter `probe` returned an undecodable result: 3 bytes"),
        "{error}"
    );
}

#[test]
fn a_result_without_an_outcome_is_undecodable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let instance = probe(dir.path());
    let error = instance
        .handle(&request("NO-OUTCOME"))
        .expect_err("undecodable");
    assert_eq!(
        error.to_string(),
        "adapter `probe` returned an undecodable result: \
         0 bytes with neither a normalized result nor a rejection"
    );
}

#[test]
fn failures_and_results_are_told_apart_from_undecodable_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let instance = probe(dir.path());
    let error = instance.handle(&request("FAIL")).expect_err("failed");
    assert!(
        matches!(&error, HandleError::Failed { message, .. } if message == "configured to fail"),
        "{error:?}"
    );
    let result = instance.handle(&request("{}")).expect("handled");
    assert!(matches!(result.outcome, Some(Outcome::Normalized(_))));
}
