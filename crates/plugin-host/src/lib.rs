//! Loads adapter plugins and calls them across the C ABI (v2).
//!
//! A [`Plugin`] is a loaded library whose ABI version and function table were checked before
//! the first call. Libraries are never unloaded (`dlclose` with thread-local destructors is not
//! sound on Linux), so a function pointer taken from one stays valid for the whole process.
//! An [`AdapterInstance`] is one configured instance (one source) of a plugin.
//!
//! Loading a library runs its code, so only files no other account could have written are
//! loaded: the file and its directory must be owned by root or the service's user and not
//! group- or world-writable ([`LoadError::Untrusted`], [`TrustError`]). The server maps
//! private copies ([`Plugin::load_copy`]) kept owner-only and re-hashed before each load.
//! Adapter calls block their thread; see [`AdapterInstance`] for running them with a
//! deadline.

mod buffer;
mod error;
pub mod fixtures;
mod instance;
mod plugin;
mod trust;
pub mod watch;

pub use error::{LoadError, PathKind, TrustError};
pub use instance::{AdapterInstance, HandleError};
pub use plugin::{Plugin, library_files, load_dir};

/// The platform's file name for a cdylib crate named `crate_name` ("libfoo.so" on Linux).
pub fn library_file_name(crate_name: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// Whether a path looks like a dynamic library for this platform.
pub fn is_library_path(path: &std::path::Path) -> bool {
    path.extension().and_then(|e| e.to_str()) == Some(std::env::consts::DLL_EXTENSION)
}
