//! Who may have written a library before the host maps it into the process.
//!
//! Loading a library runs its code with the service's privileges. So a library file, and the
//! directory its name is in, must be writable only by their owner, and that owner must be root
//! or the user the service runs as (its effective uid). Otherwise another account could put
//! its own code into the service by replacing or adding a plugin.
//!
//! The private copies the server maps (`data_dir/plugin-cache/`) are stricter still: the
//! directory is 0700 and each copy 0600 (mapping a library only needs read access for its
//! owner), and a copy is loaded only if its SHA-256 is the one of the file it was copied from.

use std::fs::{self, File, Metadata};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{LoadError, PathKind, TrustError};

/// The effective user id of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() }
}

/// Checks the owner and write permissions of `path` (whose metadata is `meta`).
pub(crate) fn check(kind: PathKind, path: &Path, meta: &Metadata) -> Result<(), TrustError> {
    let euid = euid();
    let owner = meta.uid();
    if owner != 0 && owner != euid {
        return Err(TrustError::Owner {
            kind,
            path: path.to_path_buf(),
            owner,
            euid,
        });
    }
    let mode = meta.mode() & 0o7777;
    let writers = match mode & 0o022 {
        0 => return Ok(()),
        0o020 => "its group",
        0o002 => "others",
        _ => "its group and others",
    };
    Err(TrustError::Writable {
        kind,
        path: path.to_path_buf(),
        writers,
        mode,
    })
}

/// The directory a path's name is in ("." for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Checks a plugin directory (the directory itself, not its files). Errors name `dir`.
pub(crate) fn check_dir(dir: &Path) -> Result<(), LoadError> {
    let meta = fs::metadata(dir).map_err(|source| LoadError::Read {
        file: dir.to_path_buf(),
        source,
    })?;
    check(PathKind::Directory, dir, &meta).map_err(|reason| LoadError::Untrusted {
        file: dir.to_path_buf(),
        reason,
    })
}

/// Opens a library file for reading after checking it and the directory it is in (and, for a
/// symbolic link, the directory of the file it resolves to). The file's own check is made on
/// the opened file, so what is read afterwards is what was checked. Errors name `file`.
pub(crate) fn open_library(file: &Path) -> Result<File, LoadError> {
    let read_error = |source| LoadError::Read {
        file: file.to_path_buf(),
        source,
    };
    let untrusted = |reason| LoadError::Untrusted {
        file: file.to_path_buf(),
        reason,
    };
    let dir = parent_dir(file);
    let dir_meta = fs::metadata(dir).map_err(read_error)?;
    check(PathKind::Directory, dir, &dir_meta).map_err(untrusted)?;
    if fs::symlink_metadata(file)
        .map_err(read_error)?
        .file_type()
        .is_symlink()
    {
        let target = fs::canonicalize(file).map_err(read_error)?;
        let target_dir = parent_dir(&target);
        let target_dir_meta = fs::metadata(target_dir).map_err(read_error)?;
        check(PathKind::Directory, target_dir, &target_dir_meta).map_err(untrusted)?;
    }
    let opened = File::open(file).map_err(read_error)?;
    let meta = opened.metadata().map_err(read_error)?;
    check(PathKind::File, file, &meta).map_err(untrusted)?;
    Ok(opened)
}

/// Reads a checked library file (see [`open_library`]) and returns its bytes and SHA-256 (hex).
pub(crate) fn read_library(file: &Path) -> Result<(Vec<u8>, String), LoadError> {
    let mut opened = open_library(file)?;
    let mut bytes = Vec::new();
    opened
        .read_to_end(&mut bytes)
        .map_err(|source| LoadError::Read {
            file: file.to_path_buf(),
            source,
        })?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok((bytes, sha256))
}

/// Creates the private copies directory (0700), or tightens an existing one of ours to 0700,
/// and checks it. Errors name `file`, the library being copied.
pub(crate) fn private_dir(dir: &Path, file: &Path) -> Result<(), LoadError> {
    let copy_error = |source| LoadError::Copy {
        file: file.to_path_buf(),
        copy: dir.to_path_buf(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(copy_error)?;
    let mut meta = fs::metadata(dir).map_err(copy_error)?;
    if meta.uid() == euid() && meta.mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(copy_error)?;
        meta = fs::metadata(dir).map_err(copy_error)?;
    }
    check(PathKind::Directory, dir, &meta).map_err(|reason| LoadError::Untrusted {
        file: file.to_path_buf(),
        reason,
    })
}

/// Whether `copy` can be loaded as the library whose SHA-256 is `sha256`: it exists, is a
/// regular file of this process's user and its content hashes to `sha256`. A matching copy
/// readable by others (written by an older version) is tightened to 0600.
pub(crate) fn reusable_copy(copy: &Path, sha256: &str) -> bool {
    let Ok(mut opened) = File::open(copy) else {
        return false;
    };
    let Ok(meta) = opened.metadata() else {
        return false;
    };
    if !meta.is_file() || meta.uid() != euid() {
        return false;
    }
    let mut bytes = Vec::new();
    if opened.read_to_end(&mut bytes).is_err() || hex::encode(Sha256::digest(&bytes)) != sha256 {
        return false;
    }
    meta.mode() & 0o077 == 0
        || opened
            .set_permissions(fs::Permissions::from_mode(0o600))
            .is_ok()
}

/// Writes `bytes` to `copy` (mode 0600) under a temporary name, then renames it into place, so
/// a copy is never seen half written and a stale or tampered copy is replaced atomically.
pub(crate) fn write_copy(copy: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = copy
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("plugin");
    let partial = parent_dir(copy).join(format!(
        ".{name}-{}-{}.partial",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let _ = fs::remove_file(&partial);
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)?;
        // Exactly 0600 whatever the umask: readable (so mappable) by its owner only.
        out.set_permissions(fs::Permissions::from_mode(0o600))?;
        out.write_all(bytes)?;
        out.sync_all()?;
        fs::rename(&partial, copy)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&partial);
    }
    written
}
