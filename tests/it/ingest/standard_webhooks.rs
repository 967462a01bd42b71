//! The bundled standard-webhooks adapter through the real binary: webhooks signed as the
//! specification says (`v1` HMAC with a `whsec_` secret, `v1a` Ed25519 with a key made here),
//! posted over HTTP and read back over gRPC with every value asserted.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{Value, json};
use tributary_model::v1::event::Payload;
use tributary_model::v1::{Filter, subscribe_request::Start};

use crate::support::{Server, delivered_json, unix_now};

/// The specification's example secret; the source also lists an Ed25519 key made here.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[0x5a; 32])
}

/// `[sources.acme]`: the standard-webhooks adapter with both keys and a type mapping (and the
/// failed-verification budget off: these tests send many unauthentic webhooks on purpose).
fn config() -> String {
    let whpk = format!(
        "whpk_{}",
        STANDARD.encode(signing_key().verifying_key().as_bytes())
    );
    format!(
        "[http]\nfailed_verifications_per_second = 0\n\
         [sources.acme]\nadapter = \"standard-webhooks\"\n\
         config = {{ secrets = [\"{SECRET}\", \"{whpk}\"], type_prefix = \"acme.\", \
         types = {{ \"invoice.paid\" = \"payment.received\" }} }}\n\
         [sources.unconfigured]\nadapter = \"standard-webhooks\"\n"
    )
}

/// What the provider signs: `{id}.{timestamp}.{body}`.
fn content(id: &str, timestamp: u64, body: &[u8]) -> Vec<u8> {
    [
        id.as_bytes(),
        b".",
        timestamp.to_string().as_bytes(),
        b".",
        body,
    ]
    .concat()
}

fn sign_v1(id: &str, timestamp: u64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .expect("base64 secret");
    let mac = hmac_sha256(&key, &content(id, timestamp, body));
    format!("v1,{}", STANDARD.encode(mac))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn sign_v1a(id: &str, timestamp: u64, body: &[u8]) -> String {
    let signature = signing_key().sign(&content(id, timestamp, body));
    format!("v1a,{}", STANDARD.encode(signature.to_bytes()))
}

/// POSTs `body` to `source` with the three headers (`None` leaves one out).
async fn post(
    server: &Server,
    source: &str,
    body: &[u8],
    id: Option<&str>,
    timestamp: Option<u64>,
    signature: Option<&str>,
) -> (u16, Value) {
    let timestamp = timestamp.map(|t| t.to_string());
    let mut headers = Vec::new();
    if let Some(id) = id {
        headers.push(("webhook-id", id));
    }
    if let Some(timestamp) = &timestamp {
        headers.push(("webhook-timestamp", timestamp.as_str()));
    }
    if let Some(signature) = signature {
        headers.push(("webhook-signature", signature));
    }
    server.post(source, body, &headers).await
}

/// The payload's `data` member, exactly as written in these bodies.
const INVOICE_DATA: &str = r#"{"id": "inv_8GfQ", "amount": 12345678901234567.89, "units": 18446744073709551617, "rate": 0.000000000000000001, "lines": [{"sku": 9007199254740993}]}"#;

#[tokio::test]
async fn signed_webhooks_are_stored_once_and_delivered_exactly() {
    let server = Server::start(&config());
    let now = unix_now();

    // v1 (HMAC), a mapped type, numbers no double holds.
    let invoice = format!(
        r#"{{"type": "invoice.paid", "timestamp": "2026-11-02T10:00:00.250Z", "data": {INVOICE_DATA}}}"#
    );
    let signature = sign_v1("msg_invoice_1", now, invoice.as_bytes());
    let (status, body) = post(
        &server,
        "acme",
        invoice.as_bytes(),
        Some("msg_invoice_1"),
        Some(now),
        Some(&signature),
    )
    .await;
    assert_eq!(
        (status, body.clone()),
        (
            200,
            json!({"accepted": 1, "duplicates": 0, "dead_lettered": 0, "ignored": 0,
                   "sequences": [1]})
        )
    );
    // The provider's retry (new attempt time, same id): a duplicate, nothing stored.
    let retry = now + 1;
    let signature = sign_v1("msg_invoice_1", retry, invoice.as_bytes());
    let (status, body) = post(
        &server,
        "acme",
        invoice.as_bytes(),
        Some("msg_invoice_1"),
        Some(retry),
        Some(&signature),
    )
    .await;
    assert_eq!(
        (status, body["duplicates"].clone()),
        (200, json!(1)),
        "{body}"
    );

    // v1a (Ed25519) beside an unknown scheme and a wrong v1, a prefixed type, an integer id.
    let user = br#"{"type":"user.created","timestamp":"2026-11-02T10:00:01Z","data":{"id":42,"email_verified":false}}"#;
    let signatures = format!(
        "v2,AAAA v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {}",
        sign_v1a("msg_user_1", now, user)
    );
    let (status, body) = post(
        &server,
        "acme",
        user,
        Some("msg_user_1"),
        Some(now),
        Some(&signatures),
    )
    .await;
    assert_eq!(
        (status, body["sequences"].clone()),
        (200, json!([2])),
        "{body}"
    );

    let delivered = server.collect(Filter::default(), None, 2).await;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        delivered_json(&delivered[0]),
        json!({
            "id": "acme:msg_invoice_1",
            "source": "acme",
            "type": "payment.received",
            "subject": "inv_8GfQ",
            "time": "2026-11-02T10:00:00.250+00:00",
            "datacontenttype": "application/protobuf",
            "specversion": "1.0",
            "sequence": "1",
            "provenance": {
                "adapter": "standard-webhooks",
                "adapterVersion": version,
                "providerEventId": "msg_invoice_1",
                "providerEventType": "invoice.paid",
                "providerCreatedAt": "2026-11-02T10:00:00.250+00:00",
            },
            "generic": {"dataJson": INVOICE_DATA},
        })
    );
    assert_eq!(
        delivered_json(&delivered[1]),
        json!({
            "id": "acme:msg_user_1",
            "source": "acme",
            "type": "acme.user.created",
            "subject": "42",
            "time": "2026-11-02T10:00:01+00:00",
            "datacontenttype": "application/protobuf",
            "specversion": "1.0",
            "sequence": "2",
            "provenance": {
                "adapter": "standard-webhooks",
                "adapterVersion": version,
                "providerEventId": "msg_user_1",
                "providerEventType": "user.created",
                "providerCreatedAt": "2026-11-02T10:00:01+00:00",
            },
            "generic": {"dataJson": r#"{"id":42,"email_verified":false}"#},
        })
    );
    // The typed payload, as a consumer decodes it: the digits a double would lose are there.
    let Some(Payload::Generic(generic)) = &delivered[0].payload else {
        panic!("{:?}", delivered[0].payload);
    };
    let data: Value = serde_json::from_str(&generic.data_json).expect("JSON text");
    assert_eq!(data["id"], json!("inv_8GfQ"));
    assert!(generic.data_json.contains("12345678901234567.89"));
    assert!(generic.data_json.contains("18446744073709551617"));
    assert!(generic.data_json.contains("9007199254740993"));
    server.assert_no_more(Some(Start::AfterSequence(2))).await;
}

#[tokio::test]
async fn unauthentic_webhooks_get_401_and_nothing_is_stored() {
    let server = Server::start(&config());
    let now = unix_now();
    let body = br#"{"type":"a.b","timestamp":"2026-11-02T10:00:00Z","data":{}}"#;
    let good = sign_v1("msg_x", now, body);
    let other_key = STANDARD.encode(hmac_sha256(
        b"another-secret-of-24-bytes",
        &content("msg_x", now, body),
    ));
    let stale = now - 301;
    let future = now + 301;
    for (what, id, timestamp, signature) in [
        (
            "wrong secret",
            Some("msg_x"),
            Some(now),
            Some(format!("v1,{other_key}")),
        ),
        (
            "stale",
            Some("msg_x"),
            Some(stale),
            Some(sign_v1("msg_x", stale, body)),
        ),
        (
            "future",
            Some("msg_x"),
            Some(future),
            Some(sign_v1("msg_x", future, body)),
        ),
        ("no id", None, Some(now), Some(good.clone())),
        ("no timestamp", Some("msg_x"), None, Some(good.clone())),
        ("no signature", Some("msg_x"), Some(now), None),
        (
            "unknown version",
            Some("msg_x"),
            Some(now),
            Some(good.replacen("v1,", "v2,", 1)),
        ),
        (
            "malformed base64",
            Some("msg_x"),
            Some(now),
            Some("v1,***".to_owned()),
        ),
        ("another id", Some("msg_y"), Some(now), Some(good.clone())),
    ] {
        let (status, answer) =
            post(&server, "acme", body, id, timestamp, signature.as_deref()).await;
        assert_eq!(
            (status, answer["detail"].clone()),
            (401, json!("verification failed")),
            "{what}"
        );
    }
    // A source without a secret fails closed, and said so at start-up.
    let (status, _) = post(
        &server,
        "unconfigured",
        body,
        Some("msg_x"),
        Some(now),
        Some(&good),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        server
            .logs()
            .contains("no secret is configured: every webhook is rejected"),
        "{}",
        server.logs()
    );
    server.assert_no_more(None).await;
    // The same webhook, signed right, is stored.
    let (status, answer) = post(&server, "acme", body, Some("msg_x"), Some(now), Some(&good)).await;
    assert_eq!(
        (status, answer["sequences"].clone()),
        (200, json!([1])),
        "{answer}"
    );
}
