use std::fs;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use libloading::Library;
use prost::Message;
use tributary_model::v1::AdapterInfo;
use tributary_plugin_abi::{
    ABI_VERSION, ABI_VERSION_SYMBOL, AbiVersionFn, AdapterVTableV2, CreateFn, DestroyFn,
    ENTRY_SYMBOL, EntryFn, FreeBufferFn, HandleFn, InfoFn, InstanceInfoFn, PluginBuffer, STATUS_OK,
    TABLE_V2_MIN_SIZE,
};

use crate::buffer::take_buffer;
use crate::error::LoadError;
use crate::trust;

/// The fields every ABI version's table starts with; read before anything else.
#[repr(C)]
#[derive(Clone, Copy)]
struct TableHeader {
    abi_version: u32,
    size: u32,
}

/// The first ABI v2 table ([`TABLE_V2_MIN_SIZE`] bytes), as the plugin's memory may actually
/// hold it: function pointers can be null (a C plugin that leaves one out). Same layout as the
/// start of [`AdapterVTableV2`] (`Option<fn>` is a nullable pointer).
#[repr(C)]
#[derive(Clone, Copy)]
struct RawTableV2 {
    abi_version: u32,
    size: u32,
    info: Option<InfoFn>,
    create: Option<CreateFn>,
    handle: Option<HandleFn>,
    free_buffer: Option<FreeBufferFn>,
    destroy: Option<DestroyFn>,
}

/// The whole current table: the first one plus the optional functions added at its end.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawTableV2Full {
    base: RawTableV2,
    instance_info: Option<InstanceInfoFn>,
}

const _: () = assert!(
    size_of::<RawTableV2Full>() == size_of::<AdapterVTableV2>()
        && align_of::<RawTableV2Full>() == align_of::<AdapterVTableV2>()
        && size_of::<RawTableV2>() == TABLE_V2_MIN_SIZE as usize
        && size_of::<TableHeader>() == 8
);

impl RawTableV2 {
    fn checked(
        self,
        file: &Path,
        instance_info: Option<InstanceInfoFn>,
    ) -> Result<AdapterVTableV2, LoadError> {
        let missing = |function| LoadError::IncompleteTable {
            file: file.to_path_buf(),
            function,
        };
        Ok(AdapterVTableV2 {
            abi_version: self.abi_version,
            size: self.size,
            info: self.info.ok_or_else(|| missing("info"))?,
            create: self.create.ok_or_else(|| missing("create"))?,
            handle: self.handle.ok_or_else(|| missing("handle"))?,
            free_buffer: self.free_buffer.ok_or_else(|| missing("free_buffer"))?,
            destroy: self.destroy.ok_or_else(|| missing("destroy"))?,
            instance_info,
        })
    }
}

/// A loaded, checked plugin library.
pub struct Plugin {
    // Never dropped: unloading is not sound (see the crate docs).
    _library: ManuallyDrop<Library>,
    /// The plugin's table, copied into host memory once it was checked.
    vtable: AdapterVTableV2,
    info: AdapterInfo,
    file: PathBuf,
    loaded_from: PathBuf,
    sha256: String,
    loaded_at: SystemTime,
    panics: AtomicU64,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("info", &self.info)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Loads and checks the library at `file`.
    ///
    /// Loading runs the library's initialisers, so the file and its directory must be writable
    /// by their owner only and owned by root or this process's user, else
    /// [`LoadError::Untrusted`] (see [`TrustError`](crate::TrustError)).
    pub fn load(file: &Path) -> Result<Arc<Plugin>, LoadError> {
        let (_, sha256) = trust::read_library(file)?;
        Self::open(file.to_path_buf(), file.to_path_buf(), sha256)
    }

    /// Loads a private copy of `file`, written to `copies` under a name unique to its content
    /// (`<stem>-<sha256 prefix>.so`). This is how the server loads: the dynamic loader caches
    /// libraries by path, so a rebuilt library needs a new name to be loaded again, and the
    /// process never maps a file someone may overwrite in place. Errors name `file`.
    ///
    /// `file` is checked as by [`Plugin::load`]. `copies` is created 0700 (an existing one of
    /// this user is tightened to 0700) and each copy written 0600. An existing copy is reused
    /// only if its SHA-256 is the one of `file`; otherwise it is written again.
    pub fn load_copy(file: &Path, copies: &Path) -> Result<Arc<Plugin>, LoadError> {
        let (bytes, sha256) = trust::read_library(file)?;
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plugin");
        let copy = copies.join(format!(
            "{stem}-{}.{}",
            &sha256[..16],
            std::env::consts::DLL_EXTENSION
        ));
        trust::private_dir(copies, file)?;
        if !trust::reusable_copy(&copy, &sha256) {
            trust::write_copy(&copy, &bytes).map_err(|source| LoadError::Copy {
                file: file.to_path_buf(),
                copy: copy.clone(),
                source,
            })?;
        }
        Self::open(file.to_path_buf(), copy, sha256)
    }

    fn open(file: PathBuf, loaded_from: PathBuf, sha256: String) -> Result<Arc<Plugin>, LoadError> {
        // SAFETY: loading runs the library's initialisers; the plugin directory is trusted
        // (operator-controlled), as documented.
        let library = unsafe { Library::new(&loaded_from) }.map_err(|source| LoadError::Open {
            file: file.clone(),
            source,
        })?;
        let library = ManuallyDrop::new(library);

        // SAFETY: the symbol's type is fixed by the ABI; it is called only if present.
        let entry = unsafe { library.get::<EntryFn>(ENTRY_SYMBOL) };
        let Ok(entry) = entry else {
            return Err(abi_error(&library, file));
        };
        // SAFETY: the entry function takes nothing and returns a pointer to a static table.
        let table = unsafe { entry() };
        if table.is_null() {
            return Err(LoadError::NotAPlugin { file });
        }
        // SAFETY: every ABI version's table starts with two u32 fields, version then size, so
        // a plugin exporting the entry symbol points at least at those 8 bytes (in a library
        // that is never unloaded). Only they are read, by value and without assuming alignment;
        // no reference to the table is formed before the checks below.
        let header = unsafe { std::ptr::read_unaligned(table.cast::<TableHeader>()) };
        if header.abi_version != ABI_VERSION {
            return Err(LoadError::AbiMismatch {
                file,
                found: header.abi_version,
                expected: ABI_VERSION,
            });
        }
        if header.size < TABLE_V2_MIN_SIZE {
            return Err(LoadError::TableTooSmall {
                file,
                found: header.size,
                expected: TABLE_V2_MIN_SIZE,
            });
        }
        // The table grows only at its end, with optional functions: a plugin built before one
        // was added has a smaller table, and only what its `size` covers is read.
        let vtable = if header.size as usize >= size_of::<RawTableV2Full>() {
            // SAFETY: the plugin declares ABI v2 and a table at least as large as this host's,
            // so all of it is readable. Copied by value without assuming alignment, into a
            // type whose every bit pattern of a v2 table is valid (function pointers as
            // `Option`); null required ones are refused by `checked`.
            let raw = unsafe { std::ptr::read_unaligned(table.cast::<RawTableV2Full>()) };
            raw.base.checked(&file, raw.instance_info)?
        } else {
            // SAFETY: as above, for the first v2 table (`TABLE_V2_MIN_SIZE` bytes, checked).
            let raw = unsafe { std::ptr::read_unaligned(table.cast::<RawTableV2>()) };
            raw.checked(&file, None)?
        };

        let mut out = PluginBuffer::EMPTY;
        // SAFETY: ABI v2 contract: `info` writes a buffer this plugin frees.
        let status = unsafe { (vtable.info)(&mut out) };
        // SAFETY: `out` was written by this plugin's `info`.
        let bytes = unsafe { take_buffer(&vtable, out) };
        if status != STATUS_OK {
            return Err(LoadError::Info {
                file,
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        let info = AdapterInfo::decode(bytes.as_slice()).map_err(|e| LoadError::Info {
            file: file.clone(),
            message: e.to_string(),
        })?;
        if info.name.is_empty() {
            return Err(LoadError::Info {
                file,
                message: "adapter has an empty name".to_owned(),
            });
        }

        Ok(Arc::new(Plugin {
            _library: library,
            vtable,
            info,
            file,
            loaded_from,
            sha256,
            loaded_at: SystemTime::now(),
            panics: AtomicU64::new(0),
        }))
    }

    /// What the adapter says about itself.
    pub fn info(&self) -> &AdapterInfo {
        &self.info
    }

    /// The library file it was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The file actually mapped: a private copy for [`Plugin::load_copy`], else [`Plugin::file`].
    pub fn loaded_from(&self) -> &Path {
        &self.loaded_from
    }

    /// How many calls into this library panicked (caught at the boundary) so far.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    pub(crate) fn count_panic(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    /// SHA-256 of the library file, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// When it was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// The ABI version it was checked against.
    pub fn abi_version(&self) -> u32 {
        self.vtable.abi_version
    }

    pub(crate) fn vtable(&self) -> &AdapterVTableV2 {
        &self.vtable
    }
}

/// Explains a library without the v2 entry symbol: another ABI version, or not a plugin.
fn abi_error(library: &Library, file: PathBuf) -> LoadError {
    // SAFETY: the version symbol's type is fixed across ABI versions.
    match unsafe { library.get::<AbiVersionFn>(ABI_VERSION_SYMBOL) } {
        Ok(version) => LoadError::AbiMismatch {
            file,
            // SAFETY: takes nothing, returns an integer.
            found: unsafe { version() },
            expected: ABI_VERSION,
        },
        Err(_) => LoadError::NotAPlugin { file },
    }
}

/// The dynamic libraries in `dir`, sorted by file name: what a plugin directory offers.
///
/// The directory must be writable by its owner only and owned by root or this process's user,
/// else [`LoadError::Untrusted`] naming `dir`. Files are listed whatever their own permissions:
/// [`Plugin::load`] and [`Plugin::load_copy`] refuse an untrusted one with its own error, so
/// the others still load.
pub fn library_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    trust::check_dir(dir)?;
    let entries = fs::read_dir(dir).map_err(|source| LoadError::Read {
        file: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && crate::is_library_path(path))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads every library in `dir` (sorted by file name). Returns the plugins that loaded and the
/// errors of those that did not, so one bad file never stops the others. Fails only when the
/// directory cannot be read or is not trusted (see [`library_files`]).
pub fn load_dir(dir: &Path) -> Result<(Vec<Arc<Plugin>>, Vec<LoadError>), LoadError> {
    let files = library_files(dir)?;
    let mut plugins = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match Plugin::load(&file) {
            Ok(plugin) => plugins.push(plugin),
            Err(error) => errors.push(error),
        }
    }
    Ok((plugins, errors))
}
