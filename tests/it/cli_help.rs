//! The CLI as a newcomer meets it, through the real binary, output compared exactly: the
//! server's address read from its config file, a bare `host:port`, and one error printer
//! (`error: ...`, causes once, a hint, never a backtrace).

use std::process::Output;

use tributary_model::v1::{Filter, SubscribeRequest};

use crate::support::nats::free_port;
use crate::support::{Server, arcadia_source};

/// Runs `tributary` with `args` and `env`, without the test process's `TRIBUTARY_*`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"));
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("TRIBUTARY_") || name == "RUST_BACKTRACE" {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("run tributary")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const UNIMPLEMENTED_HINT: &str = "hint: this address does not serve this command's service: \
     when the server sets ops.grpc_listen, the admin commands (consumers, dead-letters, raw, \
     replay, archive, adapter try) are served only there; pass --config with the server's config file, \
     or --server with the ops.grpc_listen address\n";

#[tokio::test]
async fn the_cli_finds_the_admin_port_in_the_servers_config() {
    let ops = free_port();
    let server = Server::start(&format!(
        "[ops]\ngrpc_listen = \"127.0.0.1:{ops}\"\n{}",
        arcadia_source("")
    ));
    let config = server.config.clone().expect("config file");
    let config = config.to_str().expect("utf-8");

    // The main port serves no Admin when ops.grpc_listen is set: the error names the setting.
    let main = server.grpc.to_string();
    let out = run(&["consumers", "list", "--server", &main], &[]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        format!("error: Operation is not implemented or not supported\n{UNIMPLEMENTED_HINT}")
    );

    // Through the config file (flag or environment), the admin commands reach the ops port.
    // None yet: `none` on stderr, so stdout stays JSON lines for scripts.
    for (args, env) in [
        (vec!["consumers", "list", "--config", config], vec![]),
        (
            vec!["consumers", "list"],
            vec![("TRIBUTARY_CONFIG", config)],
        ),
    ] {
        let out = run(&args, &env);
        assert_eq!(stderr(&out), "none\n", "{args:?} {env:?}");
        assert_eq!(stdout(&out), "");
        assert!(out.status.success());
    }
    // A bare host:port is a plaintext address.
    let out = run(
        &["consumers", "list", "--server", &format!("127.0.0.1:{ops}")],
        &[],
    );
    assert_eq!(stderr(&out), "none\n");
    assert!(out.status.success());

    // On a terminal, a table.
    let _stream = server
        .subscribe(SubscribeRequest {
            consumer: "billing".into(),
            filter: Some(Filter {
                sources: Vec::new(),
                types: vec!["statement.*".into()],
            }),
            ..Default::default()
        })
        .await;
    let binary = env!("CARGO_BIN_EXE_tributary");
    let out = run_on_terminal(&format!("{binary} consumers list --config {config}"));
    assert_eq!(
        out,
        "NAME     ACKED  LAG  FILTER             LAST ACK\r\nbilling  0      0    types=statement.*\r\n"
    );
    let out = run_on_terminal(&format!("{binary} dead-letters list --config {config}"));
    assert_eq!(out, "none\r\n");
    let out = run(&["consumers", "list", "--config", config], &[]);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON line");
    assert_eq!(
        (&listed["name"], &listed["lag"], &listed["filter"]),
        (
            &serde_json::json!("billing"),
            &serde_json::Value::Null, // 0, omitted in proto3 JSON
            &serde_json::json!({"types": ["statement.*"]})
        )
    );
}

/// Runs `command` (a shell line) with a terminal as its stdout (`script`), returning what it
/// printed.
fn run_on_terminal(command: &str) -> String {
    let out = std::process::Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env_remove("TRIBUTARY_CONFIG")
        .env_remove("TRIBUTARY_SERVER")
        .output()
        .expect("run script");
    assert!(out.status.success(), "{out:?}");
    stdout(&out)
}

#[tokio::test]
async fn errors_print_once_with_a_hint_and_no_backtrace() {
    let server = Server::start(
        "[[grpc.credentials]]\nname = \"operators\"\ntoken = \"operator-secret-1\"\nadmin = true\n",
    );
    let main = server.grpc.to_string();
    let env = [("RUST_BACKTRACE", "1")];
    let out = run(&["consumers", "list", "--server", &main], &env);
    assert_eq!(
        stderr(&out),
        "error: missing or invalid bearer token\nhint: pass a token with --token or \
         TRIBUTARY_TOKEN: the secret of one of the server's [[grpc.credentials]]\n"
    );
    let out = run(
        &[
            "consumers",
            "delete",
            "nobody",
            "--server",
            &main,
            "--token",
            "operator-secret-1",
        ],
        &env,
    );
    assert_eq!(stdout(&out), "{\"deleted\":false}\n");
    let out = run(
        &[
            "consumers",
            "reset",
            "nobody",
            "0",
            "--server",
            &main,
            "--token",
            "operator-secret-1",
        ],
        &env,
    );
    assert_eq!(stderr(&out), "error: no consumer named `nobody`\n");

    // Nothing listens there: the cause once, and where the address came from.
    let closed = free_port();
    let out = run(
        &[
            "consumers",
            "list",
            "--server",
            &format!("127.0.0.1:{closed}"),
        ],
        &env,
    );
    assert_eq!(
        stderr(&out),
        format!(
            "error: cannot connect to http://127.0.0.1:{closed}: tcp connect error: Connection \
             refused (os error 111)\nhint: is the server running there? the address comes from \
             --server (or TRIBUTARY_SERVER), else from the server's config file (--config or \
             TRIBUTARY_CONFIG), else 127.0.0.1:50051\n"
        )
    );

    // A config typo: the line and the valid keys, no backtrace.
    let dir = tempfile::tempdir().expect("tempdir");
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[grpc]\nlisten = \"127.0.0.1:0\"\nlistne = 1\n").expect("write");
    let typo = typo.to_str().expect("utf-8");
    let out = run(&["serve", "--config", typo], &env);
    // After the start-up log's line naming the file, the error alone.
    let logged = stderr(&out);
    let (first, err) = logged.split_once('\n').unwrap_or_default();
    assert!(
        first.ends_with(&format!(
            "INFO tributary: reading the config file config={typo}"
        )),
        "{logged}"
    );
    let err = err.to_owned();
    // The valid keys follow; the list grows with the product.
    assert!(
        err.starts_with(&format!(
            "error: invalid config file {typo}: TOML parse error at line 3, column 1\n  |\n3 | \
             listne = 1\n  | ^^^^^^\nunknown field `listne`, expected one of `listen`, "
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 5, "no backtrace: {err}");
}

#[tokio::test]
async fn start_up_errors_name_the_setting_and_the_next_step() {
    // The data directory of a running server: its lock is held by that process.
    let server = Server::start("");
    let data = server.data.to_str().expect("utf-8").to_owned();
    let out = run(
        &[
            "serve",
            "--http-listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "localhost:0",
            "--data-dir",
            &data,
        ],
        &[],
    );
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "error: cannot open the fjall event log in {data}: another process holds its lock \
             (is another `tributary serve` using this data directory?); stop it, or give this \
             one its own data directory (log.data_dir, --data-dir or TRIBUTARY_DATA_DIR): event \
             log storage failed: cannot open {data}/fjall: FjallError: Locked"
        )
    );

    let out = run(&["serve", "--http-listen", "localhost:x"], &[]);
    assert_eq!(
        stderr(&out),
        "error: invalid value 'localhost:x' for '--http-listen <HTTP_LISTEN>': `localhost:x`: \
         the port must be a number from 0 to 65535\n\nFor more information, try '--help'.\n"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-plugins");
    let out = run(
        &[
            "serve",
            "--http-listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().join("data").to_str().expect("utf-8"),
            "--plugin-dir",
            missing.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(
        stderr(&out).lines().last().unwrap_or_default(),
        format!(
            "error: the plugin directory {} is not a directory (plugins.dir, --plugin-dir or \
             TRIBUTARY_PLUGIN_DIR): point it at the directory of the adapter libraries \
             (libtributary_adapter_*.so)",
            missing.display()
        )
    );
}

#[tokio::test]
async fn adapter_try_takes_an_adapters_name_and_headers() {
    use crate::support::{ARCADIA_TOKEN, repo};
    let source = arcadia_source("").replace("[sources.arcadia]", "[sources.arcadia-prod]");
    let server = Server::start(&source);
    let main = server.grpc.to_string();
    let seed = repo().join("plugins/arcadia/fixtures/seed-statement-new-data-available.raw.json");
    let seed = seed.to_str().expect("utf-8");
    let header = format!("X-Arcadia-Token={ARCADIA_TOKEN}");
    // No source is called `arcadia`: the one source its adapter serves is used.
    let out = run(
        &[
            "adapter", "try", "arcadia", seed, "--server", &main, "--header", &header,
        ],
        &[],
    );
    assert_eq!(stderr(&out), "");
    let result: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON result");
    assert_eq!(
        result["normalized"]["events"][0]["source"],
        serde_json::json!("arcadia-prod"),
        "{result}"
    );
    let out = run(&["adapter", "try", "nope", seed, "--server", &main], &[]);
    assert_eq!(
        stderr(&out),
        "error: no source or adapter named `nope` (sources: arcadia-prod)\n"
    );
}

#[tokio::test]
async fn a_scoped_credential_gets_an_event_of_its_sources_only() {
    use crate::support::{ARCADIA_AUTH, arcadia_webhook};
    let server = Server::start(&format!(
        "[[grpc.credentials]]\nname = \"reader\"\ntoken = \"reader-secret-0001\"\nsources = [\"klavi\"]\n\
         [[grpc.credentials]]\nname = \"arcadia-reader\"\ntoken = \"reader-secret-0002\"\nsources = [\"arcadia\"]\n{}",
        arcadia_source("")
    ));
    let (status, body) = server
        .post("arcadia", &arcadia_webhook("whk_get_scoped"), &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 200, "{body}");
    let main = server.grpc.to_string();
    let token = ["--server", &main, "--token", "reader-secret-0001"];
    let out = run(&[&["events", "get", "1"][..], &token].concat(), &[]);
    assert_eq!(
        stderr(&out),
        "error: credential `reader` may not read source `arcadia`\nhint: the token's credential \
         lacks what this command needs: see its `scopes` (and `sources`, `types`, `consumers`) in \
         the server's [[grpc.credentials]]; admin commands need the `admin` scope; `events` \
         commands name the sources and types they read with --source and --type\n"
    );
    let token = ["--server", &main, "--token", "reader-secret-0002"];
    let out = run(
        &[&["events", "get", "1", "--output", "json"][..], &token].concat(),
        &[],
    );
    assert_eq!(stderr(&out), "");
    let event: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON event");
    assert_eq!(
        (&event["sequence"], &event["source"]),
        (&serde_json::json!("1"), &serde_json::json!("arcadia"))
    );
    let out = run(
        &[
            &[
                "events", "get", "1", "--source", "arcadia", "--output", "json",
            ][..],
            &token,
        ]
        .concat(),
        &[],
    );
    assert_eq!(stderr(&out), "");
    let event: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON event");
    assert_eq!(
        (&event["sequence"], &event["source"]),
        (&serde_json::json!("1"), &serde_json::json!("arcadia"))
    );
}

#[tokio::test]
async fn rejected_webhooks_are_listed_with_redacted_headers_and_no_body() {
    let server = Server::start(&format!(
        "[http]\nrejections_kept = 2\n{}",
        arcadia_source("")
    ));
    let body = br#"{"id":"whk_bad"}"#;
    for _ in 0..3 {
        let (status, _) = server
            .post("arcadia", body, &[("X-Arcadia-Token", "wrong-token-value")])
            .await;
        assert_eq!(status, 401);
    }
    let (status, _) = server.post("made-up", b"x", &[]).await;
    assert_eq!(status, 404);

    let main = server.grpc.to_string();
    let out = run(
        &[
            "rejections",
            "list",
            "--server",
            &main,
            "--source",
            "arcadia",
        ],
        &[],
    );
    assert_eq!(stderr(&out), "");
    let listed: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(listed.len(), 2, "rejections_kept = 2 per source");
    let first = &listed[0];
    assert!(
        first["clientAddress"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{first}"
    );
    let headers: Vec<(String, String)> = first["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap_or_default().to_owned(),
                h["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .filter(|(name, _)| name == "content-type" || name == "x-arcadia-token")
        .collect();
    assert_eq!(
        headers,
        [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-arcadia-token".to_owned(), "[redacted]".to_owned()),
        ]
    );
    let text = stdout(&out);
    assert!(!text.contains("wrong-token-value"), "no secret: {text}");
    assert!(!text.contains("whk_bad"), "never the body: {text}");
    use sha2::Digest as _;
    assert_eq!(
        (
            &first["source"],
            &first["status"],
            &first["code"],
            &first["bodySize"],
            &first["bodySha256"]
        ),
        (
            &serde_json::json!("arcadia"),
            &serde_json::json!(401),
            &serde_json::json!("unauthenticated"),
            &serde_json::json!(body.len().to_string()),
            &serde_json::json!(hex::encode(sha2::Sha256::digest(body))),
        )
    );
    let out = run(
        &[
            "rejections",
            "list",
            "--server",
            &main,
            "--source",
            "(unknown source)",
        ],
        &[],
    );
    let unknown: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one line");
    assert_eq!(
        (&unknown["source"], &unknown["status"], &unknown["reason"]),
        (
            &serde_json::json!("made-up"),
            &serde_json::json!(404),
            &serde_json::json!("no source named `made-up`")
        )
    );
}

#[test]
fn adapter_new_checks_its_repository_and_refuses_taken_names() {
    use crate::support::repo;
    let binary = env!("CARGO_BIN_EXE_tributary");
    let in_dir = |cwd: &std::path::Path, args: &[&str]| {
        std::process::Command::new(binary)
            .args(args)
            .current_dir(cwd)
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run tributary")
    };
    let outside = tempfile::tempdir().expect("tempdir");
    let out = in_dir(
        repo(),
        &[
            "adapter",
            "new",
            "klavi",
            "--dir",
            outside.path().join("k").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(
        stderr(&out),
        format!(
            "error: adapter name `klavi` is taken by the bundled adapter in {}: choose another name\n",
            repo().join("plugins/klavi").display()
        )
    );
    let out = in_dir(
        outside.path(),
        &[
            "adapter",
            "new",
            "acme",
            "--repo",
            outside.path().to_str().expect("utf-8"),
        ],
    );
    assert_eq!(
        stderr(&out),
        format!(
            "error: --repo {} is not a Tributary checkout (no crates/plugin-sdk/Cargo.toml): give \
             the directory of a clone of the Tributary repository\n",
            outside.path().display()
        )
    );
    // Outside a checkout: a warning, and the SDK by absolute path.
    let out = in_dir(
        outside.path(),
        &["adapter", "new", "acme-pay", "--dir", "acme-pay"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        stderr(&out).starts_with("warning: not inside a Tributary checkout"),
        "{}",
        stderr(&out)
    );
    let manifest =
        std::fs::read_to_string(outside.path().join("acme-pay/Cargo.toml")).expect("manifest");
    assert!(
        manifest.contains(&format!(
            "path = \"{}/crates/plugin-sdk\"",
            repo().display()
        )),
        "{manifest}"
    );
    // Inside the checkout: relative to the crate, so the checkout can move.
    let inside = repo().join("target/scaffold-check/acme-inside");
    let _ = std::fs::remove_dir_all(&inside);
    let out = in_dir(
        repo(),
        &[
            "adapter",
            "new",
            "acme-inside",
            "--dir",
            inside.to_str().expect("utf-8"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stderr(&out), "");
    let manifest = std::fs::read_to_string(inside.join("Cargo.toml")).expect("manifest");
    let _ = std::fs::remove_dir_all(&inside);
    assert!(
        manifest.contains("path = \"../../../crates/plugin-sdk\""),
        "{manifest}"
    );
}

#[tokio::test]
async fn the_cli_speaks_tls_when_the_servers_config_has_grpc_tls() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = tributary_test_kit::pki::Pki::generate("cli.internal");
    let files = pki.write_to(dir.path());
    // The chain, leaf first, then its CA: what the CLI trusts.
    let chain = dir.path().join("chain.pem");
    std::fs::write(&chain, format!("{}{}", pki.server_cert, pki.ca)).expect("chain");
    let grpc = free_port();
    let config = dir.path().join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "[grpc]\nlisten = \"127.0.0.1:{grpc}\"\n[grpc.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            chain.display(),
            files.server_key.display()
        ),
    )
    .expect("config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--http-listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("TRIBUTARY_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let stdout = child.stdout.take().expect("stdout");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with("tributary ready "));
    assert!(ready.is_some(), "the server did not start");
    let config = config.to_str().expect("utf-8");
    let out = run(&["consumers", "list", "--config", config], &[]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(stderr(&out), "none\n");
    assert!(out.status.success());
}
