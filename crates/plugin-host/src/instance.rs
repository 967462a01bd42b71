use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prost::Message;
use prost::bytes::Bytes;
use tributary_model::plugin_wire::EncodedAdapterResult;
use tributary_model::v1::{AdapterResult, Header, InstanceInfo, WebhookRequest};
use tributary_plugin_abi::{
    ByteSlice, HeaderView, PluginBuffer, REQUEST_HAS_RECEIVED_AT, REQUEST_SKIP_VERIFICATION,
    RequestView, STATUS_OK, STATUS_PANIC,
};

use crate::buffer::{PluginBytes, take_buffer};
use crate::plugin::Plugin;

/// Why a call into an adapter produced no result.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The adapter panicked; the SDK caught it at the boundary.
    #[error("adapter `{adapter}` panicked: {message}")]
    Panicked { adapter: String, message: String },
    /// The adapter reported an error instead of a result.
    #[error("adapter `{adapter}` failed: {message}")]
    Failed { adapter: String, message: String },
    /// The adapter reported success but its bytes are not a usable `tributary.v1.AdapterResult`
    /// (they do not decode, or hold neither a normalized result nor a rejection). This is the
    /// adapter's answer to this request, not a passing fault: retrying the same request gets
    /// the same bytes, so the service should store it as a dead letter rather than fail it.
    #[error("adapter `{adapter}` returned an undecodable result: {reason}")]
    Undecodable { adapter: String, reason: String },
    /// The instance already runs its maximum number of calls
    /// ([`AdapterInstance::with_max_in_flight`]); the call was not made. Calls whose caller
    /// gave up on a deadline count until they return, so a hanging adapter ends up here
    /// instead of taking ever more threads. Passing: retry later.
    #[error("adapter `{adapter}` is busy: {in_flight} calls still running")]
    Busy { adapter: String, in_flight: usize },
}

/// Requests with at most this many headers pass their header views on the stack.
const INLINE_HEADERS: usize = 16;

/// A placeholder for the unused slots of the inline header array.
const NO_HEADER: HeaderView = HeaderView {
    name: ByteSlice::EMPTY,
    value: ByteSlice::EMPTY,
};

fn header_view(header: &Header) -> HeaderView {
    HeaderView {
        name: ByteSlice::new(header.name.as_bytes()),
        value: ByteSlice::new(header.value.as_bytes()),
    }
}

/// The ABI v2 view of `request` with these header views; borrows both.
fn request_view(request: &WebhookRequest, headers: &[HeaderView]) -> RequestView {
    let received = request.received_at.unwrap_or_default();
    let mut flags = 0;
    if request.received_at.is_some() {
        flags |= REQUEST_HAS_RECEIVED_AT;
    }
    if request.skip_verification {
        flags |= REQUEST_SKIP_VERIFICATION;
    }
    RequestView {
        source: ByteSlice::new(request.source.as_bytes()),
        method: ByteSlice::new(request.method.as_bytes()),
        path: ByteSlice::new(request.path.as_bytes()),
        query: ByteSlice::new(request.query.as_bytes()),
        headers: headers.as_ptr(),
        headers_len: headers.len(),
        body: ByteSlice::new(&request.body),
        received_at_seconds: received.seconds,
        received_at_nanos: received.nanos,
        // Unknown values are passed as they are: the plugin refuses them.
        stage: u32::try_from(request.stage).unwrap_or(u32::MAX),
        flags,
    }
}

/// One configured instance of a plugin (one source). `Send + Sync`: share it in an `Arc`.
///
/// # Deadlines
///
/// A call into native code cannot be interrupted, and [`Self::handle`] blocks its
/// thread until the adapter returns. An async service therefore runs each call on a blocking
/// thread and stops waiting at the deadline, e.g. with tokio:
///
/// ```ignore
/// let source = Arc::clone(&source); // whatever owns the instance, in an Arc
/// let call = tokio::task::spawn_blocking(move || source.adapter.handle(&request));
/// match tokio::time::timeout(budget, call).await {
///     Ok(Ok(result)) => result,           // the adapter's answer (or HandleError)
///     Ok(Err(join_error)) => ...,         // the blocking task itself failed
///     Err(_elapsed) => ...,               // over budget: answer "retry later"
/// }
/// ```
///
/// The closure owns an `Arc`, so an instance is destroyed only after its last call returned,
/// even one nobody waits for any more. Such a call keeps its thread until the adapter returns;
/// [`Self::with_max_in_flight`] bounds how many threads one instance can hold that way
/// ([`HandleError::Busy`] past it) and [`Self::in_flight`] shows them.
pub struct AdapterInstance {
    plugin: Arc<Plugin>,
    instance: *mut c_void,
    warnings: Vec<String>,
    /// What the instance reported about its configuration (verification state, secrets).
    info: InstanceInfo,
    /// Calls running now, including those whose caller stopped waiting.
    in_flight: AtomicUsize,
    max_in_flight: usize,
}

/// Counts one running call; uncounts it when dropped (also on unwind).
struct CallGuard<'a>(&'a AtomicUsize);

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

// SAFETY: the ABI requires instances to be immutable after `create` and `handle` to be callable
// from any thread concurrently (the SDK requires `Adapter: Send + Sync`).
unsafe impl Send for AdapterInstance {}
// SAFETY: as above.
unsafe impl Sync for AdapterInstance {}

impl std::fmt::Debug for AdapterInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterInstance")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

impl AdapterInstance {
    /// Creates an instance with `create_args`: JSON `{"host": {...}, "config": {...}}`.
    pub fn create(plugin: Arc<Plugin>, create_args: &[u8]) -> Result<Self, HandleError> {
        let vtable = plugin.vtable();
        let mut instance: *mut c_void = std::ptr::null_mut();
        let mut error = PluginBuffer::EMPTY;
        // SAFETY: ABI v2 contract; the slice outlives the call.
        let status = unsafe {
            (vtable.create)(
                create_args.as_ptr(),
                create_args.len(),
                &mut instance,
                &mut error,
            )
        };
        // SAFETY: `error` was written by this plugin.
        let message = unsafe { take_buffer(vtable, error) };
        let adapter = plugin.info().name.clone();
        if status != STATUS_OK || instance.is_null() {
            let message = String::from_utf8_lossy(&message).into_owned();
            return Err(if status == STATUS_PANIC {
                HandleError::Panicked { adapter, message }
            } else {
                HandleError::Failed { adapter, message }
            });
        }
        let warnings = String::from_utf8_lossy(&message)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        let info = instance_info(&plugin, instance);
        Ok(Self {
            plugin,
            instance,
            warnings,
            info,
            in_flight: AtomicUsize::new(0),
            max_in_flight: usize::MAX,
        })
    }

    /// Limits the calls running at once in this instance to `limit` (at least 1); a call
    /// beyond it fails at once with [`HandleError::Busy`]. Unlimited by default.
    pub fn with_max_in_flight(mut self, limit: usize) -> Self {
        self.max_in_flight = limit.max(1);
        self
    }

    /// How many calls are running in this instance now, including calls whose caller gave up
    /// waiting (they hold their thread until the adapter returns).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Counts a call in, or refuses it when the instance is at its limit.
    fn enter(&self) -> Result<CallGuard<'_>, HandleError> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = CallGuard(&self.in_flight);
        if before >= self.max_in_flight {
            return Err(HandleError::Busy {
                adapter: self.plugin.info().name.clone(),
                in_flight: before,
            });
        }
        Ok(guard)
    }

    /// Start-up warnings the adapter gave for this configuration.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How this instance verifies webhooks and its secrets (position, label, `not_after`), as
    /// it reported them; the default (verification state unspecified) when its plugin has no
    /// `instance_info` function (built before it) or the call failed.
    pub fn instance_info(&self) -> &InstanceInfo {
        &self.info
    }

    /// The plugin this instance runs on.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Runs one webhook through the adapter (verify, then normalize, or the request's `stage`).
    ///
    /// The adapter reads the request in place (ABI v2: a view of `request`, nothing encoded or
    /// copied) and its result is decoded straight from the plugin's buffer. Blocks until the
    /// adapter returns: see [Deadlines](Self#deadlines). A successful result always has an
    /// outcome; one without, or bytes that do not decode, are [`HandleError::Undecodable`].
    pub fn handle(&self, request: &WebhookRequest) -> Result<AdapterResult, HandleError> {
        self.handle_as(request)
    }

    /// [`Self::handle`], with each event of a normalized result left as the plugin encoded it
    /// (slices of one copy of the plugin's buffer): the service stores those bytes as they
    /// are, so decoding the events here would be wasted. Nothing checks that the events
    /// decode: the caller reads what it needs of them.
    pub fn handle_events_encoded(
        &self,
        request: &WebhookRequest,
    ) -> Result<EncodedAdapterResult, HandleError> {
        self.handle_as(request)
    }

    /// The adapter call with its answer decoded as `R`.
    fn handle_as<R: Answer>(&self, request: &WebhookRequest) -> Result<R, HandleError> {
        if request.headers.len() <= INLINE_HEADERS {
            let mut headers = [NO_HEADER; INLINE_HEADERS];
            for (slot, header) in headers.iter_mut().zip(&request.headers) {
                *slot = header_view(header);
            }
            let headers = &headers[..request.headers.len()];
            self.call(&request_view(request, headers))
        } else {
            let headers: Vec<HeaderView> = request.headers.iter().map(header_view).collect();
            self.call(&request_view(request, &headers))
        }
    }

    /// One `handle` call across the boundary with `view`, whose memory outlives the call.
    fn call<R: Answer>(&self, view: &RequestView) -> Result<R, HandleError> {
        let _call = self.enter()?;
        let vtable = self.plugin.vtable();
        let mut out = PluginBuffer::EMPTY;
        // SAFETY: ABI v2 contract; the instance is alive, and the view and everything it
        // points to (borrowed from the caller) outlive the call.
        let status = unsafe { (vtable.handle)(self.instance, view, &mut out) };
        // SAFETY: `out` was written by this plugin and is freed once, when `bytes` drops.
        let bytes = unsafe { PluginBytes::new(vtable, out) };
        let bytes = bytes.as_slice();
        let adapter = || self.plugin.info().name.clone();
        match status {
            STATUS_OK => match R::decode_answer(bytes) {
                Ok(result) if result.has_outcome() => Ok(result),
                Ok(_) => Err(HandleError::Undecodable {
                    adapter: adapter(),
                    reason: format!(
                        "{} bytes with neither a normalized result nor a rejection",
                        bytes.len()
                    ),
                }),
                Err(error) => Err(HandleError::Undecodable {
                    adapter: adapter(),
                    reason: format!(
                        "{} bytes, not a tributary.v1.AdapterResult: {error}",
                        bytes.len()
                    ),
                }),
            },
            STATUS_PANIC => {
                self.plugin.count_panic();
                Err(HandleError::Panicked {
                    adapter: adapter(),
                    message: String::from_utf8_lossy(bytes).into_owned(),
                })
            }
            _ => Err(HandleError::Failed {
                adapter: adapter(),
                message: String::from_utf8_lossy(bytes).into_owned(),
            }),
        }
    }
}

/// Asks a new instance what it reports about itself; the default when it cannot say.
fn instance_info(plugin: &Plugin, instance: *mut c_void) -> InstanceInfo {
    let vtable = plugin.vtable();
    let Some(describe) = vtable.instance_info else {
        return InstanceInfo::default();
    };
    let mut out = PluginBuffer::EMPTY;
    // SAFETY: ABI v2 contract: the instance is alive and `out` is freed by this plugin.
    let status = unsafe { describe(instance, &mut out) };
    // SAFETY: `out` was written by this plugin.
    let bytes = unsafe { take_buffer(vtable, out) };
    if status != STATUS_OK {
        if status == STATUS_PANIC {
            plugin.count_panic();
        }
        return InstanceInfo::default();
    }
    InstanceInfo::decode(bytes.as_slice()).unwrap_or_default()
}

/// A decoding of the plugin's answer (`tributary.v1.AdapterResult` bytes).
trait Answer: Sized {
    fn decode_answer(bytes: &[u8]) -> Result<Self, prost::DecodeError>;
    /// Whether it holds a normalized result or a rejection.
    fn has_outcome(&self) -> bool;
}

impl Answer for AdapterResult {
    fn decode_answer(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        AdapterResult::decode(bytes)
    }

    fn has_outcome(&self) -> bool {
        self.outcome.is_some()
    }
}

impl Answer for EncodedAdapterResult {
    /// One copy of the plugin's buffer (freed as soon as the call returns); the events are
    /// slices of it.
    fn decode_answer(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        EncodedAdapterResult::decode(Bytes::copy_from_slice(bytes))
    }

    fn has_outcome(&self) -> bool {
        self.outcome.is_some()
    }
}

impl Drop for AdapterInstance {
    fn drop(&mut self) {
        // SAFETY: the instance came from this plugin's `create` and is destroyed once.
        unsafe { (self.plugin.vtable().destroy)(self.instance) };
    }
}
