//! The host loads only libraries that no account but root or its own could have written, and
//! maps only private copies whose content it checked.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::path::Path;

use crate::support::build_probe;
use sha2::{Digest, Sha256};
use tributary_plugin_host::{LoadError, PathKind, Plugin, TrustError, library_files, load_dir};

/// A user that owns nothing here (`nobody`).
const OTHER_UID: u32 = 65534;

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").mode() & 0o7777
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).expect("read")))
}

/// This process's effective uid: the owner of what it creates.
fn euid() -> u32 {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::metadata(dir.path()).expect("metadata").uid()
}

#[test]
fn a_world_writable_library_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_probe(dir.path(), "probe");
    chmod(&library, 0o666);
    let error = Plugin::load(&library).expect_err("refused");
    assert!(
        matches!(
            &error,
            LoadError::Untrusted {
                file,
                reason: TrustError::Writable { kind: PathKind::File, mode: 0o666, .. },
            } if *file == library
        ),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{0}: refused: file {0} is writable by its group and others (mode 0666); \
             only its owner may write to it",
            library.display()
        )
    );
    // The server's path refuses it too, and writes no copy.
    let cache = dir.path().join("cache");
    let error = Plugin::load_copy(&library, &cache).expect_err("refused");
    assert!(matches!(error, LoadError::Untrusted { .. }), "{error}");
    assert!(!cache.exists());
}

#[test]
fn a_group_writable_library_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_probe(dir.path(), "probe");
    chmod(&library, 0o775);
    let error = Plugin::load(&library).expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("is writable by its group (mode 0775)"),
        "{error}"
    );
}

#[test]
fn a_library_in_a_world_writable_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_probe(dir.path(), "probe");
    chmod(dir.path(), 0o777);
    let error = Plugin::load(&library).expect_err("refused");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: refused: directory {} is writable by its group and others (mode 0777); \
             only its owner may write to it",
            library.display(),
            dir.path().display()
        )
    );
    // Listing the directory refuses it as a whole, naming it.
    let error = library_files(dir.path()).expect_err("refused");
    assert!(
        matches!(
            &error,
            LoadError::Untrusted {
                file,
                reason: TrustError::Writable { kind: PathKind::Directory, .. },
            } if file == dir.path()
        ),
        "{error}"
    );
    assert!(
        error.to_string().starts_with(&format!(
            "{0}: refused: directory {0} is writable by its group and others (mode 0777)",
            dir.path().display()
        )),
        "{error}"
    );
    // A sticky bit (as on /tmp) does not help: anyone could still add a library.
    chmod(dir.path(), 0o1777);
    let error = load_dir(dir.path()).expect_err("refused");
    assert!(error.to_string().contains("(mode 1777)"), "{error}");
}

#[test]
fn a_library_owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_probe(dir.path(), "probe");
    chown(&library, Some(OTHER_UID), None).expect("chown (the tests run as root)");
    let error = Plugin::load(&library).expect_err("refused");
    assert!(
        matches!(
            &error,
            LoadError::Untrusted {
                reason: TrustError::Owner {
                    kind: PathKind::File,
                    owner: OTHER_UID,
                    ..
                },
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{0}: refused: file {0} is owned by uid {OTHER_UID}; only root or the service's \
             user (uid {1}) may own it",
            library.display(),
            euid()
        )
    );
}

#[test]
fn a_plugin_directory_owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_probe(dir.path(), "probe");
    chown(dir.path(), Some(OTHER_UID), None).expect("chown (the tests run as root)");
    let error = library_files(dir.path()).expect_err("refused");
    assert!(
        error.to_string().starts_with(&format!(
            "{0}: refused: directory {0} is owned by uid {OTHER_UID}",
            dir.path().display()
        )),
        "{error}"
    );
    let error = Plugin::load(&library).expect_err("refused");
    assert!(
        matches!(
            &error,
            LoadError::Untrusted {
                reason: TrustError::Owner {
                    kind: PathKind::Directory,
                    ..
                },
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn one_untrusted_library_does_not_stop_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    build_probe(dir.path(), "a_good");
    let bad = build_probe(dir.path(), "b_writable");
    chmod(&bad, 0o646);
    let files = library_files(dir.path()).expect("the directory is trusted");
    assert_eq!(files.len(), 2, "listed, refused when loaded");
    let (plugins, errors) = load_dir(dir.path()).expect("the directory is trusted");
    assert_eq!(plugins.len(), 1);
    assert_eq!(plugins[0].info().name, "probe");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .starts_with(&format!("{}: refused: file", bad.display())),
        "{}",
        errors[0]
    );
    assert!(
        errors[0]
            .to_string()
            .contains("writable by others (mode 0646)")
    );
}

#[test]
fn a_link_into_a_world_writable_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let target = build_probe(elsewhere.path(), "probe");
    chmod(elsewhere.path(), 0o777);
    let link = dir.path().join("libprobe.so");
    symlink(&target, &link).expect("symlink");
    let error = Plugin::load(&link).expect_err("refused");
    let real_dir = fs::canonicalize(elsewhere.path()).expect("canonical");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: refused: directory {} is writable by its group and others (mode 0777); \
             only its owner may write to it",
            link.display(),
            real_dir.display()
        )
    );
    chmod(elsewhere.path(), 0o755);
    Plugin::load(&link).expect("trusted once the target's directory is");
}

#[test]
fn private_copies_are_owner_only_and_loadable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_probe(dir.path(), "probe");
    let cache = dir.path().join("data").join("plugin-cache");
    let plugin = Plugin::load_copy(&library, &cache).expect("loads from a 0600 copy");
    assert_eq!(plugin.info().name, "probe");
    assert_eq!(mode(&cache), 0o700);
    let copy = plugin.loaded_from();
    assert!(copy.starts_with(&cache), "{}", copy.display());
    assert_eq!(mode(copy), 0o600);
    assert_eq!(sha256(copy), plugin.sha256());
    assert_eq!(sha256(&library), plugin.sha256());
    // Nothing else is left in the cache (no partial files).
    assert_eq!(fs::read_dir(&cache).expect("read").count(), 1);
}

#[test]
fn an_existing_cache_directory_is_made_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_probe(dir.path(), "probe");
    let cache = dir.path().join("plugin-cache");
    fs::create_dir(&cache).expect("mkdir");
    chmod(&cache, 0o777);
    Plugin::load_copy(&library, &cache).expect("loads");
    assert_eq!(mode(&cache), 0o700);
}

#[test]
fn a_cache_directory_owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_probe(dir.path(), "probe");
    let cache = dir.path().join("plugin-cache");
    fs::create_dir(&cache).expect("mkdir");
    chmod(&cache, 0o700);
    chown(&cache, Some(OTHER_UID), None).expect("chown (the tests run as root)");
    let error = Plugin::load_copy(&library, &cache).expect_err("refused");
    assert!(
        error.to_string().starts_with(&format!(
            "{}: refused: directory {} is owned by uid {OTHER_UID}",
            library.display(),
            cache.display()
        )),
        "{error}"
    );
    assert_eq!(
        fs::read_dir(&cache).expect("read").count(),
        0,
        "no copy written"
    );
}

#[test]
fn a_tampered_copy_is_written_again_before_loading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_probe(dir.path(), "probe");
    let source_sha = sha256(&library);
    let cache = dir.path().join("plugin-cache");
    // The copy a previous run would have made, with other content (same name: it is derived
    // from the source's hash), readable by all and owned by someone else.
    fs::create_dir(&cache).expect("mkdir");
    let copy = cache.join(format!("libprobe-{}.so", &source_sha[..16]));
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).expect("mkdir");
    let other = build_probe(&elsewhere, "other");
    fs::copy(&other, &copy).expect("plant");
    fs::OpenOptions::new()
        .append(true)
        .open(&copy)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"tampered"))
        .expect("tamper");
    chmod(&copy, 0o644);
    chown(&copy, Some(OTHER_UID), None).expect("chown (the tests run as root)");
    assert_ne!(sha256(&copy), source_sha);

    let plugin = Plugin::load_copy(&library, &cache).expect("loads");
    assert_eq!(plugin.loaded_from(), copy);
    assert_eq!(sha256(&copy), source_sha, "the copy was written again");
    assert_eq!(plugin.sha256(), source_sha);
    let meta = fs::metadata(&copy).expect("metadata");
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), euid());
}

#[test]
fn a_matching_copy_is_reused_and_made_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_probe(dir.path(), "probe");
    let source_sha = sha256(&library);
    let cache = dir.path().join("plugin-cache");
    fs::create_dir(&cache).expect("mkdir");
    chmod(&cache, 0o700);
    let copy = cache.join(format!("libprobe-{}.so", &source_sha[..16]));
    fs::copy(&library, &copy).expect("copy");
    chmod(&copy, 0o644);
    let inode = fs::metadata(&copy).expect("metadata").ino();

    let plugin = Plugin::load_copy(&library, &cache).expect("loads");
    assert_eq!(plugin.loaded_from(), copy);
    let meta = fs::metadata(&copy).expect("metadata");
    assert_eq!(meta.ino(), inode, "reused, not written again");
    assert_eq!(meta.mode() & 0o7777, 0o600);
}
