//! The console's access rules over plain HTTP: pages need a session (else a redirect to the
//! login page), the login needs an admin credential's token, the cookie's attributes, every
//! POST needs the session's CSRF token and the console's origin, and where it is served.

use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode, header};

use super::{ADMIN_TOKEN, CONSUMER_TOKEN, console_config, console_url};
use crate::support::Server;

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// Logs in with `token`: the status, and the `Set-Cookie` header when one was set.
async fn login(base: &str, token: &str) -> (StatusCode, Option<String>) {
    let response = client()
        .post(format!("{base}/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("login");
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().expect("ascii").to_owned());
    (response.status(), cookie)
}

/// The CSRF token in a console page.
fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a csrf field") + marker.len();
    page[start..start + 64].to_owned()
}

#[tokio::test]
async fn sessions_csrf_and_credentials() {
    let server = Server::start(&console_config(""));
    let base = console_url(&server);
    let http = client();

    // No cookie: pages redirect to the login page, live streams are refused.
    for path in ["/", "/sources", "/tail", "/dead-letters", "/consumers"] {
        let response = http.get(format!("{base}{path}")).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()[header::LOCATION], "/console/login");
    }
    for path in ["/tail/stream", "/overview/live"] {
        let status = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("GET")
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let status = http
        .post(format!("{base}/sources/reload"))
        .send()
        .await
        .expect("POST")
        .status();
    assert_eq!(status, StatusCode::SEE_OTHER, "a POST without a session");

    // Unknown token 401, a consumer credential 403; neither gets a cookie.
    assert_eq!(
        login(&base, "someone-elses-token-1234").await,
        (StatusCode::UNAUTHORIZED, None)
    );
    assert_eq!(
        login(&base, CONSUMER_TOKEN).await,
        (StatusCode::FORBIDDEN, None)
    );
    let (status, cookie) = login(&base, ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("a session cookie");
    let (pair, attributes) = cookie.split_once("; ").expect("attributes");
    let (name, id) = pair.split_once('=').expect("name=value");
    assert_eq!(name, "tributary_console");
    assert_eq!(id.len(), 64, "256 random bits, hex");
    assert_eq!(
        attributes, "Path=/console; Max-Age=43200; HttpOnly; SameSite=Strict",
        "no Secure without TLS (loopback listener)"
    );

    let page = http
        .get(format!("{base}/consumers"))
        .header(header::COOKIE, pair)
        .send()
        .await
        .expect("GET");
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let csrf = csrf_of(&page.text().await.expect("body"));

    let post = |body: String, origin: Option<&'static str>| {
        let mut request = http
            .post(format!("{base}/sources/reload"))
            .header(header::COOKIE, pair)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        async move { request.send().await.expect("POST").status() }
    };
    assert_eq!(post(String::new(), None).await, StatusCode::FORBIDDEN);
    assert_eq!(
        post(format!("csrf={}", "0".repeat(64)), None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(format!("csrf={csrf}"), Some("http://evil.example")).await,
        StatusCode::FORBIDDEN,
        "another origin, even with the token"
    );
    assert_eq!(
        post(format!("csrf={csrf}"), None).await,
        StatusCode::SEE_OTHER
    );
    // The reload's outcome is shown once on the next page.
    let sources = http
        .get(format!("{base}/sources"))
        .header(header::COOKIE, pair)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        sources.contains("<strong>Reloaded: nothing changed</strong>"),
        "{sources}"
    );

    // Logging out ends the session.
    let logout = http
        .post(format!("{base}/logout"))
        .header(header::COOKIE, pair)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    let after = http
        .get(format!("{base}/"))
        .header(header::COOKIE, pair)
        .send()
        .await
        .expect("GET");
    assert_eq!(after.status(), StatusCode::SEE_OTHER);

    // The webhook port does not serve the console when the operators have a listener.
    let (status, _) = server.get("/console/").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_console_needs_an_admin_credential_and_a_loopback_or_ops_listener() {
    // No credentials at all: no console (no token could log in).
    let server = Server::start("[ops]\nhttp_listen = \"127.0.0.1:0\"\n");
    let status = client()
        .get(format!("{}/login", console_url(&server)))
        .send()
        .await
        .expect("GET")
        .status();
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        server
            .logs()
            .contains("web console off: it needs a [[grpc.credentials]] with admin = true"),
        "{}",
        server.logs()
    );
    drop(server);

    // No ops listener: on the (loopback) webhook listener.
    let server = Server::start(&format!(
        "[[grpc.credentials]]\nname = \"operators\"\ntoken = \"{ADMIN_TOKEN}\"\nadmin = true\n"
    ));
    let (status, body) = server.get("/console/login").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<label for=\"token\">Admin token</label>"),
        "{body}"
    );
    // The login page says nothing about the installation.
    assert!(!body.contains("sources"), "{body}");
    // `GET /` leads to the console where it is served.
    let root = client().get(server.url("/")).send().await.expect("GET /");
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(root.headers()[header::LOCATION], "/console/");
    assert!(
        server.logs().contains("reading the config file config="),
        "the start-up log names the config file: {}",
        server.logs()
    );
}

/// The raw webhook of an event, decrypted, for a logged-in administrator with the
/// personal_data scope; the tail's script links to it.
#[tokio::test]
async fn an_event_opens_its_raw_webhook() {
    let config = console_config(&crate::support::arcadia_source("")).replacen(
        "admin = true\n",
        "admin = true\npersonal_data = true\n",
        1,
    );
    let server = Server::start(&config);
    let body = crate::support::arcadia_webhook("whk_console_raw");
    let (status, answer) = server
        .post("arcadia", &body, &crate::support::ARCADIA_AUTH)
        .await;
    assert_eq!(status, 200, "{answer}");
    let base = console_url(&server);
    let get = |path: &str, cookie: Option<String>| {
        let mut request = client().get(format!("{base}{path}"));
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send()
    };
    let anonymous = get("/raw/1", None).await.expect("GET");
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    let (_, cookie) = login(&base, ADMIN_TOKEN).await;
    let pair = cookie
        .expect("a session cookie")
        .split_once("; ")
        .expect("attributes")
        .0
        .to_owned();
    let page = get("/raw/1", Some(pair.clone())).await.expect("GET");
    assert_eq!(page.status(), StatusCode::OK);
    let text = page.text().await.expect("body");
    assert!(text.contains("Raw webhook of event #1"), "{text}");
    assert!(text.contains("whk_console_raw"), "{text}");
    assert!(
        text.contains("x-arcadia-token"),
        "named as withheld: {text}"
    );
    assert!(
        !text.contains(crate::support::ARCADIA_TOKEN),
        "the shared token is never archived"
    );
    let missing = get("/raw/99", Some(pair)).await.expect("GET");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let script = get("/static/console.js", None).await.expect("GET");
    assert!(script.text().await.expect("js").contains("/console/raw/"));
}
