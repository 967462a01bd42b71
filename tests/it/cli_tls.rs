//! The CLI over TLS through the real binary: a CA file and a client certificate (mTLS), and
//! the token read from the environment or a file instead of the command line.

use std::process::Command;

use crate::support::Server;

const ADMIN: &str = "operators-cli-tls-token-01";

#[tokio::test]
async fn the_cli_speaks_mtls_with_its_token_from_the_environment_or_a_file() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = tributary_test_kit::pki::Pki::generate("cli.internal");
    let files = pki.write_to(dir.path());
    let client_cert = dir.path().join("client.pem");
    let client_key = dir.path().join("client.key");
    std::fs::write(&client_cert, &pki.client_cert).expect("write");
    std::fs::write(&client_key, &pki.client_key).expect("write");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{ADMIN}\n")).expect("write");
    let config = format!(
        "[grpc.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n\
         [[grpc.credentials]]\nname = \"ops\"\ntoken = \"{ADMIN}\"\nadmin = true\n",
        files.server_cert.display(),
        files.server_key.display(),
        files.ca.display()
    );
    let server = Server::start(&config);
    let address = format!("https://127.0.0.1:{}", server.grpc.port());
    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    let run = |args: &[String], env: &[(&str, String)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
        command
            .args(["consumers", "list", "--server", &address])
            .args(args)
            .env_remove("TRIBUTARY_TOKEN")
            .env_remove("TRIBUTARY_TOKEN_FILE");
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().expect("run tributary");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let tls = vec![
        "--ca-file".to_owned(),
        path(&files.ca),
        "--client-cert".to_owned(),
        path(&client_cert),
        "--client-key".to_owned(),
        path(&client_key),
    ];
    // The token from the environment, then from a file.
    let (ok, stderr) = run(&tls, &[("TRIBUTARY_TOKEN", ADMIN.to_owned())]);
    assert!(ok, "{stderr}");
    let (ok, stderr) = run(&tls, &[("TRIBUTARY_TOKEN_FILE", path(&token_file))]);
    assert!(ok, "{stderr}");
    // Without the client certificate the server refuses; without a token too.
    let (ok, _) = run(&tls[..2], &[("TRIBUTARY_TOKEN", ADMIN.to_owned())]);
    assert!(!ok, "served without a client certificate");
    let (ok, stderr) = run(&tls, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("Unauthenticated") || stderr.contains("bearer"),
        "{stderr}"
    );
    // Plain http:// with TLS settings is a clear error, not a silent plaintext connection.
    let mut plain = Command::new(env!("CARGO_BIN_EXE_tributary"));
    let plain = plain
        .args(["consumers", "list", "--server"])
        .arg(format!("http://127.0.0.1:{}", server.grpc.port()))
        .args(&tls)
        .output()
        .expect("run");
    assert!(!plain.status.success());
    assert!(String::from_utf8_lossy(&plain.stderr).contains("use https://"));
}
