//! Production safety through the real binary: scoped credentials on every RPC, TLS and mTLS,
//! fail-closed adapters, limits on what clients control, private data files, and refusals at
//! start-up (exposed listeners, writable plugin directories).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tributary::proto::adapters_client::AdaptersClient;
use tributary::proto::admin_client::AdminClient;
use tributary::proto::event_stream_client::EventStreamClient;
use tributary_model::v1::{
    AckRequest, DeleteConsumerRequest, Filter, ListAdaptersRequest, ListConsumersRequest,
    ListDeadLettersRequest, NormalizeRequest, RedriveDeadLettersRequest, ReloadAdaptersRequest,
    ResetConsumerRequest, SubscribeRequest, reset_consumer_request::Position,
};

use crate::support::{Server, arcadia_webhook, fixtures, plugin_dir, serve_command};

const READER_TOKEN: &str = "billing-team-token-0001";
const OTHER_TOKEN: &str = "lending-team-token-0002";
const ADMIN_TOKEN: &str = "operators-token-0003";

/// Arcadia with verification switched off explicitly: these tests are about other checks.
const OPEN_ARCADIA: &str = "[sources.arcadia]\nadapter = \"arcadia\"\n\
                            config = { verification = { disabled = true } }\n";

fn credentials() -> String {
    format!(
        r#"
[[grpc.credentials]]
name = "billing"
token = "{READER_TOKEN}"
consumers = ["billing-*"]
sources = ["arcadia"]
types = ["statement.*"]

[[grpc.credentials]]
name = "lending"
token = "sha256:{}"
consumers = ["lending-*"]

[[grpc.credentials]]
name = "operators"
token_env = "TEST_OPERATOR_TOKEN"
admin = true
"#,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(OTHER_TOKEN))
    )
}

fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("header");
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn arcadia_filter() -> Filter {
    Filter {
        sources: vec!["arcadia".into()],
        types: vec!["statement.*".into()],
    }
}

/// The code of one call made with `token`.
macro_rules! code_of {
    ($client:expr, $method:ident, $message:expr, $token:expr) => {
        match $client.clone().$method(with_token($message, $token)).await {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        }
    };
}

#[tokio::test]
async fn each_rpc_needs_the_right_scope() {
    let config = format!("{OPEN_ARCADIA}{}", credentials());
    let server = Server::start_with_env(&config, &[("TEST_OPERATOR_TOKEN", ADMIN_TOKEN)]);
    let channel = server.channel().await;
    let stream = EventStreamClient::new(channel.clone());
    let admin = AdminClient::new(channel.clone());
    let adapters = AdaptersClient::new(channel);

    let subscribe = |filter: Filter, consumer: &str| SubscribeRequest {
        filter: Some(filter),
        consumer: consumer.into(),
        ..SubscribeRequest::default()
    };
    let reset = || ResetConsumerRequest {
        name: "billing-1".into(),
        position: Some(Position::AfterSequence(0)),
    };
    let normalize = || NormalizeRequest {
        source: "arcadia".into(),
        body: arcadia_webhook("whk_dry"),
        ..NormalizeRequest::default()
    };

    // (call, no token, billing, lending, operators)
    use Code::{Ok as Yes, PermissionDenied as Denied, Unauthenticated as NoAuth};
    let matrix: Vec<(&str, [Code; 4])> = vec![
        (
            "Subscribe in scope",
            [
                code_of!(stream, subscribe, subscribe(arcadia_filter(), ""), None),
                code_of!(
                    stream,
                    subscribe,
                    subscribe(arcadia_filter(), ""),
                    Some(READER_TOKEN)
                ),
                code_of!(
                    stream,
                    subscribe,
                    subscribe(arcadia_filter(), ""),
                    Some(OTHER_TOKEN)
                ),
                code_of!(
                    stream,
                    subscribe,
                    subscribe(arcadia_filter(), ""),
                    Some(ADMIN_TOKEN)
                ),
            ],
        ),
        (
            "Subscribe to everything",
            [
                code_of!(stream, subscribe, subscribe(Filter::default(), ""), None),
                code_of!(
                    stream,
                    subscribe,
                    subscribe(Filter::default(), ""),
                    Some(READER_TOKEN)
                ),
                code_of!(
                    stream,
                    subscribe,
                    subscribe(Filter::default(), ""),
                    Some(OTHER_TOKEN)
                ),
                code_of!(
                    stream,
                    subscribe,
                    subscribe(Filter::default(), ""),
                    Some(ADMIN_TOKEN)
                ),
            ],
        ),
        (
            "Subscribe as billing-1",
            [
                code_of!(
                    stream,
                    subscribe,
                    subscribe(arcadia_filter(), "billing-1"),
                    None
                ),
                code_of!(
                    stream,
                    subscribe,
                    subscribe(arcadia_filter(), "billing-1"),
                    Some(READER_TOKEN)
                ),
                code_of!(
                    stream,
                    subscribe,
                    subscribe(arcadia_filter(), "billing-1"),
                    Some(OTHER_TOKEN)
                ),
                code_of!(
                    stream,
                    subscribe,
                    subscribe(arcadia_filter(), "billing-1"),
                    Some(ADMIN_TOKEN)
                ),
            ],
        ),
        (
            "Ack billing-1",
            [
                code_of!(stream, ack, ack_request("billing-1"), None),
                code_of!(stream, ack, ack_request("billing-1"), Some(READER_TOKEN)),
                code_of!(stream, ack, ack_request("billing-1"), Some(OTHER_TOKEN)),
                code_of!(stream, ack, ack_request("billing-1"), Some(ADMIN_TOKEN)),
            ],
        ),
        (
            "ListConsumers",
            [
                code_of!(admin, list_consumers, ListConsumersRequest::default(), None),
                code_of!(
                    admin,
                    list_consumers,
                    ListConsumersRequest::default(),
                    Some(READER_TOKEN)
                ),
                code_of!(
                    admin,
                    list_consumers,
                    ListConsumersRequest::default(),
                    Some(OTHER_TOKEN)
                ),
                code_of!(
                    admin,
                    list_consumers,
                    ListConsumersRequest::default(),
                    Some(ADMIN_TOKEN)
                ),
            ],
        ),
        (
            "ResetConsumer",
            [
                code_of!(admin, reset_consumer, reset(), None),
                code_of!(admin, reset_consumer, reset(), Some(READER_TOKEN)),
                code_of!(admin, reset_consumer, reset(), Some(OTHER_TOKEN)),
                code_of!(admin, reset_consumer, reset(), Some(ADMIN_TOKEN)),
            ],
        ),
        (
            "ListDeadLetters",
            [
                code_of!(
                    admin,
                    list_dead_letters,
                    ListDeadLettersRequest::default(),
                    None
                ),
                code_of!(
                    admin,
                    list_dead_letters,
                    ListDeadLettersRequest::default(),
                    Some(READER_TOKEN)
                ),
                code_of!(
                    admin,
                    list_dead_letters,
                    ListDeadLettersRequest::default(),
                    Some(OTHER_TOKEN)
                ),
                code_of!(
                    admin,
                    list_dead_letters,
                    ListDeadLettersRequest::default(),
                    Some(ADMIN_TOKEN)
                ),
            ],
        ),
        (
            "RedriveDeadLetters",
            [
                code_of!(
                    admin,
                    redrive_dead_letters,
                    RedriveDeadLettersRequest::default(),
                    None
                ),
                code_of!(
                    admin,
                    redrive_dead_letters,
                    RedriveDeadLettersRequest::default(),
                    Some(READER_TOKEN)
                ),
                code_of!(
                    admin,
                    redrive_dead_letters,
                    RedriveDeadLettersRequest::default(),
                    Some(OTHER_TOKEN)
                ),
                code_of!(
                    admin,
                    redrive_dead_letters,
                    RedriveDeadLettersRequest::default(),
                    Some(ADMIN_TOKEN)
                ),
            ],
        ),
        (
            "ListAdapters",
            [
                code_of!(
                    adapters,
                    list_adapters,
                    ListAdaptersRequest::default(),
                    None
                ),
                code_of!(
                    adapters,
                    list_adapters,
                    ListAdaptersRequest::default(),
                    Some(READER_TOKEN)
                ),
                code_of!(
                    adapters,
                    list_adapters,
                    ListAdaptersRequest::default(),
                    Some(OTHER_TOKEN)
                ),
                code_of!(
                    adapters,
                    list_adapters,
                    ListAdaptersRequest::default(),
                    Some(ADMIN_TOKEN)
                ),
            ],
        ),
        (
            "Normalize",
            [
                code_of!(adapters, normalize, normalize(), None),
                code_of!(adapters, normalize, normalize(), Some(READER_TOKEN)),
                code_of!(adapters, normalize, normalize(), Some(OTHER_TOKEN)),
                code_of!(adapters, normalize, normalize(), Some(ADMIN_TOKEN)),
            ],
        ),
        (
            "ReloadAdapters",
            [
                code_of!(
                    adapters,
                    reload_adapters,
                    ReloadAdaptersRequest::default(),
                    None
                ),
                code_of!(
                    adapters,
                    reload_adapters,
                    ReloadAdaptersRequest::default(),
                    Some(READER_TOKEN)
                ),
                code_of!(
                    adapters,
                    reload_adapters,
                    ReloadAdaptersRequest::default(),
                    Some(OTHER_TOKEN)
                ),
                code_of!(
                    adapters,
                    reload_adapters,
                    ReloadAdaptersRequest::default(),
                    Some(ADMIN_TOKEN)
                ),
            ],
        ),
        (
            // Runs last: it deletes the consumer the rows above created.
            "DeleteConsumer",
            [
                code_of!(admin, delete_consumer, delete_request("billing-1"), None),
                code_of!(
                    admin,
                    delete_consumer,
                    delete_request("billing-1"),
                    Some(READER_TOKEN)
                ),
                code_of!(
                    admin,
                    delete_consumer,
                    delete_request("billing-1"),
                    Some(OTHER_TOKEN)
                ),
                code_of!(
                    admin,
                    delete_consumer,
                    delete_request("billing-1"),
                    Some(ADMIN_TOKEN)
                ),
            ],
        ),
    ];
    let expected: Vec<(&str, [Code; 4])> = vec![
        ("Subscribe in scope", [NoAuth, Yes, Yes, Yes]),
        ("Subscribe to everything", [NoAuth, Denied, Yes, Yes]),
        ("Subscribe as billing-1", [NoAuth, Yes, Denied, Yes]),
        ("Ack billing-1", [NoAuth, Yes, Denied, Yes]),
        ("ListConsumers", [NoAuth, Denied, Denied, Yes]),
        ("ResetConsumer", [NoAuth, Denied, Denied, Yes]),
        ("ListDeadLetters", [NoAuth, Denied, Denied, Yes]),
        ("RedriveDeadLetters", [NoAuth, Denied, Denied, Yes]),
        ("ListAdapters", [NoAuth, Denied, Denied, Yes]),
        ("Normalize", [NoAuth, Denied, Denied, Yes]),
        ("ReloadAdapters", [NoAuth, Denied, Denied, Yes]),
        ("DeleteConsumer", [NoAuth, Denied, Denied, Yes]),
    ];
    assert_eq!(matrix, expected);

    // A scoped reader may not widen its filter to another source or type.
    for filter in [
        Filter {
            sources: vec!["klavi".into()],
            types: vec!["statement.*".into()],
        },
        Filter {
            sources: vec!["arcadia".into()],
            types: vec!["meter.*".into()],
        },
    ] {
        let code = code_of!(stream, subscribe, subscribe(filter, ""), Some(READER_TOKEN));
        assert_eq!(code, Code::PermissionDenied);
    }

    let logs = server.logs();
    for token in [READER_TOKEN, OTHER_TOKEN, ADMIN_TOKEN] {
        assert!(!logs.contains(token), "a token reached the logs");
    }
}

fn ack_request(consumer: &str) -> AckRequest {
    AckRequest {
        consumer: consumer.into(),
        sequence: 0,
    }
}

fn delete_request(name: &str) -> DeleteConsumerRequest {
    DeleteConsumerRequest { name: name.into() }
}

#[tokio::test]
async fn empty_or_short_tokens_stop_start_up() {
    for token in ["", "short"] {
        let config = format!("[[grpc.credentials]]\nname = \"team\"\ntoken = \"{token}\"\n");
        let (ok, stderr) = start_and_wait_for_exit(&config, &[]);
        assert!(!ok, "started with token {token:?}");
        assert!(stderr.contains("grpc.credentials `team`"), "{stderr}");
    }
}

#[tokio::test]
async fn every_bundled_adapter_fails_closed_until_verification_is_configured() {
    let server = Server::start("");
    let klavi = fixtures("klavi", &["consent"]);
    let finicity = fixtures("finicity", &["added-minimal"]);
    for (source, body) in [
        ("arcadia", arcadia_webhook("whk_unsigned")),
        ("finicity", finicity[0].raw.clone()),
        ("klavi", klavi[0].raw.clone()),
    ] {
        let (status, answer) = server.post(source, &body, &[]).await;
        assert_eq!(status, 401, "{source}: {answer}");
        assert_eq!(answer["detail"], "verification failed");
    }
    let logs = server.logs();
    assert!(logs.contains("verification"), "a start-up warning says why");

    let open = Server::start(OPEN_ARCADIA);
    let (status, answer) = open
        .post("arcadia", &arcadia_webhook("whk_open"), &[])
        .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_burst_over_the_source_rate_gets_429_with_retry_after() {
    let config = format!("{OPEN_ARCADIA}[http]\nrate_limit_per_second = 1\nrate_limit_burst = 2\n");
    let server = Server::start(&config);
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..6 {
        let response = client
            .post(server.url("/webhooks/arcadia"))
            .header("content-type", "application/json")
            .body(arcadia_webhook(&format!("whk_burst_{i}")))
            .send()
            .await
            .expect("POST");
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
        }
    }
    assert_eq!(&statuses[..2], &[200, 200], "the burst is served");
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        retry_after.is_some_and(|s| (1..=2).contains(&s)),
        "{retry_after:?}"
    );
    let metrics = server.get("/metrics").await.1;
    assert!(metrics.contains("reason=\"rate_limited\""), "{metrics}");
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected() {
    let server = Server::start("[http]\nheader_timeout_seconds = 1\n");
    let mut stream = TcpStream::connect(server.http).expect("connect");
    stream
        .write_all(b"POST /webhooks/arcadia HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let started = Instant::now();
    let mut buffer = Vec::new();
    // hyper answers 408 (or just closes) once the header timeout passes; either way the
    // connection ends well before the read timeout.
    let _ = stream.read_to_end(&mut buffer);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "connection still open after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn oversize_request_heads_are_refused() {
    let server = Server::start(OPEN_ARCADIA);
    let response = reqwest::Client::new()
        .post(server.url("/webhooks/arcadia"))
        .header("content-type", "application/json")
        .header("x-padding", "a".repeat(100 * 1024))
        .body(arcadia_webhook("whk_big_head"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 431);
}

#[tokio::test]
async fn durable_consumers_are_capped_and_deleting_one_frees_a_place() {
    let server = Server::start("[grpc]\nmax_consumers = 2\n");
    let mut client = server.client().await;
    let open = |name: &str| SubscribeRequest {
        consumer: name.into(),
        ..SubscribeRequest::default()
    };
    client.subscribe(open("a")).await.expect("first");
    client.subscribe(open("b")).await.expect("second");
    let error = client.subscribe(open("c")).await.expect_err("third");
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert!(error.message().contains("tributary consumers delete"));
    client
        .subscribe(open("a"))
        .await
        .expect("an existing one resumes");

    let mut admin = AdminClient::new(server.channel().await);
    let deleted = admin
        .delete_consumer(DeleteConsumerRequest { name: "b".into() })
        .await
        .expect("delete")
        .into_inner();
    assert!(deleted.deleted);
    client.subscribe(open("c")).await.expect("room again");
}

#[tokio::test]
async fn the_data_directory_and_key_are_private() {
    let server = Server::start("");
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&server.data), 0o700);
    assert_eq!(mode(&server.data.join("installation.key")), 0o600);
    assert_eq!(mode(&server.data.join("fjall")), 0o700);
    assert_eq!(mode(&server.data.join("plugin-cache")), 0o700);
}

/// Runs `tributary serve` with `config` and extra flags; true when it became ready (then it is
/// killed), false when it exited first; and what it logged.
fn start_and_wait_for_exit(config: &str, extra: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("tributary.toml");
    std::fs::write(&config_path, config).expect("config");
    let mut command = serve_command(&dir.path().join("data"), Some(&config_path));
    if !extra.contains(&"--plugin-dir") {
        command.arg("--plugin-dir").arg(plugin_dir());
    }
    let output = command
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_ready_or_exit(output)
}

fn wait_ready_or_exit(mut child: std::process::Child) -> (bool, String) {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout");
    let ready = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("tributary ready "));
    if ready {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("wait");
    (ready, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn listening_beyond_loopback_needs_tls_and_credentials_or_insecure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |extra: &[&str]| {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args([
                "serve",
                "--http-listen",
                "0.0.0.0:0",
                "--grpc-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--plugin-dir")
            .arg(plugin_dir())
            .args(extra)
            .env_remove("TRIBUTARY_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        wait_ready_or_exit(child)
    };
    let (ready, stderr) = run(&[]);
    assert!(!ready);
    assert!(stderr.contains("refusing to start"), "{stderr}");
    assert!(stderr.contains("has no http.tls"), "{stderr}");
    let (ready, stderr) = run(&["--insecure"]);
    assert!(ready, "{stderr}");
    assert!(stderr.contains("INSECURE"), "{stderr}");
}

#[tokio::test]
async fn a_plugin_directory_others_can_write_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).expect("mkdir");
    let library = "libtributary_adapter_arcadia.so";
    std::fs::copy(plugin_dir().join(library), plugins.join(library)).expect("copy");
    std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let plugins_arg = plugins.to_str().expect("utf-8");
    let (ready, stderr) = start_and_wait_for_exit("", &["--plugin-dir", plugins_arg]);
    assert!(!ready, "started with a world-writable plugin directory");
    assert!(stderr.contains(plugins_arg), "{stderr}");
    assert!(stderr.contains("writable"), "{stderr}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, written as PEM files,
/// and the service's configuration serving HTTPS and gRPC over mTLS with them.
struct Pki {
    _dir: tempfile::TempDir,
    ca: String,
    config: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = tributary_test_kit::pki::Pki::generate("billing.internal");
    let files = pki.write_to(dir.path());
    let (cert, key, ca) = (
        files.server_cert.display(),
        files.server_key.display(),
        files.ca.display(),
    );
    let config = format!(
        "{OPEN_ARCADIA}[http.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
         [grpc.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\nclient_ca_file = \"{ca}\"\n"
    );
    Pki {
        ca: pki.ca,
        config,
        client_cert: pki.client_cert,
        client_key: pki.client_key,
        _dir: dir,
    }
}

/// POSTs over HTTPS with rustls trusting only `ca`; the status line's code.
async fn https_post(address: std::net::SocketAddr, ca: &str, body: &[u8]) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let head = format!(
        "POST /webhooks/arcadia HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.expect("write");
    tls.write_all(body).await.expect("write");
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer).await;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn https_and_grpc_over_mtls_with_generated_certificates() {
    let pki = pki();
    let server = Server::start(&pki.config);

    // HTTPS: the webhook is stored; plain HTTP on the same port gets no answer.
    let status = https_post(server.http, &pki.ca, &arcadia_webhook("whk_tls")).await;
    assert_eq!(status, 200);
    let plain = reqwest::Client::new()
        .get(server.url("/healthz"))
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered on the TLS port");

    // gRPC over TLS requires a client certificate from the CA.
    let uri = format!("https://127.0.0.1:{}", server.grpc.port());
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("127.0.0.1");
    let without_identity = Channel::from_shared(uri.clone())
        .expect("uri")
        .tls_config(tls.clone())
        .expect("tls")
        .connect()
        .await;
    let refused = match without_identity {
        Err(_) => true,
        Ok(channel) => EventStreamClient::new(channel)
            .subscribe(SubscribeRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "a client without a certificate was served");

    let channel = Channel::from_shared(uri)
        .expect("uri")
        .tls_config(tls.identity(Identity::from_pem(&pki.client_cert, &pki.client_key)))
        .expect("tls")
        .connect()
        .await
        .expect("mTLS connect");
    let mut stream = EventStreamClient::new(channel)
        .subscribe(SubscribeRequest::default())
        .await
        .expect("subscribe over mTLS")
        .into_inner();
    let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("in time")
        .expect("stream")
        .expect("an event");
    assert_eq!(event.sequence, 1);
    assert_eq!(event.id, "arcadia:whk_tls");
}

#[tokio::test]
async fn a_redrive_of_all_goes_a_page_at_a_time() {
    let server = Server::start(OPEN_ARCADIA);
    for i in 0..3 {
        let mut json: serde_json::Value =
            serde_json::from_slice(&arcadia_webhook(&format!("whk_dead_{i}"))).expect("json");
        json["eventType"] = "no.such.event".into();
        let (status, answer) = server
            .post("arcadia", json.to_string().as_bytes(), &[])
            .await;
        assert_eq!((status, &answer["dead_lettered"]), (200, &1.into()));
    }
    let mut admin = AdminClient::new(server.channel().await);
    let mut after_id = 0;
    let mut pages = Vec::new();
    loop {
        let page = admin
            .redrive_dead_letters(RedriveDeadLettersRequest {
                ids: Vec::new(),
                after_id,
                limit: 2,
            })
            .await
            .expect("redrive")
            .into_inner();
        pages.push(
            page.outcomes
                .iter()
                .map(|o| (o.id, o.resolved))
                .collect::<Vec<_>>(),
        );
        if page.next_after_id == 0 {
            break;
        }
        after_id = page.next_after_id;
    }
    // Still unmappable: each stays dead, and each is visited exactly once.
    assert_eq!(pages, vec![vec![(1, false), (2, false)], vec![(3, false)]]);

    let too_many = RedriveDeadLettersRequest {
        ids: (1..=1001).collect(),
        ..RedriveDeadLettersRequest::default()
    };
    let error = admin
        .redrive_dead_letters(too_many)
        .await
        .expect_err("1001 ids");
    assert_eq!(error.code(), Code::InvalidArgument);
}

/// A fresh CA and a server certificate for 127.0.0.1 it signed: (CA PEM, cert PEM, key PEM).
pub(crate) fn ca_and_server_certificate() -> (String, String, String) {
    let pki = tributary_test_kit::pki::Pki::generate("unused.internal");
    (pki.ca, pki.server_cert, pki.server_key)
}

#[tokio::test]
async fn sighup_rereads_certificates_without_dropping_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first_ca, cert, key) = ca_and_server_certificate();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, cert).expect("cert");
    std::fs::write(&key_file, key).expect("key");
    let files = format!(
        "cert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert_file.display(),
        key_file.display()
    );
    let server = Server::start(&format!(
        "{OPEN_ARCADIA}[http.tls]\n{files}[grpc.tls]\n{files}"
    ));

    // A stream opened with the first certificate.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&first_ca))
        .domain_name("127.0.0.1");
    let channel = Channel::from_shared(format!("https://127.0.0.1:{}", server.grpc.port()))
        .expect("uri")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("connect");
    let mut stream = EventStreamClient::new(channel)
        .subscribe(SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();
    assert_eq!(
        https_post(server.http, &first_ca, &arcadia_webhook("whk_before")).await,
        200
    );

    // New files from another CA, then SIGHUP.
    let (second_ca, cert, key) = ca_and_server_certificate();
    std::fs::write(&cert_file, cert).expect("cert");
    std::fs::write(&key_file, key).expect("key");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.logs().contains("TLS certificate reloaded") {
        assert!(
            Instant::now() < deadline,
            "no reload logged:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // New connections get the new certificate; the old stream still delivers.
    assert_eq!(
        https_post(server.http, &second_ca, &arcadia_webhook("whk_after")).await,
        200
    );
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("in time")
            .expect("stream still open")
            .expect("an event");
        ids.push(event.id);
    }
    assert_eq!(ids, ["arcadia:whk_before", "arcadia:whk_after"]);
}

#[tokio::test]
async fn operators_endpoints_can_have_listeners_of_their_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tributary.toml");
    std::fs::write(
        &config,
        "[ops]\nhttp_listen = \"127.0.0.1:0\"\ngrpc_listen = \"127.0.0.1:0\"\n",
    )
    .expect("config");
    let mut child = serve_command(&dir.path().join("data"), Some(&config))
        .arg("--plugin-dir")
        .arg(plugin_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let ready = {
        use std::io::BufRead;
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|line| line.starts_with("tributary ready "))
            .expect("ready line")
    };
    let address = |key: &str| -> std::net::SocketAddr {
        ready
            .split_whitespace()
            .find_map(|part| part.strip_prefix(key))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {ready:?}"))
    };
    let (http, grpc) = (address("http="), address("grpc="));
    let (ops_http, ops_grpc) = (address("ops_http="), address("ops_grpc="));

    let get = |address: std::net::SocketAddr, path: &'static str| async move {
        reqwest::get(format!("http://{address}{path}"))
            .await
            .expect("GET")
            .status()
            .as_u16()
    };
    assert_eq!(get(ops_http, "/metrics").await, 200);
    assert_eq!(
        get(http, "/metrics").await,
        404,
        "no metrics on the webhook port"
    );
    assert_eq!(
        get(http, "/healthz").await,
        200,
        "load balancers still probe it"
    );
    assert_eq!(get(ops_http, "/readyz").await, 200);

    let connect = |address: std::net::SocketAddr| async move {
        Channel::from_shared(format!("http://{address}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    };
    let mut main_admin = AdminClient::new(connect(grpc).await);
    let error = main_admin
        .list_consumers(ListConsumersRequest::default())
        .await
        .expect_err("no admin on the consumers' port");
    assert_eq!(error.code(), Code::Unimplemented);
    let mut ops_admin = AdminClient::new(connect(ops_grpc).await);
    ops_admin
        .list_consumers(ListConsumersRequest::default())
        .await
        .expect("admin on the operators' port");
    let error = EventStreamClient::new(connect(ops_grpc).await)
        .subscribe(SubscribeRequest::default())
        .await
        .expect_err("no event stream on the operators' port");
    assert_eq!(error.code(), Code::Unimplemented);
    let _ = child.kill();
    let _ = child.wait();
}
