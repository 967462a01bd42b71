//! Why a plugin could not be loaded, and why the host does not trust a file: the errors the
//! loader ([`crate::plugin`]) and the trust checks ([`crate::trust`]) both return.

use std::fmt;
use std::path::PathBuf;

/// Why a library could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not a loadable library: {source}")]
    Open {
        file: PathBuf,
        source: libloading::Error,
    },
    #[error("{file}: not a Tributary plugin (no `tributary_adapter_v2` symbol)")]
    NotAPlugin { file: PathBuf },
    #[error("{file}: built for plugin ABI {found}, this host speaks ABI {expected}: {}", abi_advice(*.found, *.expected))]
    AbiMismatch {
        file: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("{file}: function table is {found} bytes, expected at least {expected}")]
    TableTooSmall {
        file: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("{file}: function table has no `{function}` function (null pointer)")]
    IncompleteTable {
        file: PathBuf,
        function: &'static str,
    },
    /// The library, its directory (or the plugin cache) could be written by another account.
    /// `file` is the library (or plugin directory) refused; `reason` names the path at fault.
    #[error("{file}: refused: {reason}")]
    Untrusted { file: PathBuf, reason: TrustError },
    #[error("{file}: adapter info failed: {message}")]
    Info { file: PathBuf, message: String },
    #[error("{file}: cannot copy to {copy}: {source}")]
    Copy {
        file: PathBuf,
        copy: PathBuf,
        source: std::io::Error,
    },
}

/// What to do about a library built for another ABI version.
fn abi_advice(found: u32, expected: u32) -> String {
    if found < expected {
        format!(
            "rebuild it against tributary-plugin-sdk {} (or a C adapter against this host's \
             tributary_plugin.h)",
            env!("CARGO_PKG_VERSION")
        )
    } else {
        "run it on a host that speaks its ABI".to_owned()
    }
}

/// What kind of path a [`TrustError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    File,
    Directory,
}

impl fmt::Display for PathKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathKind::File => "file",
            PathKind::Directory => "directory",
        })
    }
}

/// Why the host does not trust a plugin file or directory (see [`LoadError::Untrusted`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// Someone other than the owner may write to it.
    #[error(
        "{kind} {path} is writable by {writers} (mode {mode:04o}); only its owner may write to it"
    )]
    Writable {
        kind: PathKind,
        path: PathBuf,
        /// "its group", "others" or "its group and others".
        writers: &'static str,
        /// The permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// It belongs to a user who is neither root nor the one the service runs as.
    #[error(
        "{kind} {path} is owned by uid {owner}; only root or the service's user (uid {euid}) may own it"
    )]
    Owner {
        kind: PathKind,
        path: PathBuf,
        owner: u32,
        /// The service's effective uid.
        euid: u32,
    },
}
