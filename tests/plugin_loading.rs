//! A bad library in the plugin directory is refused with a clear error; the service keeps
//! running with the others.

mod common;

use common::{Server, plugin_dir};

#[tokio::test]
async fn bad_libraries_are_refused_and_the_others_serve() {
    let plugins = tempfile::tempdir().expect("tempdir");
    let arcadia = tributary_plugin_host::library_file_name("tributary_adapter_arcadia");
    std::fs::copy(plugin_dir().join(&arcadia), plugins.path().join(&arcadia)).expect("copy");
    std::fs::write(plugins.path().join("libgarbage.so"), b"not a library").expect("write");
    let c_file = plugins.path().join("future.c");
    std::fs::write(
        &c_file,
        "unsigned int tributary_abi_version(void) { return 2; }\n\
         const void *tributary_adapter_v2(void) { return 0; }\n",
    )
    .expect("write");
    let future = plugins.path().join("libfuture.so");
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&future)
        .arg(&c_file)
        .status()
        .expect("cc");
    assert!(status.success());

    let server = Server::start_with_plugins("", plugins.path());
    let seed = std::fs::read(
        common::repo().join("plugins/arcadia/fixtures/seed-statement-new-data-available.raw.json"),
    )
    .expect("seed");
    let (status, body) = server.post("arcadia", &seed, &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server.post("finicity", b"{}", &[]).await;
    assert_eq!(status, 404, "finicity was not in this plugin directory");

    let logs = server.logs();
    assert!(
        logs.contains(&format!(
            "{}: built for plugin ABI 2, this host speaks ABI 1",
            future.display()
        )),
        "{logs}"
    );
    let garbage = plugins.path().join("libgarbage.so");
    assert!(
        logs.contains(&format!("{}: not a loadable library", garbage.display())),
        "{logs}"
    );
}
