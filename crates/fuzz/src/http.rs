//! The HTTP ingest path in process: raw bytes on a connection -> hyper's HTTP/1 parser with the
//! service's limits -> the webhook router -> the bundled adapters (the real `.so` libraries,
//! loaded by the plugin host) -> the embedded event log. It panics (a finding) when:
//! - the service panics, or a connection neither answers nor closes within 10 s;
//! - an answer is a server error (the bundled adapters must never fail: a 500/503 makes a
//!   provider retry forever);
//! - an answer is not one the README documents, or a 200 does not say what it stored;
//! - anything is stored for the source whose verification is not configured (fail closed);
//! - the same bytes sent again store anything (a provider's retry adds nothing).
//!
//! Sources: `arcadia`, `finicity` and `klavi` with verification switched off (random bytes
//! cannot sign; this target explores everything after verification), and `locked`, an Arcadia
//! instance with no verification configured.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tributary::app::App;
use tributary::config::Config;
use tributary::server::http::{Limits, http1, with_deadline};

/// The service under fuzz, built once per process.
struct Harness {
    runtime: Runtime,
    app: App,
    router: axum::Router,
    limits: Limits,
    /// Keeps the data directory alive.
    _data: tempfile::TempDir,
}

/// Where the bundled plugin libraries are: `TRIBUTARY_FUZZ_PLUGIN_DIR`, else the workspace's
/// debug build (`cargo build --workspace` puts them there).
fn plugin_dir() -> PathBuf {
    std::env::var_os("TRIBUTARY_FUZZ_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug"))
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let data = tempfile::tempdir().expect("temporary data directory");
        let plugins = plugin_dir();
        let config = format!(
            r#"
            [http]
            rate_limit_per_second = 0
            failed_verifications_per_second = 0
            [log]
            data_dir = "{data}"
            durable = false
            [plugins]
            dir = "{plugins}"
            hot_reload = false
            [sources.arcadia]
            adapter = "arcadia"
            config = {{ verification = {{ disabled = true }} }}
            [sources.finicity]
            adapter = "finicity"
            config = {{ verification = {{ disabled = true }} }}
            [sources.klavi]
            adapter = "klavi"
            config = {{ verification = {{ disabled = true }} }}
            [sources.locked]
            adapter = "arcadia"
            "#,
            data = data.path().display(),
            plugins = plugins.display(),
        );
        let config: Config = toml::from_str(&config).expect("fuzz config");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        // Never sent: the harness's service runs until the process ends.
        let (_, shutdown) = watch::channel(false);
        let app = runtime
            .block_on(tributary::server::open_app(&config, shutdown))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the service (build the plugins first: cargo build \
                     --workspace, or set TRIBUTARY_FUZZ_PLUGIN_DIR; plugin dir {}): {e:#}",
                    plugins.display()
                )
            });
        let limits = Limits::from(&config.http);
        let router = with_deadline(
            tributary::ingest::http::router(app.clone(), config.http.body_limit),
            &limits,
        );
        Harness {
            runtime,
            app,
            router,
            limits,
            _data: data,
        }
    })
}

/// Fuzz target: `data` is what a client writes on one HTTP/1.1 connection (any number of
/// pipelined requests), sent twice.
pub fn fuzz_http_ingest(data: &[u8]) {
    let harness = harness();
    harness.runtime.block_on(async {
        let before = *harness.app.log.last_sequence().borrow();
        let answers = exchange(harness, data).await;
        let stored = *harness.app.log.last_sequence().borrow();
        let mut accepted = 0;
        for (status, body) in &answers {
            accepted += check_answer(*status, body);
        }
        assert_eq!(
            accepted,
            stored - before,
            "the 200 answers do not add up to what was stored"
        );
        let events = harness
            .app
            .log
            .read_after(
                before,
                usize::try_from(stored - before).unwrap_or(usize::MAX),
            )
            .await
            .expect("read back what was stored");
        for event in &events {
            assert_ne!(
                event.source, "locked",
                "stored an event for a source whose verification is not configured"
            );
        }
        exchange(harness, data).await;
        assert_eq!(
            *harness.app.log.last_sequence().borrow(),
            stored,
            "the same bytes sent again stored more events"
        );
    });
}

/// Writes `data` on a fresh connection served as the service serves one, closes the write
/// side, and returns the answers (status, body) read until the service closes.
async fn exchange(harness: &Harness, data: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let mut http1 = http1(&harness.limits);
    // Let a client that half-closes after its requests get its answers.
    http1.half_close(true);
    let connection = http1.serve_connection(
        TokioIo::new(server),
        TowerToHyperService::new(harness.router.clone()),
    );
    let (mut read, mut write) = tokio::io::split(client);
    let send = async {
        // The service may close early (a bad request): later bytes have nowhere to go.
        let _ = write.write_all(data).await;
        let _ = write.shutdown().await;
    };
    let mut out = Vec::new();
    let receive = read.read_to_end(&mut out);
    let run = async {
        let (_, _, received) = tokio::join!(connection, send, receive);
        received
    };
    match tokio::time::timeout(Duration::from_secs(10), run).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("reading the answers failed: {e}"),
        Err(_) => panic!("the connection neither answered nor closed within 10 s"),
    }
    parse_answers(&out)
}

/// Splits what the service wrote into answers. Every answer of the service carries a
/// `content-length`.
fn parse_answers(mut out: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut answers = Vec::new();
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(out) {
            Ok(httparse::Status::Complete(head)) => head,
            other => panic!("the service wrote an unparseable answer: {other:?}"),
        };
        let status = response.code.expect("a complete answer has a status");
        let length = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok());
        let length = match (status, length) {
            (100..=199, _) => 0,
            (_, Some(length)) => length,
            (_, None) => panic!("answer {status} has no content-length"),
        };
        let body = out
            .get(head..head + length)
            .unwrap_or_else(|| panic!("answer {status} is shorter than its content-length"));
        answers.push((status, body.to_vec()));
        out = &out[head + length..];
    }
    answers
}

/// Checks one answer; returns how many events it says were stored.
fn check_answer(status: u16, body: &[u8]) -> u64 {
    match status {
        200 => {
            let answer: serde_json::Value =
                serde_json::from_slice(body).expect("a 200 answer is JSON");
            let count = |key: &str| {
                answer
                    .get(key)
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or_else(|| panic!("a 200 answer lacks `{key}`: {answer}"))
            };
            let accepted = count("accepted");
            let sequences = answer
                .get("sequences")
                .and_then(serde_json::Value::as_array)
                .map_or(0, Vec::len);
            assert_eq!(
                accepted, sequences as u64,
                "accepted != sequences: {answer}"
            );
            for key in ["duplicates", "dead_lettered", "ignored"] {
                count(key);
            }
            accepted
        }
        // Informational (100-continue), and every client error the README documents or
        // hyper's parser answers (400, 404 unknown source, 405 method, 408 slow request, 413,
        // 414/431 oversize heads, 415), 505 for an HTTP version it does not serve.
        100..=199 | 400 | 401 | 404 | 405 | 408 | 413 | 414 | 415 | 431 | 505 => 0,
        status => panic!(
            "answer {status} (a server error or undocumented status): {}",
            String::from_utf8_lossy(body)
        ),
    }
}
