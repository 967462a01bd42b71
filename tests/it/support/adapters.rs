//! Helpers for the adapter tests: build the C example adapter, find the panicking test plugin,
//! run the CLI, call the Adapters gRPC service.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tributary::proto::adapters_client::AdaptersClient;
use tributary_model::v1::{
    Header, ListAdaptersRequest, ListAdaptersResponse, NormalizeRequest, NormalizeResponse,
};

use super::{plugin_dir, repo};

/// The C example adapter's directory.
pub fn c_example() -> PathBuf {
    repo().join("examples/c-adapter")
}

/// Builds the C example adapter (Quokka Pay) with gcc/cc as `out`, reporting `version`.
/// Builds under a temporary name and renames, so a watching server never sees a partial file.
pub fn build_quokka(out: &Path, version: &str) {
    build_quokka_with(out, version, &[]);
}

/// [`build_quokka`] with extra preprocessor `defines` (e.g. `QUOKKA_MAPS_EXPIRED`).
pub fn build_quokka_with(out: &Path, version: &str, defines: &[&str]) {
    let partial = out.with_extension("partial");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror"])
        .arg(format!("-DQUOKKA_VERSION=\"{version}\""))
        .args(defines.iter().map(|name| format!("-D{name}")))
        .arg("-I")
        .arg(repo().join("crates/plugin-abi/include"))
        .arg("-o")
        .arg(&partial)
        .arg(c_example().join("quokka.c"))
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed");
    std::fs::rename(&partial, out).expect("rename into place");
}

/// The test-only plugin that panics on `PANIC` (an example of the SDK crate), built if needed
/// (`cargo test` without a target filter has built it; a build takes a heavy test's turn).
pub async fn panicking_library() -> PathBuf {
    let file = tributary_plugin_host::library_file_name("panicking");
    let built = plugin_dir().join("examples").join(&file);
    if !built.exists() {
        let _turn = super::heavy_turn().await;
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "tributary-plugin-sdk",
                "--example",
                "panicking",
            ])
            .current_dir(repo())
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the panicking example failed");
    }
    built
}

/// Runs the `tributary` binary with `args`.
pub fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run tributary")
}

/// Runs the `tributary` binary with `args`, asserts it succeeded (showing its output when not)
/// and returns its standard output.
pub fn cli_success(args: &[&str]) -> String {
    let out = cli(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A gRPC client of the Adapters service.
pub async fn adapters(grpc: std::net::SocketAddr) -> AdaptersClient<tonic::transport::Channel> {
    AdaptersClient::connect(format!("http://{grpc}"))
        .await
        .expect("gRPC connect")
}

/// Dry-runs `body` through `source` with one header.
pub async fn normalize(
    grpc: std::net::SocketAddr,
    source: &str,
    body: &[u8],
    header: Option<(&str, &str)>,
) -> NormalizeResponse {
    let headers = header
        .map(|(name, value)| {
            vec![Header {
                name: name.into(),
                value: value.into(),
            }]
        })
        .unwrap_or_default();
    adapters(grpc)
        .await
        .normalize(NormalizeRequest {
            source: source.into(),
            body: body.to_vec(),
            headers,
            ..Default::default()
        })
        .await
        .expect("normalize")
        .into_inner()
}

/// The loaded adapters and sources.
pub async fn list(grpc: std::net::SocketAddr) -> ListAdaptersResponse {
    adapters(grpc)
        .await
        .list_adapters(ListAdaptersRequest {})
        .await
        .expect("list adapters")
        .into_inner()
}

/// The adapter version that produced the first event of a dry run.
pub fn version_of(response: &NormalizeResponse) -> String {
    use tributary_model::v1::adapter_result::Outcome;
    match response.result.as_ref().and_then(|r| r.outcome.as_ref()) {
        Some(Outcome::Normalized(n)) => n
            .events
            .first()
            .and_then(|e| e.provenance.as_ref())
            .map(|p| p.adapter_version.clone())
            .unwrap_or_default(),
        other => panic!("not normalized: {other:?}"),
    }
}

/// Waits (at most 20 s) until the server at `grpc` serves `adapter` at `version`: a build
/// dropped into the plugin directory is hot-reloaded.
pub async fn wait_for_version(grpc: std::net::SocketAddr, adapter: &str, version: &str) {
    let loaded = || async {
        list(grpc)
            .await
            .adapters
            .iter()
            .filter_map(|a| a.info.as_ref())
            .find(|i| i.name == adapter)
            .map(|i| i.version.clone())
            .unwrap_or_default()
    };
    let mut waited = std::time::Duration::ZERO;
    while loaded().await != version {
        assert!(
            waited < std::time::Duration::from_secs(20),
            "the new build was not loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += std::time::Duration::from_millis(100);
    }
}
