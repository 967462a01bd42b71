//! Logging in and sessions: the login page takes an admin credential's token; a session is a
//! random id in a cookie (HttpOnly, SameSite=Strict, Secure over TLS) that expires, held in a
//! bounded in-memory table (a restart logs everyone out), with a CSRF token per session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::layout::{Flash, bare_page};
use super::{Action, Console, Form, Operator};
use crate::auth::Principal;

/// A session lasts this long after its last request...
const IDLE: Duration = Duration::from_secs(60 * 60);
/// ...and never longer than this after the login.
const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions held at once; a login beyond it ends the least recently used one.
const MAX_SESSIONS: usize = 64;
/// The cookie's name (`__Host-` over TLS: the browser then insists on Secure, Path=/ and no
/// Domain, so no other host or path can plant it).
const COOKIE: &str = "tributary_console";
const SECURE_COOKIE: &str = "__Host-tributary_console";

/// A session's key in the table: the SHA-256 of the cookie's id, so the table (and a timing
/// side channel on it) never holds the id itself.
pub type Key = [u8; 32];

/// Failed logins allowed per client address at once...
const LOGIN_FAILURES_BURST: u32 = 5;
/// ...and then per minute.
const LOGIN_FAILURES_PER_MINUTE: u32 = 5;
/// How often an open live stream checks that its session has not expired.
const SESSION_CHECK: Duration = Duration::from_secs(5);

struct Session {
    csrf: String,
    principal: Arc<Principal>,
    created: Instant,
    seen: Instant,
    flash: Option<Flash>,
    /// Dropped with the session (logout, expiry, eviction): its live streams end.
    ended: tokio::sync::watch::Sender<()>,
}

/// The live sessions, and the failed logins per client address.
pub struct Sessions {
    table: Mutex<HashMap<Key, Session>>,
    login_failures: crate::rate_limit::AddressThrottle,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            table: Mutex::new(HashMap::new()),
            login_failures: crate::rate_limit::AddressThrottle::new(
                LOGIN_FAILURES_PER_MINUTE,
                LOGIN_FAILURES_BURST,
            ),
        }
    }
}

impl Operator {
    /// Resolves when this operator's session ends (logout, expiry or eviction): live streams
    /// (SSE) stop there instead of outliving the session.
    pub fn session_end(&self, console: &Console) -> impl Future<Output = ()> + Send + 'static {
        let console = console.clone();
        let key = self.key;
        async move {
            let Some(mut ended) = console.inner.sessions.watch(&key) else {
                return;
            };
            loop {
                tokio::select! {
                    // Only an error can come: the sender went with the session.
                    _ = ended.changed() => return,
                    () = tokio::time::sleep(SESSION_CHECK) => {
                        if !console.inner.sessions.alive(&key) {
                            return;
                        }
                    }
                }
            }
        }
    }
}

fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

fn key_of(id: &str) -> Key {
    Sha256::digest(id.as_bytes()).into()
}

/// Whether two tokens are equal, in time independent of where they differ.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// Whether a POST comes from the console's own pages: a browser names the page's origin in
/// `Origin` (and `Sec-Fetch-Site`) on every form POST; a cross-site one is refused even before
/// the CSRF token is looked at. Clients that send neither (scripts) rely on the token alone.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    match (value("origin"), value("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Session>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that errs once session `key` is gone; `None` if it is already.
    fn watch(&self, key: &Key) -> Option<tokio::sync::watch::Receiver<()>> {
        self.lock()
            .get(key)
            .map(|session| session.ended.subscribe())
    }

    /// Whether session `key` is still live (without touching it); an expired one is removed.
    fn alive(&self, key: &Key) -> bool {
        let now = Instant::now();
        let mut table = self.lock();
        match table.get(key) {
            Some(session) if live(session, now) => true,
            Some(_) => {
                table.remove(key);
                false
            }
            None => false,
        }
    }

    /// Starts a session for `principal`; the cookie's id.
    fn start(&self, principal: Arc<Principal>) -> Option<String> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut table = self.lock();
        table.retain(|_, s| live(s, now));
        if table.len() >= MAX_SESSIONS
            && let Some(oldest) = table.iter().min_by_key(|(_, s)| s.seen).map(|(k, _)| *k)
        {
            table.remove(&oldest);
        }
        table.insert(
            key_of(&id),
            Session {
                csrf,
                principal,
                created: now,
                seen: now,
                flash: None,
                ended: tokio::sync::watch::channel(()).0,
            },
        );
        Some(id)
    }

    /// The operator whose live session cookie `headers` carry (and the session is touched).
    pub fn operator(&self, headers: &HeaderMap) -> Option<Operator> {
        let id = cookie_value(headers)?;
        let key = key_of(&id);
        let now = Instant::now();
        let mut table = self.lock();
        let session = table.get_mut(&key)?;
        if !live(session, now) {
            table.remove(&key);
            return None;
        }
        session.seen = now;
        Some(Operator {
            key,
            csrf: session.csrf.clone(),
            principal: Arc::clone(&session.principal),
            client: None,
        })
    }

    fn end(&self, key: &Key) {
        self.lock().remove(key);
    }

    /// Leaves a message for the operator's next page (after a POST's redirect).
    pub fn flash(&self, key: &Key, flash: Flash) {
        if let Some(session) = self.lock().get_mut(key) {
            session.flash = Some(flash);
        }
    }

    /// The message left for this page, once.
    pub fn take_flash(&self, key: &Key) -> Option<Flash> {
        self.lock().get_mut(key)?.flash.take()
    }
}

fn live(session: &Session, now: Instant) -> bool {
    now.duration_since(session.seen) < IDLE && now.duration_since(session.created) < LIFETIME
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE || *name == SECURE_COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn set_cookie(secure: bool, value: &str, max_age: u64) -> Option<HeaderValue> {
    let text = if secure {
        format!(
            "{SECURE_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict; Secure"
        )
    } else {
        format!("{COOKIE}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict")
    };
    HeaderValue::from_str(&text).ok()
}

/// `GET /console/login`.
pub async fn login_page() -> Response {
    login_form(None, StatusCode::OK)
}

/// The login page. It says nothing about the installation (sources, versions): anyone who can
/// reach the console sees it.
fn login_form(error: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        main class="login" {
            h1 { "Tributary console" }
            p { "Log in with the token of a credential that has the admin scope "
                code { "([[grpc.credentials]] admin = true)" } "." }
            @if let Some(error) = error {
                p class="flash error" role="alert" { (error) }
            }
            form method="post" action="/console/login" {
                label for="token" { "Admin token" }
                input id="token" name="token" type="password" autocomplete="current-password"
                    required autofocus;
                button type="submit" { "Log in" }
            }
        }
    };
    (status, bare_page("Log in", body)).into_response()
}

/// `POST /console/login`: a configured credential with the admin scope starts a session;
/// anything else is answered 401 (unknown token) or 403 (no admin scope), after the same
/// constant-time comparison the gRPC interceptor makes.
pub async fn login(
    State(console): State<Console>,
    client: Option<axum::Extension<crate::server::http::ClientAddr>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    let client = client.map(|axum::Extension(client)| client.0);
    let audit = |credential: &str, action: &'static str, outcome: &str| {
        let record = crate::audit::Record {
            credential: credential.to_owned(),
            client,
            action,
            target: String::new(),
            outcome: outcome.to_owned(),
        };
        let log = std::sync::Arc::clone(&console.app().audit);
        async move { log.record(record).await }
    };
    let address = client.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    if let Err(wait) = console.inner.sessions.login_failures.check(address) {
        if let Err(error) = audit("", "console.login_failed", "rate_limited").await {
            tracing::error!(%error, "audit entry not written");
        }
        let mut response = login_form(
            Some("Too many failed logins from this address; try again later."),
            StatusCode::TOO_MANY_REQUESTS,
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return response;
    }
    let form = Form::parse(&body);
    let token = form.get("token");
    let Some(principal) = console.inner.auth.credential_for(token) else {
        tracing::warn!("console login refused: unknown token");
        console.inner.sessions.login_failures.failed(address);
        if let Err(error) = audit("", "console.login_failed", "unauthenticated").await {
            tracing::error!(%error, "audit entry not written");
        }
        return login_form(Some("That token is not valid."), StatusCode::UNAUTHORIZED);
    };
    if !principal.is_admin() {
        tracing::warn!(credential = %principal.name, "console login refused: no admin scope");
        console.inner.sessions.login_failures.failed(address);
        if let Err(error) =
            audit(&principal.name, "console.login_failed", "permission_denied").await
        {
            tracing::error!(%error, "audit entry not written");
        }
        return login_form(
            Some("That credential has no admin scope."),
            StatusCode::FORBIDDEN,
        );
    }
    let name = principal.name.clone();
    // A session starts only once its login is on record.
    if let Err(error) = audit(&name, "console.login", "ok").await {
        tracing::error!(%error, "audit entry not written: console login refused");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit log cannot be written",
        )
            .into_response();
    }
    let Some(id) = console.inner.sessions.start(principal) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no randomness").into_response();
    };
    tracing::info!(credential = %name, "console login");
    let mut response = Redirect::to("/console/").into_response();
    if let Some(cookie) = set_cookie(console.inner.secure, &id, LIFETIME.as_secs()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /console/logout`.
pub async fn logout(State(console): State<Console>, action: Action) -> Response {
    console.inner.sessions.end(&action.operator.key);
    action
        .operator
        .audit_or_log(&console, "console.logout", "", "ok")
        .await;
    let mut response = Redirect::to("/console/login").into_response();
    if let Some(cookie) = set_cookie(console.inner.secure, "", 0) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn origin_checks() {
        assert!(same_origin(&headers(&[])));
        assert!(same_origin(&headers(&[
            ("origin", "http://127.0.0.1:9090"),
            ("host", "127.0.0.1:9090")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:9090")
        ])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
    }

    #[test]
    fn cookies_and_tokens() {
        let h = headers(&[("cookie", "a=b; tributary_console=abc123; c=d")]);
        assert_eq!(cookie_value(&h).as_deref(), Some("abc123"));
        assert!(cookie_value(&headers(&[("cookie", "x=y")])).is_none());
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abd", "abc"));
        assert!(!tokens_match("", ""));
        let secure = set_cookie(true, "v", 10).expect("header");
        assert_eq!(
            secure.to_str().expect("ascii"),
            "__Host-tributary_console=v; Path=/; Max-Age=10; HttpOnly; SameSite=Strict; Secure"
        );
    }
}
