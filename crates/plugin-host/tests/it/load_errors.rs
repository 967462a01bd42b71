//! The host refuses libraries it cannot safely call, naming the file and the reason.

use crate::support::{PROBE_PLUGIN, build_c_library};
use tributary_plugin_host::{LoadError, Plugin, load_dir};

#[test]
fn a_library_for_an_older_abi_version_is_refused_with_how_to_rebuild_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_c_library(
        dir.path(),
        "v1_adapter",
        "unsigned int tributary_abi_version(void) { return 1; }\n\
         const void *tributary_adapter_v1(void) { return 0; }\n",
    );
    let error = Plugin::load(&library).expect_err("refused");
    assert!(
        matches!(
            error,
            LoadError::AbiMismatch {
                found: 1,
                expected: 2,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{}: built for plugin ABI 1, this host speaks ABI 2: rebuild it against \
             tributary-plugin-sdk {} (or a C adapter against this host's tributary_plugin.h)",
            library.display(),
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn a_library_for_a_newer_abi_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_c_library(
        dir.path(),
        "future_adapter",
        "unsigned int tributary_abi_version(void) { return 3; }\n\
         const void *tributary_adapter_v3(void) { return 0; }\n",
    );
    let error = Plugin::load(&library).expect_err("refused");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: built for plugin ABI 3, this host speaks ABI 2: run it on a host that speaks \
             its ABI",
            library.display()
        )
    );
}

#[test]
fn a_v2_table_with_a_wrong_version_field_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_c_library(
        dir.path(),
        "lying_adapter",
        "struct table { unsigned int abi_version; unsigned int size; };\n\
         static struct table t = { 7, 8 };\n\
         const struct table *tributary_adapter_v2(void) { return &t; }\n",
    );
    let error = Plugin::load(&library).expect_err("refused");
    assert!(
        matches!(error, LoadError::AbiMismatch { found: 7, .. }),
        "{error}"
    );
}

#[test]
fn a_v2_table_shorter_than_declared_by_the_abi_is_refused_before_it_is_read() {
    // Only the 8-byte header exists: the host must not read (or reference) a full v2 table.
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_c_library(
        dir.path(),
        "short_adapter",
        "struct table { unsigned int abi_version; unsigned int size; };\n\
         static struct table t = { 2, 8 };\n\
         const struct table *tributary_adapter_v2(void) { return &t; }\n",
    );
    let error = Plugin::load(&library).expect_err("refused");
    // The smallest table accepted is the first v2 one (up to `destroy`): 8 + 5 pointers.
    let first = 8 + 5 * size_of::<usize>();
    assert_eq!(tributary_plugin_abi::TABLE_V2_MIN_SIZE as usize, first);
    assert!(
        matches!(error, LoadError::TableTooSmall { found: 8, expected, .. } if expected as usize == first),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{}: function table is 8 bytes, expected at least {first}",
            library.display()
        )
    );
}

#[test]
fn a_v2_table_with_a_null_function_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = PROBE_PLUGIN
        .replace(".destroy = destroy,", ".destroy = 0,")
        .replace(
            "static void destroy(",
            "__attribute__((unused)) static void destroy(",
        );
    let library = build_c_library(dir.path(), "no_destroy", &source);
    let error = Plugin::load(&library).expect_err("refused");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: function table has no `destroy` function (null pointer)",
            library.display()
        )
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
            "{}: not a Tributary plugin (no `tributary_adapter_v2` symbol)",
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
