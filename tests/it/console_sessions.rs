//! The console's sessions under abuse, through the real binary: live streams (SSE) end at
//! logout, and failed logins are throttled per client address.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use reqwest::header;

use crate::support::Server;

const ADMIN: &str = "operators-session-token-01";

fn config() -> String {
    format!(
        "[ops]\nhttp_listen = \"127.0.0.1:0\"\n\
         [[grpc.credentials]]\nname = \"ops\"\ntoken = \"{ADMIN}\"\nadmin = true\n"
    )
}

fn client(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(from)
        .build()
        .expect("client")
}

async fn login(client: &reqwest::Client, base: &str, token: &str) -> (u16, Option<String>) {
    let response = client
        .post(format!("{base}/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("login");
    let cookie = response.headers().get(header::SET_COOKIE).map(|value| {
        let value = value.to_str().expect("ascii");
        value.split(';').next().expect("pair").to_owned()
    });
    (response.status().as_u16(), cookie)
}

#[tokio::test]
async fn live_streams_end_at_logout() {
    let server = Server::start(&config());
    let base = format!("http://{}/console", server.ops_http.expect("ops"));
    let http = client(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (status, cookie) = login(&http, &base, ADMIN).await;
    assert_eq!(status, 303);
    let cookie = cookie.expect("session");
    let mut streams = Vec::new();
    for path in ["/tail/stream", "/overview/live"] {
        let response = http
            .get(format!("{base}{path}"))
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .expect("open the stream");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        streams.push((path, response));
    }
    let page = http
        .get(format!("{base}/"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("body");
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a csrf field") + marker.len();
    let logout = http
        .post(format!("{base}/logout"))
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf={}", &page[start..start + 64]))
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status().as_u16(), 303);
    for (path, mut stream) in streams {
        // Whatever was already sent is read; then the server closes the stream.
        let ended = tokio::time::timeout(Duration::from_secs(3), async {
            while let Ok(Some(_)) = stream.chunk().await {}
        })
        .await;
        assert!(ended.is_ok(), "{path} still open 3 s after the logout");
    }
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address() {
    let server = Server::start(&config());
    let base = format!("http://{}/console", server.ops_http.expect("ops"));
    let guesser = client(IpAddr::V4(Ipv4Addr::LOCALHOST));
    for n in 0..5 {
        let (status, _) = login(&guesser, &base, &format!("guess-{n:020}")).await;
        assert_eq!(status, 401, "guess {n}");
    }
    let (status, _) = login(&guesser, &base, "guess-sixth-000000000000").await;
    assert_eq!(status, 429, "the sixth guess");
    let (status, cookie) = login(&guesser, &base, ADMIN).await;
    assert_eq!(
        (status, cookie),
        (429, None),
        "even a right token, from that address"
    );
    let operator = client(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let (status, cookie) = login(&operator, &base, ADMIN).await;
    assert_eq!(status, 303, "another address logs in");
    assert!(cookie.is_some());
}
