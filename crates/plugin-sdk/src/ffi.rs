//! The C boundary, generic over an [`Adapter`]. Used through [`crate::export_adapter!`].
//!
//! Every function body runs inside `catch_unwind`: a panic that unwinds out of an `extern "C"`
//! function would abort the host process.

use std::any::Any;
use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use prost::Message;
use tributary_model::v1::{
    AdapterInfo, AdapterResult, Normalized, SecretInfo, Stage, StageTimings,
    adapter_result::Outcome,
};
use tributary_plugin_abi::{
    ABI_VERSION, AdapterVTableV2, PluginBuffer, RequestView, STATUS_ERROR, STATUS_OK, STATUS_PANIC,
};

use crate::{Adapter, HostContext, Request};

/// The function table for adapter `A`.
pub const fn vtable<A: Adapter>() -> AdapterVTableV2 {
    AdapterVTableV2 {
        abi_version: ABI_VERSION,
        size: size_of::<AdapterVTableV2>() as u32,
        info: info::<A>,
        create: create::<A>,
        handle: handle::<A>,
        free_buffer,
        destroy: destroy::<A>,
        instance_info: Some(instance_info::<A>),
    }
}

fn into_buffer(bytes: Vec<u8>) -> PluginBuffer {
    let mut bytes = ManuallyDrop::new(bytes);
    PluginBuffer {
        ptr: bytes.as_mut_ptr(),
        len: bytes.len(),
        cap: bytes.capacity(),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("adapter panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("adapter panicked: {s}")
    } else {
        "adapter panicked".to_owned()
    }
}

/// Runs `f`, writing its bytes (or the error/panic message) to `out`.
///
/// # Safety
/// `out` must be valid for writes.
unsafe fn guarded(out: *mut PluginBuffer, f: impl FnOnce() -> Result<Vec<u8>, String>) -> i32 {
    let (status, bytes) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(bytes)) => (STATUS_OK, bytes),
        Ok(Err(message)) => (STATUS_ERROR, message.into_bytes()),
        Err(payload) => (STATUS_PANIC, panic_message(payload.as_ref()).into_bytes()),
    };
    if !out.is_null() {
        // SAFETY: the caller passes a valid, writable out pointer.
        unsafe { out.write(into_buffer(bytes)) };
    }
    status
}

unsafe extern "C" fn info<A: Adapter>(out: *mut PluginBuffer) -> i32 {
    // SAFETY: forwarded from the host's contract.
    unsafe { guarded(out, || Ok(adapter_info::<A>().encode_to_vec())) }
}

/// `A::info()` as the host receives it: personal-data and display field names lowercased,
/// sorted and deduplicated (the proto promises lowercase names).
pub fn adapter_info<A: Adapter>() -> AdapterInfo {
    let mut info = A::info();
    for fields in [&mut info.personal_data_fields, &mut info.display_fields] {
        fields.iter_mut().for_each(|f| *f = f.trim().to_lowercase());
        fields.retain(|f| !f.is_empty());
        fields.sort();
        fields.dedup();
    }
    info
}

unsafe extern "C" fn instance_info<A: Adapter>(
    instance: *const c_void,
    out: *mut PluginBuffer,
) -> i32 {
    let run = || -> Result<Vec<u8>, String> {
        if instance.is_null() {
            return Err("null adapter instance".to_owned());
        }
        // SAFETY: `instance` came from `create::<A>` and is alive until `destroy`.
        let adapter = unsafe { &*instance.cast::<A>() };
        Ok(adapter.instance_info().encode_to_vec())
    };
    // SAFETY: forwarded from the host's contract.
    unsafe { guarded(out, run) }
}

/// The JSON the host passes to `create`: the host context plus the source's `config` table.
#[derive(serde::Deserialize)]
struct CreateArgs {
    #[serde(default)]
    host: HostContext,
    #[serde(default)]
    config: serde_json::Value,
}

unsafe extern "C" fn create<A: Adapter>(
    config: *const u8,
    config_len: usize,
    instance: *mut *mut c_void,
    error: *mut PluginBuffer,
) -> i32 {
    let build = || -> Result<Vec<u8>, String> {
        let bytes = if config.is_null() || config_len == 0 {
            &b"{}"[..]
        } else {
            // SAFETY: the host passes a valid slice for the duration of the call.
            unsafe { std::slice::from_raw_parts(config, config_len) }
        };
        let args: CreateArgs =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid create arguments: {e}"))?;
        let config_value = if args.config.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            args.config
        };
        let config: A::Config =
            serde_json::from_value(config_value).map_err(|e| format!("invalid config: {e}"))?;
        let adapter = A::new(config, &args.host)?;
        let warnings = adapter.warnings().join("\n").into_bytes();
        let raw = Box::into_raw(Box::new(adapter));
        // SAFETY: the host passes a valid, writable instance pointer.
        unsafe { instance.write(raw.cast()) };
        Ok(warnings)
    };
    // SAFETY: forwarded from the host's contract.
    unsafe { guarded(error, build) }
}

unsafe extern "C" fn handle<A: Adapter>(
    instance: *const c_void,
    request: *const RequestView,
    out: *mut PluginBuffer,
) -> i32 {
    let run = || -> Result<Vec<u8>, String> {
        if instance.is_null() {
            return Err("null adapter instance".to_owned());
        }
        if request.is_null() {
            return Err("null request".to_owned());
        }
        // SAFETY: `instance` came from `create::<A>` and is alive until `destroy`.
        let adapter = unsafe { &*instance.cast::<A>() };
        // SAFETY: the host passes a valid view, and the memory it points to, for the duration
        // of the call (ABI v2); nothing here outlives the call.
        let request = unsafe { Request::from_view(&*request) }
            .map_err(|e| format!("invalid request: {e}"))?;
        Ok(run_adapter_timed(adapter, &request).encode_to_vec())
    };
    // SAFETY: forwarded from the host's contract.
    unsafe { guarded(out, run) }
}

/// Verify, then normalize: the order every adapter follows. The request's `stage` may ask for
/// one of the two only: `STAGE_VERIFY` answers a rejection or an empty [`Normalized`] after
/// verification; `STAGE_NORMALIZE` skips verification (the host ran it in an earlier call).
pub fn run_adapter<A: Adapter>(adapter: &A, request: &Request<'_>) -> Outcome {
    run_adapter_timed(adapter, request)
        .outcome
        .unwrap_or_else(|| Outcome::Normalized(Normalized::default()))
}

/// [`run_adapter`] as the host receives it: with how long each stage took (the host traces
/// both stages of one call) and which configured secret verified the request.
pub fn run_adapter_timed<A: Adapter>(adapter: &A, request: &Request<'_>) -> AdapterResult {
    let mut timings = StageTimings::default();
    let mut verified_by: Option<SecretInfo> = None;
    let answer = |outcome, timings, verified_by| AdapterResult {
        outcome: Some(outcome),
        timings: Some(timings),
        verified_by,
    };
    let stage = request.stage();
    if stage != Stage::Normalize && !request.skip_verification() {
        let started = Instant::now();
        let verified = adapter.verify_secret(request);
        timings.verify_nanos = nanos(started.elapsed());
        match verified {
            Ok(secret) => verified_by = secret,
            Err(rejection) => return answer(Outcome::Rejection(rejection), timings, None),
        }
    }
    if stage == Stage::Verify {
        return answer(
            Outcome::Normalized(Normalized::default()),
            timings,
            verified_by,
        );
    }
    let started = Instant::now();
    let normalized = adapter.normalize(request);
    timings.normalize_nanos = nanos(started.elapsed());
    let outcome = match normalized {
        Ok(normalized) => Outcome::Normalized(normalized),
        Err(rejection) => Outcome::Rejection(rejection),
    };
    answer(outcome, timings, verified_by)
}

fn nanos(took: Duration) -> u64 {
    u64::try_from(took.as_nanos()).unwrap_or(u64::MAX)
}

unsafe extern "C" fn free_buffer(buffer: PluginBuffer) {
    if buffer.ptr.is_null() {
        return;
    }
    let _ = catch_unwind(|| {
        // SAFETY: the buffer was made by `into_buffer` in this library and is freed once.
        drop(unsafe { Vec::from_raw_parts(buffer.ptr, buffer.len, buffer.cap) });
    });
}

unsafe extern "C" fn destroy<A: Adapter>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `instance` came from `create::<A>` and is destroyed once.
        drop(unsafe { Box::from_raw(instance.cast::<A>()) });
    }));
}

#[cfg(test)]
mod tests {
    use tributary_model::v1::{Event, Rejection, Stage, WebhookRequest};

    use super::*;
    use crate::reject;

    /// Accepts requests whose body is "ok"; counts nothing, normalizes to one event.
    struct Probe;

    impl Adapter for Probe {
        type Config = serde_json::Value;

        fn info() -> AdapterInfo {
            AdapterInfo {
                personal_data_fields: vec!["UserName".into(), " email".into(), "username".into()],
                ..AdapterInfo::default()
            }
        }

        fn new(_: Self::Config, _: &HostContext) -> Result<Self, String> {
            Ok(Probe)
        }

        fn verify(&self, request: &Request<'_>) -> Result<(), Rejection> {
            if request.body() == b"ok" {
                Ok(())
            } else {
                Err(reject::unauthenticated("bad"))
            }
        }

        fn normalize(&self, _: &Request<'_>) -> Result<Normalized, Rejection> {
            Ok(Normalized {
                events: vec![Event::default()],
                ..Normalized::default()
            })
        }
    }

    fn run(body: &[u8], stage: Stage) -> Outcome {
        let request = WebhookRequest {
            body: body.to_vec(),
            stage: stage as i32,
            ..WebhookRequest::default()
        };
        run_adapter(&Probe, &Request::new(&request))
    }

    fn events(outcome: Outcome) -> Option<usize> {
        match outcome {
            Outcome::Normalized(normalized) => Some(normalized.events.len()),
            Outcome::Rejection(_) => None,
        }
    }

    #[test]
    fn stages_split_verification_from_normalization() {
        assert_eq!(events(run(b"ok", Stage::All)), Some(1));
        assert_eq!(events(run(b"no", Stage::All)), None);
        assert_eq!(events(run(b"ok", Stage::Verify)), Some(0));
        assert_eq!(events(run(b"no", Stage::Verify)), None);
        // The host verified in an earlier call: normalize alone.
        assert_eq!(events(run(b"no", Stage::Normalize)), Some(1));
    }

    /// Verifies with the SDK's secrets: "new" (label "n") or "old" (until second 100).
    struct Rotating(crate::secrets::Secrets<String>);

    impl Adapter for Rotating {
        type Config = serde_json::Value;

        fn info() -> AdapterInfo {
            AdapterInfo::default()
        }

        fn new(_: Self::Config, _: &HostContext) -> Result<Self, String> {
            let entries: crate::secrets::Verification = serde_json::from_value(serde_json::json!(
                {"secrets": [{"secret": "new", "label": "n"},
                             {"secret": "old", "not_after": "1970-01-01T00:01:40Z"}]}
            ))
            .map_err(|e| e.to_string())?;
            crate::secrets::Secrets::new(entries.secrets, false, |s| Ok(s.to_owned())).map(Rotating)
        }

        fn instance_info(&self) -> tributary_model::v1::InstanceInfo {
            self.0.instance_info()
        }

        fn verify_secret(&self, request: &Request<'_>) -> Result<Option<SecretInfo>, Rejection> {
            let body = request.body();
            let at = crate::secrets::request_time(request);
            self.0
                .find(&at, |key| {
                    crate::verify::constant_time_eq(key.as_bytes(), body)
                })
                .map(Some)
                .ok_or_else(|| reject::unauthenticated("no secret matches"))
        }

        fn verify(&self, request: &Request<'_>) -> Result<(), Rejection> {
            self.verify_secret(request).map(drop)
        }

        fn normalize(&self, _: &Request<'_>) -> Result<Normalized, Rejection> {
            Ok(Normalized::default())
        }
    }

    #[test]
    fn the_secret_that_verified_and_the_instance_info_reach_the_host() {
        let adapter =
            Rotating::new(serde_json::Value::Null, &HostContext::default()).expect("valid");
        let run = |body: &[u8], seconds: i64| {
            let request = WebhookRequest {
                body: body.to_vec(),
                received_at: Some(tributary_model::well_known::Timestamp { seconds, nanos: 0 }),
                ..WebhookRequest::default()
            };
            let result = run_adapter_timed(&adapter, &Request::new(&request));
            let rejected = matches!(result.outcome, Some(Outcome::Rejection(_)));
            (rejected, result.verified_by.map(|s| (s.index, s.label)))
        };
        assert_eq!(run(b"new", 50), (false, Some((0, "n".to_owned()))));
        assert_eq!(run(b"old", 100), (false, Some((1, String::new()))));
        assert_eq!(run(b"old", 101), (true, None));
        // Through the C boundary: the table's `instance_info` encodes the same value.
        let table = vtable::<Rotating>();
        let describe = table.instance_info.expect("instance_info is exported");
        let mut out = PluginBuffer::EMPTY;
        let instance: *const Rotating = &adapter;
        // SAFETY: `instance` is a live `Rotating` for the call; `out` is freed below.
        let status = unsafe { describe(instance.cast(), &mut out) };
        assert_eq!(status, STATUS_OK);
        // SAFETY: made by `into_buffer` in this library, read before it is freed.
        let bytes = unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec();
        // SAFETY: `out` came from this library's `into_buffer` and is freed once.
        unsafe { (table.free_buffer)(out) };
        let info = tributary_model::v1::InstanceInfo::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(info, adapter.instance_info());
        assert_eq!(
            info.verification,
            tributary_model::v1::VerificationState::On as i32
        );
        assert_eq!(info.secrets.len(), 2);
    }

    #[test]
    fn personal_data_fields_reach_the_host_lowercase_sorted_once() {
        assert_eq!(
            adapter_info::<Probe>().personal_data_fields,
            vec!["email".to_owned(), "username".to_owned()]
        );
    }
}
