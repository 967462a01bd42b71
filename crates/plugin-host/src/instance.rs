use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prost::Message;
use tributary_model::v1::{AdapterResult, WebhookRequest};
use tributary_plugin_abi::{AdapterVTableV1, PluginBuffer, STATUS_OK, STATUS_PANIC};

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

/// Copies a plugin-owned buffer into host memory and hands it back to the plugin to free.
///
/// # Safety
/// `buffer` must have been returned by a function of `vtable` and not freed yet.
pub(crate) unsafe fn take_buffer(vtable: &AdapterVTableV1, buffer: PluginBuffer) -> Vec<u8> {
    if buffer.ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: per the ABI the plugin wrote `len` initialised bytes at `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts(buffer.ptr, buffer.len) }.to_vec();
    // SAFETY: the buffer came from this plugin and is freed exactly once, here.
    unsafe { (vtable.free_buffer)(buffer) };
    bytes
}

/// One configured instance of a plugin (one source). `Send + Sync`: share it in an `Arc`.
///
/// # Deadlines
///
/// A call into native code cannot be interrupted, and [`Self::handle_encoded`] blocks its
/// thread until the adapter returns. An async service therefore runs each call on a blocking
/// thread and stops waiting at the deadline, e.g. with tokio:
///
/// ```ignore
/// let source = Arc::clone(&source); // whatever owns the instance, in an Arc
/// let call = tokio::task::spawn_blocking(move || source.adapter.handle_encoded(&encoded));
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

// SAFETY: ABI v1 requires instances to be immutable after `create` and `handle` to be callable
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
        // SAFETY: ABI v1 contract; the slice outlives the call.
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
        Ok(Self {
            plugin,
            instance,
            warnings,
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

    /// The plugin this instance runs on.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Runs one webhook through the adapter (verify, then normalize).
    pub fn handle(&self, request: &WebhookRequest) -> Result<AdapterResult, HandleError> {
        self.handle_encoded(&request.encode_to_vec())
    }

    /// Like [`Self::handle`] with an already encoded `WebhookRequest`.
    ///
    /// Blocks until the adapter returns: see [Deadlines](Self#deadlines). A successful result
    /// always has an outcome; one without, or bytes that do not decode, are
    /// [`HandleError::Undecodable`].
    pub fn handle_encoded(&self, request: &[u8]) -> Result<AdapterResult, HandleError> {
        let _call = self.enter()?;
        let vtable = self.plugin.vtable();
        let mut out = PluginBuffer::EMPTY;
        // SAFETY: ABI v1 contract; the instance is alive and the slice outlives the call.
        let status =
            unsafe { (vtable.handle)(self.instance, request.as_ptr(), request.len(), &mut out) };
        // SAFETY: `out` was written by this plugin.
        let bytes = unsafe { take_buffer(vtable, out) };
        let adapter = || self.plugin.info().name.clone();
        match status {
            STATUS_OK => match AdapterResult::decode(bytes.as_slice()) {
                Ok(result) if result.outcome.is_some() => Ok(result),
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
                    message: String::from_utf8_lossy(&bytes).into_owned(),
                })
            }
            _ => Err(HandleError::Failed {
                adapter: adapter(),
                message: String::from_utf8_lossy(&bytes).into_owned(),
            }),
        }
    }
}

impl Drop for AdapterInstance {
    fn drop(&mut self) {
        // SAFETY: the instance came from this plugin's `create` and is destroyed once.
        unsafe { (self.plugin.vtable().destroy)(self.instance) };
    }
}
