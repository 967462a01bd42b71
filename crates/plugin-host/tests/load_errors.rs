//! The host refuses libraries it cannot safely call, naming the file and the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use tributary_plugin_host::{LoadError, Plugin, load_dir};

/// Builds a shared library from C source with the system compiler.
fn build_c_library(dir: &Path, name: &str, source: &str) -> PathBuf {
    let c_file = dir.join(format!("{name}.c"));
    std::fs::write(&c_file, source).expect("write C source");
    let library = dir.join(format!("lib{name}.so"));
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&c_file)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed for {name}");
    library
}

#[test]
fn a_library_for_another_abi_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_c_library(
        dir.path(),
        "future_adapter",
        "unsigned int tributary_abi_version(void) { return 2; }\n\
         const void *tributary_adapter_v2(void) { return 0; }\n",
    );
    let error = Plugin::load(&library).expect_err("refused");
    assert!(
        matches!(
            error,
            LoadError::AbiMismatch {
                found: 2,
                expected: 1,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{}: built for plugin ABI 2, this host speaks ABI 1",
            library.display()
        )
    );
}

#[test]
fn a_v1_table_with_a_wrong_version_field_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_c_library(
        dir.path(),
        "lying_adapter",
        "struct table { unsigned int abi_version; unsigned int size; };\n\
         static struct table t = { 7, 8 };\n\
         const struct table *tributary_adapter_v1(void) { return &t; }\n",
    );
    let error = Plugin::load(&library).expect_err("refused");
    assert!(
        matches!(error, LoadError::AbiMismatch { found: 7, .. }),
        "{error}"
    );
}

#[test]
fn a_library_without_the_entry_symbol_is_not_a_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_c_library(
        dir.path(),
        "plain",
        "int add(int a, int b) { return a + b; }\n",
    );
    let error = Plugin::load(&library).expect_err("refused");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: not a Tributary plugin (no `tributary_adapter_v1` symbol)",
            library.display()
        )
    );
}

#[test]
fn a_file_that_is_not_a_library_is_refused_and_others_still_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bogus = dir.path().join("libbogus.so");
    std::fs::write(&bogus, b"this is not an ELF file").expect("write");
    build_c_library(dir.path(), "plain", "int nothing(void) { return 0; }\n");
    let (plugins, errors) = load_dir(dir.path()).expect("dir readable");
    assert!(plugins.is_empty());
    assert_eq!(errors.len(), 2);
    assert!(
        matches!(&errors[0], LoadError::Open { file, .. } if *file == bogus),
        "{}",
        errors[0]
    );
    assert!(
        errors[0]
            .to_string()
            .starts_with(&format!("{}: not a loadable library", bogus.display()))
    );
    assert!(
        matches!(&errors[1], LoadError::NotAPlugin { .. }),
        "{}",
        errors[1]
    );
}
