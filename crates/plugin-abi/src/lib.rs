//! The C ABI between the Tributary host and adapter plugins, version 1.
//!
//! Only `#[repr(C)]` structs, pointer + length byte slices and integer status codes cross the
//! boundary; the payloads are protobuf messages from `proto/tributary/v1/plugin.proto`. A plugin
//! exports one symbol, [`ENTRY_SYMBOL`], returning a pointer to a static [`AdapterVTableV1`]. The
//! host checks [`AdapterVTableV1::abi_version`] and [`AdapterVTableV1::size`] before any call.
//!
//! Memory rule: whoever allocates frees. Buffers a plugin returns are released by the host
//! calling the plugin's own `free_buffer`.
#![no_std]

use core::ffi::c_void;

/// The ABI version this crate describes. Bumped on any incompatible change to the table.
pub const ABI_VERSION: u32 = 1;

/// Name of the entry symbol, NUL-terminated for `dlsym`. The version is part of the name so a
/// library built for another ABI is told apart before anything is called.
pub const ENTRY_SYMBOL: &[u8] = b"tributary_adapter_v1\0";

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

/// Handles one encoded `tributary.v1.WebhookRequest`; writes an encoded
/// `tributary.v1.AdapterResult` to `out`. Called concurrently from many threads: instances are
/// immutable after `create`.
pub type HandleFn = unsafe extern "C" fn(
    instance: *const c_void,
    request: *const u8,
    request_len: usize,
    out: *mut PluginBuffer,
) -> i32;

/// Frees a buffer this plugin returned.
pub type FreeBufferFn = unsafe extern "C" fn(buffer: PluginBuffer);

/// Destroys an instance made by `create`.
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// The function table a plugin exports (ABI v1).
#[repr(C)]
pub struct AdapterVTableV1 {
    /// Must equal [`ABI_VERSION`].
    pub abi_version: u32,
    /// `size_of::<AdapterVTableV1>()` as the plugin saw it.
    pub size: u32,
    pub info: InfoFn,
    pub create: CreateFn,
    pub handle: HandleFn,
    pub free_buffer: FreeBufferFn,
    pub destroy: DestroyFn,
}

/// Signature of the entry symbol [`ENTRY_SYMBOL`].
pub type EntryFn = unsafe extern "C" fn() -> *const AdapterVTableV1;

/// Signature of [`ABI_VERSION_SYMBOL`].
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;
