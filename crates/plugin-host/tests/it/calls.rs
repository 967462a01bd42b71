//! What a call into an adapter can end in, and how a caller bounds its time.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::build_probe;
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
    assert_eq!(instance.in_flight(), 0);
}

#[test]
fn a_caller_can_stop_waiting_and_the_call_finishes_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let instance = Arc::new(probe(dir.path()));
    // What the service does with spawn_blocking + timeout, with a thread and a channel.
    let (tx, rx) = mpsc::channel();
    let call = {
        let instance = Arc::clone(&instance);
        std::thread::spawn(move || {
            let _ = tx.send(instance.handle(&request("SLEEP")));
        })
    };
    let waited = rx.recv_timeout(Duration::from_millis(50));
    assert!(waited.is_err(), "over budget");
    assert_eq!(
        instance.in_flight(),
        1,
        "still running after the caller gave up"
    );
    drop(rx);
    // The thread holds an Arc: dropping ours does not destroy the instance under the call.
    let weak = Arc::downgrade(&instance);
    drop(instance);
    assert!(weak.upgrade().is_some());
    call.join().expect("call thread");
    assert!(
        weak.upgrade().is_none(),
        "destroyed after the last call returned"
    );
}

#[test]
fn an_instance_at_its_call_limit_refuses_more_calls_as_busy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let instance = Arc::new(probe(dir.path()).with_max_in_flight(1));
    let slow = {
        let instance = Arc::clone(&instance);
        std::thread::spawn(move || instance.handle(&request("SLEEP")))
    };
    let started = Instant::now();
    while instance.in_flight() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "call never started"
        );
        std::thread::yield_now();
    }
    let error = instance.handle(&request("{}")).expect_err("busy");
    assert!(
        matches!(&error, HandleError::Busy { in_flight: 1, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "adapter `probe` is busy: 1 calls still running"
    );
    assert_eq!(instance.in_flight(), 1, "the refused call is not counted");
    slow.join().expect("thread").expect("slow call handled");
    assert_eq!(instance.in_flight(), 0);
    instance
        .handle(&request("{}"))
        .expect("handled once the slot is free");
}
