//! The C example adapter (examples/c-adapter, a made-up provider) built with the system C
//! compiler against the generated header: its fixtures pass through the same host, and it
//! serves end to end over HTTP and gRPC.

use tributary_model::v1::{Filter, event::Payload};

use crate::support::Server;
use crate::support::adapters::{
    build_quokka, c_example, cli, cli_success, list, normalize, version_of,
};

const CONFIG: &str = r#"
[sources.quokka]
adapter = "quokka"
config = { token = "s3cret" }
"#;

#[test]
fn the_c_adapter_passes_its_fixtures_with_the_cli_runner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = dir.path().join("libquokka.so");
    build_quokka(&library, "1.0.0");
    let fixtures = c_example().join("fixtures");
    let stdout = cli_success(&[
        "adapter",
        "test",
        library.to_str().expect("utf-8"),
        fixtures.to_str().expect("utf-8"),
    ]);
    assert!(stdout.contains("quokka 1.0.0 (ABI 2"), "{stdout}");
    assert!(stdout.contains("9 fixtures, 0 failed"), "{stdout}");

    // A version that maps differently fails with a diff and a non-zero exit.
    let scratch = dir.path().join("fixtures");
    std::fs::create_dir(&scratch).expect("mkdir");
    for name in [
        "adapter-config.json",
        "consent-granted.raw.json",
        "consent-granted.request.json",
    ] {
        std::fs::copy(fixtures.join(name), scratch.join(name)).expect("copy");
    }
    let expected =
        std::fs::read_to_string(fixtures.join("consent-granted.expected.json")).expect("read");
    std::fs::write(
        scratch.join("consent-granted.expected.json"),
        expected.replace("qc_9", "qc_other"),
    )
    .expect("write");
    let args = [
        "adapter",
        "test",
        library.to_str().expect("utf-8"),
        scratch.to_str().expect("utf-8"),
    ];
    let out = cli(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("MISMATCH consent-granted"), "{stdout}");
    assert!(
        stdout.contains("-          \"consentId\": \"qc_other\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("+          \"consentId\": \"qc_9\""),
        "{stdout}"
    );
    // --update rewrites the expectation; then it passes.
    let mut update = args.to_vec();
    update.push("--update");
    assert!(cli(&update).status.success());
    assert!(cli(&args).status.success());
}

#[tokio::test]
async fn the_c_adapter_serves_end_to_end_over_http_and_grpc() {
    let plugins = tempfile::tempdir().expect("tempdir");
    let library = plugins.path().join("libquokka.so");
    build_quokka(&library, "1.0.0");
    let server = Server::start_with_plugins(CONFIG, plugins.path());
    let body = std::fs::read(c_example().join("fixtures/consent-granted.raw.json")).expect("raw");

    let (status, answer) = server
        .post("quokka", &body, &[("x-quokka-token", "s3cret")])
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1);
    let (status, _) = server
        .post("quokka", &body, &[("x-quokka-token", "wrong")])
        .await;
    assert_eq!(status, 401);
    let (status, answer) = server
        .post(
            "quokka",
            br#"{"kind": "x"}"#,
            &[("x-quokka-token", "s3cret")],
        )
        .await;
    assert_eq!(status, 400, "{answer}");

    let events = server.collect(Filter::default(), None, 1).await;
    let event = &events[0];
    assert_eq!(event.id, "quokka:qk_evt_1");
    assert_eq!(event.r#type, "consent.granted");
    let provenance = event.provenance.as_ref().expect("provenance");
    assert_eq!(
        (
            provenance.adapter.as_str(),
            provenance.adapter_version.as_str()
        ),
        ("quokka", "1.0.0")
    );
    match &event.payload {
        Some(Payload::Consent(consent)) => assert_eq!(consent.consent_id, "qc_9"),
        other => panic!("{other:?}"),
    }

    // gRPC dry run, with and without verification.
    let dry = normalize(
        server.grpc,
        "quokka",
        &body,
        Some(("x-quokka-token", "s3cret")),
    )
    .await;
    assert_eq!(version_of(&dry), "1.0.0");
    let listed = list(server.grpc).await;
    let quokka = listed
        .adapters
        .iter()
        .find(|a| a.info.as_ref().is_some_and(|i| i.name == "quokka"))
        .expect("quokka listed");
    assert_eq!(quokka.abi_version, 2);
    assert_eq!(quokka.file, library.display().to_string());
    let sha = tributary_plugin_host::Plugin::load(&library)
        .expect("load")
        .sha256()
        .to_owned();
    assert_eq!(quokka.sha256, sha);
    assert!(quokka.loaded_at.is_some());
    // The C adapter reports its verification state through the table's `instance_info`; its
    // old `token` key is one secret, read with a deprecation warning.
    let source = listed
        .sources
        .iter()
        .find(|s| s.name == "quokka")
        .expect("quokka source");
    assert_eq!(
        source.verification,
        tributary_model::v1::VerificationState::On as i32
    );
    assert_eq!(source.secrets.len(), 1);
    assert_eq!(
        source.warnings,
        [
            "quokka: the config key `token` is deprecated and still read: move its value to `verification.secrets`"
        ]
    );
    // Verified by that secret: the accepted webhook and the dry run (the 400 and the 401 not).
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(
            "tributary_webhooks_verified_total{source=\"quokka\",index=\"0\",label=\"\"} 2\n"
        ),
        "{metrics}"
    );

    // The CLI wrapper of the same RPC.
    let file = c_example().join("fixtures/consent-granted.raw.json");
    let server_url = format!("http://{}", server.grpc);
    let stdout = cli_success(&[
        "adapter",
        "try",
        "quokka",
        file.to_str().expect("utf-8"),
        "--server",
        &server_url,
        "--header",
        "x-quokka-token=s3cret",
    ]);
    assert!(stdout.contains("\"consentId\": \"qc_9\""), "{stdout}");
    let out = cli(&[
        "adapter",
        "try",
        "quokka",
        file.to_str().expect("utf-8"),
        "--server",
        &server_url,
    ]);
    assert!(!out.status.success(), "no token: rejected");
    cli_success(&[
        "adapter",
        "try",
        "quokka",
        file.to_str().expect("utf-8"),
        "--server",
        &server_url,
        "--skip-verification",
    ]);
}
