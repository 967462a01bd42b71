//! Connecting with credentials from the configuration (user and password, token, nkey seed
//! file) and over TLS with a private CA (and a client certificate), against real servers that
//! require them; and secrets kept out of every error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tributary_event_log::{AppendRequest, EventLog, LogError};
use tributary_event_log_nats::{NatsAuth, NatsConfig, NatsLog, NatsTls, Secret};
use tributary_model::v1::{Event, Provenance};
use tributary_test_kit::pki::{Pki, PkiFiles};

use crate::support;

const PASSWORD: &str = "hunter2-correct-horse";

fn config(url: &str, auth: NatsAuth) -> NatsConfig {
    NatsConfig {
        auth,
        connect_timeout: Duration::from_secs(20),
        ..NatsConfig::new(vec![url.to_owned()])
    }
}

/// Connected and able to append: the credentials were accepted, JetStream included.
async fn works(log: &NatsLog) {
    let request = AppendRequest {
        source: "s".into(),
        events: vec![
            Event {
                source: "s".into(),
                provenance: Some(Provenance {
                    provider_event_id: "a".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .into(),
        ],
        dead_letters: Vec::new(),
        archive: None,
    };
    let outcome = log.append(request).await.expect("append");
    assert_eq!(outcome.sequences, vec![1]);
    assert_eq!(log.health(), Ok(()));
}

/// A connection that must fail, quickly; its error must not show `secrets`.
async fn refused(config: NatsConfig, secrets: &[&str]) -> LogError {
    let config = NatsConfig {
        connect_timeout: Duration::from_secs(2),
        ..config
    };
    let shown = format!("{config:?}");
    let error = match NatsLog::connect(config).await {
        Ok(_) => panic!("connected"),
        Err(error) => error,
    };
    let text = format!("{error} / {error:?} / {}", error.detail());
    for secret in secrets {
        assert!(!text.contains(secret), "{text}");
        assert!(!shown.contains(secret), "{shown}");
    }
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password() {
    let nats = support::Nats::start_with(&format!(
        "authorization {{ user: alice, password: \"{PASSWORD}\" }}"
    ));
    let auth = |password: &str| NatsAuth::UserPassword {
        user: "alice".into(),
        password: Secret::new(password),
    };
    let log = support::connect(config(&nats.url(), auth(PASSWORD)))
        .await
        .expect("connect");
    works(&log).await;

    let wrong = refused(
        config(&nats.url(), auth("wrong-pass-guess")),
        &["wrong-pass-guess"],
    )
    .await;
    assert!(matches!(wrong, LogError::Storage { .. }), "{wrong:?}");
    refused(config(&nats.url(), NatsAuth::None), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token() {
    let nats = support::Nats::start_with(&format!("authorization {{ token: \"{PASSWORD}\" }}"));
    let log = support::connect(config(&nats.url(), NatsAuth::Token(Secret::new(PASSWORD))))
        .await
        .expect("connect");
    works(&log).await;
    refused(
        config(&nats.url(), NatsAuth::Token(Secret::new("not-the-token"))),
        &["not-the-token"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_are_refused_before_connecting() {
    let nats = support::Nats::start_with(&format!(
        "authorization {{ user: alice, password: \"{PASSWORD}\" }}"
    ));
    let with_password = format!("nats://alice:{PASSWORD}@127.0.0.1:{}", nats.port);
    let error = refused(config(&with_password, NatsAuth::None), &[PASSWORD, "alice"]).await;
    match error {
        LogError::Invalid(reason) => {
            assert!(reason.contains("carries credentials"), "{reason}");
            assert!(
                reason.contains(&format!("nats://***@127.0.0.1:{}", nats.port)),
                "{reason}"
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let with_token = format!("nats://{PASSWORD}@127.0.0.1:{}", nats.port);
    refused(config(&with_token, NatsAuth::None), &[PASSWORD]).await;
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_seed_file() {
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().expect("seed");
    let nats = support::Nats::start_with(&format!(
        "authorization {{ users: [ {{ nkey: {} }} ] }}",
        user.public_key()
    ));
    let dir = tempfile::tempdir().expect("dir");
    let seed_file = write(dir.path(), "user.nk", &format!("{seed}\n"));
    let log = support::connect(config(&nats.url(), NatsAuth::NkeySeedFile(seed_file)))
        .await
        .expect("connect");
    works(&log).await;

    // Another user's seed: refused by the server.
    let stranger = nkeys::KeyPair::new_user().seed().expect("seed");
    let other = write(dir.path(), "other.nk", &stranger);
    refused(
        config(&nats.url(), NatsAuth::NkeySeedFile(other)),
        &[&stranger],
    )
    .await;
    // Not a seed: refused before connecting, without repeating the file.
    let broken = write(dir.path(), "broken.nk", "SUNOTASEED-hunter2\n");
    let error = refused(
        config(&nats.url(), NatsAuth::NkeySeedFile(broken)),
        &["hunter2"],
    )
    .await;
    assert!(
        matches!(&error, LogError::Invalid(reason) if reason.contains("holds no valid seed")),
        "{error:?}"
    );
    let missing = dir.path().join("missing.nk");
    let error = refused(config(&nats.url(), NatsAuth::NkeySeedFile(missing)), &[]).await;
    assert!(matches!(error, LogError::Invalid(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_credentials_file_is_refused_without_its_contents() {
    let dir = tempfile::tempdir().expect("dir");
    let creds = write(
        dir.path(),
        "user.creds",
        "-----BEGIN NATS USER JWT-----\nnot-a-jwt-hunter2\n------END NATS USER JWT------\n",
    );
    let error = refused(
        config("nats://127.0.0.1:1", NatsAuth::CredsFile(creds)),
        &["hunter2"],
    )
    .await;
    assert!(
        matches!(&error, LogError::Invalid(reason) if reason.contains("not usable")),
        "{error:?}"
    );
}

/// A private CA signing the server's certificate (127.0.0.1) and a client's, written to files
/// in a directory that lives as long as the first value.
fn pki() -> (tempfile::TempDir, PkiFiles) {
    let dir = tempfile::tempdir().expect("dir");
    let files = Pki::generate("tributary.internal").write_to(dir.path());
    (dir, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_and_a_client_certificate() {
    let (_pki_dir, pki) = pki();
    let nats = support::Nats::start_with(&format!(
        "tls {{ cert_file: {:?}, key_file: {:?}, ca_file: {:?}, verify: true }}",
        pki.server_cert, pki.server_key, pki.ca
    ));
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let tls = NatsTls {
        ca_file: Some(pki.ca.clone()),
        client_cert_file: Some(pki.client_cert.clone()),
        client_key_file: Some(pki.client_key.clone()),
    };
    let log = support::connect(NatsConfig {
        tls: tls.clone(),
        ..config(&url, NatsAuth::None)
    })
    .await
    .expect("connect");
    works(&log).await;

    // Without the private CA the server's certificate is not trusted; without a client
    // certificate the server refuses the client.
    refused(
        NatsConfig {
            tls: NatsTls {
                ca_file: None,
                ..tls.clone()
            },
            ..config(&url, NatsAuth::None)
        },
        &[],
    )
    .await;
    refused(
        NatsConfig {
            tls: NatsTls {
                ca_file: Some(pki.ca.clone()),
                client_cert_file: None,
                client_key_file: None,
            },
            ..config(&url, NatsAuth::None)
        },
        &[],
    )
    .await;
    // A certificate without its key is a configuration mistake.
    let error = refused(
        NatsConfig {
            tls: NatsTls {
                client_key_file: None,
                ..tls
            },
            ..config(&url, NatsAuth::None)
        },
        &[],
    )
    .await;
    assert!(matches!(error, LogError::Invalid(_)), "{error:?}");
}
