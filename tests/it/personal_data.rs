//! The personal_data scope on every raw path, through the real binary: `GetRawWebhook`, dead
//! letters' raw items and the console's raw view are in clear only for a credential with
//! `personal_data = true`; an administrator without it gets PERMISSION_DENIED (403 in the
//! console) or the redacted form.

use reqwest::{StatusCode, header};
use serde_json::json;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tributary::proto::admin_client::AdminClient;
use tributary_model::v1::{GetRawWebhookRequest, ListDeadLettersRequest, get_raw_webhook_request};

use crate::support::fixtures::{hmac_hex, unix_now};
use crate::support::{Server, arcadia_webhook};

const OPS: &str = "operators-token-without-pd-01";
const DPO: &str = "operators-token-with-pd-0002";

fn config() -> String {
    format!(
        "[ops]\nhttp_listen = \"127.0.0.1:0\"\n\
         [[grpc.credentials]]\nname = \"ops\"\ntoken = \"{OPS}\"\nadmin = true\n\
         [[grpc.credentials]]\nname = \"dpo\"\ntoken = \"{DPO}\"\nadmin = true\npersonal_data = true\n\
         [sources.arcadia]\nadapter = \"arcadia\"\nconfig = {{ verification = {{ disabled = true }} }}\n\
         [sources.klavi]\nadapter = \"klavi\"\nconfig = {{ secret_key = \"klavi-pd-secret\" }}\n"
    )
}

fn request<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    request
}

async fn login(server: &Server, token: &str) -> String {
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!(
            "http://{}/console/login",
            server.ops_http.expect("ops")
        ))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("login");
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_owned();
    cookie.split(';').next().expect("name=value").to_owned()
}

#[tokio::test]
async fn raw_bodies_need_the_personal_data_scope_on_every_path() {
    let server = Server::start(&config());
    let sent = arcadia_webhook("whk_pd_1");
    let (status, answer) = server.post("arcadia", &sent, &[]).await;
    assert_eq!(status, 200, "{answer}");
    let sequence = answer["sequences"][0].as_u64().expect("a sequence");
    let admin = AdminClient::new(server.channel().await);
    let raw = |token: &'static str| {
        let mut admin = admin.clone();
        async move {
            admin
                .get_raw_webhook(request(
                    GetRawWebhookRequest {
                        target: Some(get_raw_webhook_request::Target::Sequence(sequence)),
                    },
                    token,
                ))
                .await
        }
    };

    // GetRawWebhook.
    let denied = raw(OPS).await.expect_err("an admin without personal_data");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains("no personal_data scope"),
        "{}",
        denied.message()
    );
    assert_eq!(
        raw(DPO)
            .await
            .expect("with personal_data")
            .into_inner()
            .body,
        sent
    );

    // Dead letters' raw items: redacted for both unless asked unredacted, which needs the scope.
    let body = json!([{"partnerAppId": "1", "eventId": "e-1", "eventType": "analysis",
        "eventName": "analysis_finished", "eventTime": "2022-06-25T20:08:17.848Z",
        "payload": {"personalTaxId": "25872252137", "linkId": "l-1"}}])
    .to_string();
    let signature = hmac_hex("klavi-pd-secret", body.as_bytes());
    let now = unix_now().to_string();
    let signed = [
        ("X-Klavi-Signature", signature.as_str()),
        ("X-Klavi-Timestamp", now.as_str()),
    ];
    let (status, answer) = server.post("klavi", body.as_bytes(), &signed).await;
    assert_eq!((status, answer["dead_lettered"].clone()), (200, json!(1)));
    let list = |token: &'static str, unredacted: bool| {
        let mut admin = admin.clone();
        async move {
            admin
                .list_dead_letters(request(
                    ListDeadLettersRequest {
                        include_raw: true,
                        unredacted,
                        ..ListDeadLettersRequest::default()
                    },
                    token,
                ))
                .await
                .map(|response| {
                    let raw = &response.into_inner().dead_letters[0].raw;
                    serde_json::from_slice::<serde_json::Value>(raw).expect("json")["payload"]
                        ["personalTaxId"]
                        .clone()
                })
        }
    };
    assert_eq!(
        list(OPS, false).await.expect("redacted"),
        json!("[redacted]")
    );
    assert_eq!(
        list(DPO, false).await.expect("redacted"),
        json!("[redacted]")
    );
    let denied = list(OPS, true)
        .await
        .expect_err("unredacted without the scope");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(
        list(DPO, true).await.expect("in clear"),
        json!("25872252137")
    );

    // The console's raw view.
    let page = |cookie: String| async move {
        let response = reqwest::Client::new()
            .get(format!(
                "http://{}/console/raw/{sequence}",
                server.ops_http.expect("ops")
            ))
            .header(header::COOKIE, cookie)
            .send()
            .await
            .expect("GET");
        (response.status(), response.text().await.expect("body"))
    };
    let (status, text) = page(login(&server, OPS).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(text.contains("no personal_data scope"));
    assert!(!text.contains("whk_pd_1"), "the body is not shown");
    let (status, text) = page(login(&server, DPO).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("whk_pd_1"), "the body is shown");
}
