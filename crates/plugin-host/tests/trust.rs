//! The host loads only libraries that no account but root or its own could have written.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::path::Path;

use common::build_probe;
use tributary_plugin_host::{LoadError, PathKind, Plugin, TrustError, library_files, load_dir};

/// A user that owns nothing here (`nobody`).
const OTHER_UID: u32 = 65534;

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
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
