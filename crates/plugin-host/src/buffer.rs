//! Buffers a plugin returns: read in place and handed back to the plugin to free. Used by the
//! loader (adapter info) and by calls (results, errors).

use tributary_plugin_abi::{AdapterVTableV2, PluginBuffer};

/// A buffer the plugin returned, read in place and handed back to the plugin's `free_buffer`
/// when dropped (also on unwind), so its bytes are never copied into host memory.
pub(crate) struct PluginBytes<'a> {
    vtable: &'a AdapterVTableV2,
    buffer: PluginBuffer,
}

impl<'a> PluginBytes<'a> {
    /// Takes ownership of `buffer`.
    ///
    /// # Safety
    /// `buffer` must have been returned by a function of `vtable` and not freed yet.
    pub(crate) unsafe fn new(vtable: &'a AdapterVTableV2, buffer: PluginBuffer) -> Self {
        Self { vtable, buffer }
    }

    /// The plugin's bytes, valid until this is dropped.
    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.buffer.ptr.is_null() || self.buffer.len == 0 {
            return &[];
        }
        // SAFETY: per the ABI the plugin wrote `len` initialised bytes at `ptr`; they stay
        // until `free_buffer`, which only `drop` calls.
        unsafe { std::slice::from_raw_parts(self.buffer.ptr, self.buffer.len) }
    }
}

impl Drop for PluginBytes<'_> {
    fn drop(&mut self) {
        if self.buffer.ptr.is_null() {
            return;
        }
        let buffer = std::mem::replace(&mut self.buffer, PluginBuffer::EMPTY);
        // SAFETY: the buffer came from this plugin (`new`'s contract) and is freed exactly
        // once, here.
        unsafe { (self.vtable.free_buffer)(buffer) };
    }
}

/// Copies a plugin-owned buffer into host memory and hands it back to the plugin to free.
///
/// # Safety
/// `buffer` must have been returned by a function of `vtable` and not freed yet.
pub(crate) unsafe fn take_buffer(vtable: &AdapterVTableV2, buffer: PluginBuffer) -> Vec<u8> {
    // SAFETY: forwarded from this function's contract.
    unsafe { PluginBytes::new(vtable, buffer) }
        .as_slice()
        .to_vec()
}
