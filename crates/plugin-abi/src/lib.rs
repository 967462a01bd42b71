//! The C ABI between the Tributary host and adapter plugins, version 2.
//!
//! Only `#[repr(C)]` structs, pointer + length byte slices and integer status codes cross the
//! boundary. A plugin exports one symbol, [`ENTRY_SYMBOL`], returning a pointer to a static
//! [`AdapterVTableV2`]. The host checks [`AdapterVTableV2::abi_version`] and
//! [`AdapterVTableV2::size`] before any call.
//!
//! Requests go in by pointer, as a [`RequestView`] of the host's own memory (nothing encoded,
//! decoded or copied on the way in); results come back as an encoded
//! `tributary.v1.AdapterResult` (`proto/tributary/v1/plugin.proto`) in a plugin buffer, which
//! the host decodes in place before it frees it.
//!
//! Memory rule: whoever allocates frees. Buffers a plugin returns are released by the host
//! calling the plugin's own `free_buffer`; a request view and everything it points to belong
//! to the host and are valid only during the call.
//!
//! Version 1 passed the request as an encoded `tributary.v1.WebhookRequest`; a v1 library is
//! refused at load time (its `tributary_abi_version` says 1).
#![no_std]

use core::ffi::c_void;

/// The ABI version this crate describes. Bumped on any incompatible change to the table.
pub const ABI_VERSION: u32 = 2;

/// Name of the entry symbol, NUL-terminated for `dlsym`. The version is part of the name so a
/// library built for another ABI is told apart before anything is called.
pub const ENTRY_SYMBOL: &[u8] = b"tributary_adapter_v2\0";

/// Name of the symbol every ABI version exports to report its version, NUL-terminated. Lets the
/// host say "built for ABI 2" instead of "not a plugin".
pub const ABI_VERSION_SYMBOL: &[u8] = b"tributary_abi_version\0";

/// The call succeeded; the output buffer holds the result.
pub const STATUS_OK: i32 = 0;
/// The call failed; the output buffer holds a UTF-8 error message.
pub const STATUS_ERROR: i32 = 1;
/// The adapter panicked; the output buffer holds the panic message. The instance stays usable.
pub const STATUS_PANIC: i32 = 2;

/// A byte buffer allocated by the plugin. Hand it back to the plugin's `free_buffer`.
#[repr(C)]
#[derive(Debug)]
pub struct PluginBuffer {
    /// Start of the bytes; null for an empty buffer.
    pub ptr: *mut u8,
    /// Number of initialised bytes.
    pub len: usize,
    /// Allocation size, needed by the plugin to free it.
    pub cap: usize,
}

impl PluginBuffer {
    /// An empty buffer that owns nothing.
    pub const EMPTY: PluginBuffer = PluginBuffer {
        ptr: core::ptr::null_mut(),
        len: 0,
        cap: 0,
    };
}

/// A borrowed byte slice: `len` bytes at `ptr` (which may be null when `len` is 0). Owned by
/// whoever passes it and valid only during the call it is passed to.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ByteSlice {
    /// Start of the bytes; may be null when `len` is 0.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl ByteSlice {
    /// An empty slice.
    pub const EMPTY: ByteSlice = ByteSlice {
        ptr: core::ptr::null(),
        len: 0,
    };

    /// A view of `bytes`; valid while `bytes` is.
    pub const fn new(bytes: &[u8]) -> Self {
        ByteSlice {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }
}

/// One HTTP header of a [`RequestView`]: UTF-8 name (lowercase) and value.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HeaderView {
    /// The header name, lowercase UTF-8.
    pub name: ByteSlice,
    /// The header value, UTF-8.
    pub value: ByteSlice,
}

/// [`RequestView::flags`]: `received_at_seconds`/`received_at_nanos` hold the receive time.
pub const REQUEST_HAS_RECEIVED_AT: u32 = 1;
/// [`RequestView::flags`]: skip signature checks (dry runs only).
pub const REQUEST_SKIP_VERIFICATION: u32 = 2;

/// [`RequestView::stage`]: verify, then normalize.
pub const STAGE_ALL: u32 = 0;
/// [`RequestView::stage`]: verify only; the result is a rejection or an empty `Normalized`.
pub const STAGE_VERIFY: u32 = 1;
/// [`RequestView::stage`]: normalize only; the host already verified this request.
pub const STAGE_NORMALIZE: u32 = 2;

/// One webhook as the host received it, by pointer into host memory: the fields of
/// `tributary.v1.WebhookRequest` without its encoding. Text fields are UTF-8. Everything it
/// points to is owned by the host and valid only during the `handle` call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RequestView {
    /// The source that received it.
    pub source: ByteSlice,
    /// HTTP method.
    pub method: ByteSlice,
    /// Request path.
    pub path: ByteSlice,
    /// The raw query string, without '?'.
    pub query: ByteSlice,
    /// `headers_len` headers; may be null when `headers_len` is 0.
    pub headers: *const HeaderView,
    /// Number of headers.
    pub headers_len: usize,
    /// The raw body, byte for byte as received.
    pub body: ByteSlice,
    /// Receive time, Unix seconds (when flagged [`REQUEST_HAS_RECEIVED_AT`]).
    pub received_at_seconds: i64,
    /// Receive time, nanoseconds within the second (when flagged).
    pub received_at_nanos: i32,
    /// [`STAGE_ALL`], [`STAGE_VERIFY`] or [`STAGE_NORMALIZE`].
    pub stage: u32,
    /// [`REQUEST_HAS_RECEIVED_AT`] | [`REQUEST_SKIP_VERIFICATION`].
    pub flags: u32,
}

/// Returns the encoded `tributary.v1.AdapterInfo` in `out`.
pub type InfoFn = unsafe extern "C" fn(out: *mut PluginBuffer) -> i32;

/// Creates an adapter instance from UTF-8 JSON `{"host": {"source", "installation_key"},
/// "config": <the source's config table>}`. On success `*instance` is set and `message` holds
/// start-up warnings for the operator (one per line, possibly empty); on failure `message`
/// holds the error.
pub type CreateFn = unsafe extern "C" fn(
    args: *const u8,
    args_len: usize,
    instance: *mut *mut c_void,
    message: *mut PluginBuffer,
) -> i32;

/// Handles one webhook, passed as a view of host memory valid during the call; writes an
/// encoded `tributary.v1.AdapterResult` to `out`. Called concurrently from many threads:
/// instances are immutable after `create`.
pub type HandleFn = unsafe extern "C" fn(
    instance: *const c_void,
    request: *const RequestView,
    out: *mut PluginBuffer,
) -> i32;

/// Writes the encoded `tributary.v1.InstanceInfo` of `instance` (how its source verifies
/// webhooks: on, not configured, switched off; the configured secrets' positions, labels and
/// expiry, never their values) to `out`. Called once, after `create`.
pub type InstanceInfoFn =
    unsafe extern "C" fn(instance: *const c_void, out: *mut PluginBuffer) -> i32;

/// Frees a buffer this plugin returned.
pub type FreeBufferFn = unsafe extern "C" fn(buffer: PluginBuffer);

/// Destroys an instance made by `create`.
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// The function table a plugin exports (ABI v2).
///
/// The table only grows at its end, with optional (nullable) functions: a plugin says how much
/// of it it knows in `size`. A host reads the fields that fit in `size` and treats the others
/// as null; tables smaller than [`TABLE_V2_MIN_SIZE`] are refused.
#[repr(C)]
pub struct AdapterVTableV2 {
    /// Must equal [`ABI_VERSION`].
    pub abi_version: u32,
    /// `size_of::<AdapterVTableV2>()` as the plugin saw it.
    pub size: u32,
    pub info: InfoFn,
    pub create: CreateFn,
    pub handle: HandleFn,
    pub free_buffer: FreeBufferFn,
    pub destroy: DestroyFn,
    /// Optional (null, or beyond `size` in tables built before it): the host then reports the
    /// instance's verification state as unknown.
    /// Same signature as [`InstanceInfoFn`] (spelled out so the C header shows a nullable
    /// function pointer).
    pub instance_info:
        Option<unsafe extern "C" fn(instance: *const c_void, out: *mut PluginBuffer) -> i32>,
}

/// The size of the first ABI v2 table (up to `destroy`): the smallest table a host accepts.
pub const TABLE_V2_MIN_SIZE: u32 = core::mem::offset_of!(AdapterVTableV2, instance_info) as u32;

/// Signature of the entry symbol [`ENTRY_SYMBOL`].
pub type EntryFn = unsafe extern "C" fn() -> *const AdapterVTableV2;

/// Signature of [`ABI_VERSION_SYMBOL`].
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;
