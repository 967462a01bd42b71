use std::ffi::c_void;
use std::sync::Arc;

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

/// One configured instance of a plugin (one source). Cheap to share across threads.
pub struct AdapterInstance {
    plugin: Arc<Plugin>,
    instance: *mut c_void,
    warnings: Vec<String>,
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
        })
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
    /// A successful result always has an outcome; one without, or bytes that do not decode,
    /// are [`HandleError::Undecodable`].
    pub fn handle_encoded(&self, request: &[u8]) -> Result<AdapterResult, HandleError> {
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
