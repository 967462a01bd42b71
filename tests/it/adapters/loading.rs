//! A bad library in the plugin directory is refused with a clear error; the service keeps
//! running with the others.

use crate::support::adapters::list;
use crate::support::{ARCADIA_AUTH, Server, arcadia_seed, arcadia_source, plugin_dir};

/// A plugin directory of the test's own holding only the built Arcadia plugin.
fn only_arcadia() -> tempfile::TempDir {
    let plugins = tempfile::tempdir().expect("tempdir");
    let arcadia = tributary_plugin_host::library_file_name("tributary_adapter_arcadia");
    std::fs::copy(plugin_dir().join(&arcadia), plugins.path().join(&arcadia)).expect("copy");
    plugins
}

#[tokio::test]
async fn bad_libraries_are_refused_and_the_others_serve() {
    let plugins = only_arcadia();
    std::fs::write(plugins.path().join("libgarbage.so"), b"not a library").expect("write");
    // A library built for the previous plugin ABI.
    let old = tributary_test_kit::c_library(
        plugins.path(),
        "old",
        "unsigned int tributary_abi_version(void) { return 1; }\n\
         const void *tributary_adapter_v1(void) { return 0; }\n",
    );

    let server = Server::start_with_plugins(&arcadia_source(""), plugins.path());
    let (status, body) = server.post("arcadia", &arcadia_seed(), &ARCADIA_AUTH).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server.post("finicity", b"{}", &[]).await;
    assert_eq!(status, 404, "finicity was not in this plugin directory");
    // Only the Arcadia library loaded from this directory.
    let loaded: Vec<String> = list(server.grpc)
        .await
        .adapters
        .iter()
        .filter_map(|a| Some(a.info.as_ref()?.name.clone()))
        .collect();
    assert_eq!(loaded, ["arcadia"]);

    let logs = server.logs();
    assert!(
        logs.contains(&format!(
            "{}: built for plugin ABI 1, this host speaks ABI 2: rebuild it against \
             tributary-plugin-sdk",
            old.display()
        )),
        "{logs}"
    );
    let garbage = plugins.path().join("libgarbage.so");
    assert!(
        logs.contains(&format!("{}: not a loadable library", garbage.display())),
        "{logs}"
    );
}

#[tokio::test]
async fn reload_reports_a_broken_library_and_the_previous_version_keeps_serving() {
    let plugins = only_arcadia();
    let server = Server::start_with_plugins(&arcadia_source(""), plugins.path());
    let mut adapters = tributary::proto::adapters_client::AdaptersClient::connect(format!(
        "http://{}",
        server.grpc
    ))
    .await
    .expect("connect");

    // Nothing changed: nothing to do.
    let report = adapters
        .reload_adapters(tributary_model::v1::ReloadAdaptersRequest {})
        .await
        .expect("reload")
        .into_inner();
    assert!(report.loaded.is_empty() && report.failed.is_empty() && report.swapped.is_empty());

    let broken = plugins.path().join("libbroken.so");
    std::fs::write(&broken, b"not a library").expect("write");
    let report = adapters
        .reload_adapters(tributary_model::v1::ReloadAdaptersRequest {})
        .await
        .expect("reload")
        .into_inner();
    let list = adapters
        .list_adapters(tributary_model::v1::ListAdaptersRequest {})
        .await
        .expect("list")
        .into_inner();
    // The file watcher may have reported it first; either way it is listed as a failure.
    let mentions = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.contains(&broken.display().to_string()))
    };
    assert!(
        mentions(&report.failed) || mentions(&list.load_failures),
        "{report:?} {list:?}"
    );
    assert!(mentions(&list.load_failures), "{:?}", list.load_failures);
    let arcadia = list
        .adapters
        .iter()
        .find(|a| a.info.as_ref().is_some_and(|i| i.name == "arcadia"))
        .expect("arcadia still loaded");
    assert_eq!(arcadia.panics, 0);
    let (status, _) = server.post("arcadia", &arcadia_seed(), &ARCADIA_AUTH).await;
    assert_eq!(status, 200);
}
