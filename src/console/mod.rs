//! The operators' web console (`/console/`): what is arriving, what was rejected and why, what
//! is stuck in dead letters and which consumer is behind, with the actions to fix it.
//!
//! Server-rendered HTML ([`maud`]), one small script (`assets/console.js`, for the live parts
//! over Server-Sent Events) and one stylesheet, both compiled into the binary. It reads and acts
//! through the same calls as the gRPC services ([`AdminService`], [`AdaptersService`],
//! [`StreamService::open`]): there is no second implementation of admin logic.
//!
//! Access: a login page takes the token of a `[[grpc.credentials]]` with `admin = true`
//! ([`Authenticator::credential_for`]); a random session id goes in an HttpOnly,
//! SameSite=Strict cookie (Secure over TLS); every POST carries the session's CSRF token and
//! is refused (403) without it or from another origin. Where it is served:
//! [`crate::server`] mounts it on `[ops] http_listen`, or on the webhook listener while that
//! is loopback (docs/operations.md).

mod audit;
mod consumers;
mod dead_letters;
mod events;
mod history;
mod layout;
mod overview;
mod plot;
mod provider_health;
mod raw;
mod rejections;
mod replay;
mod session;
mod shadow;
mod sources;
mod tail;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::admin::AdminService;
use crate::admin::adapters::AdaptersService;
use crate::app::App;
use crate::auth::{Authenticator, Principal};
use crate::stream::StreamService;
use history::History;
use session::Sessions;

/// Where the console is mounted.
pub const PREFIX: &str = "/console";

/// Everything the console's handlers share. Cheap to clone.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    app: App,
    auth: Authenticator,
    admin: AdminService,
    adapters: AdaptersService,
    stream: StreamService,
    sessions: Sessions,
    history: History,
    /// The session cookie gets `Secure` (the listener serves TLS).
    secure: bool,
    /// The embedded log's file, whose size the overview shows (absent with NATS).
    log_file: Option<PathBuf>,
}

impl Console {
    /// The console over `app`, admitting administrators of `auth`. `secure`: the listener
    /// serves TLS. `log_file`: the embedded log's file or directory, if any. Starts the sampler that keeps
    /// the last hour of per-source rates and consumer lags (it stops with the service).
    pub fn new(app: App, auth: Authenticator, secure: bool, log_file: Option<PathBuf>) -> Self {
        let history = History::default();
        history.spawn_sampler(app.clone());
        std::sync::LazyLock::force(&overview::STARTED);
        Self {
            inner: Arc::new(Inner {
                admin: AdminService::new(app.clone()),
                adapters: AdaptersService::new(app.clone()),
                stream: StreamService::new(app.clone()),
                app,
                auth,
                sessions: Sessions::default(),
                history,
                secure,
                log_file,
            }),
        }
    }

    /// The console's routes, under [`PREFIX`], with its security headers.
    pub fn router(self) -> Router {
        let routes = [
            ("/", get(overview::page)),
            ("/overview/live", get(overview::live)),
            ("/login", get(session::login_page).post(session::login)),
            ("/logout", post(session::logout)),
            ("/sources", get(sources::page)),
            ("/sources/reload", post(sources::reload)),
            ("/shadow", get(shadow::page)),
            ("/shadow/start", post(shadow::start)),
            ("/shadow/promote", post(shadow::promote)),
            ("/shadow/abort", post(shadow::abort)),
            ("/tail", get(tail::page)),
            ("/tail/stream", get(tail::stream)),
            ("/raw/{sequence}", get(raw::page)),
            ("/dead-letters", get(dead_letters::page)),
            ("/dead-letters/{id}", get(dead_letters::detail)),
            ("/dead-letters/redrive", post(dead_letters::redrive)),
            ("/consumers", get(consumers::page)),
            ("/consumers/reset", post(consumers::reset)),
            ("/consumers/delete", post(consumers::delete)),
            ("/audit", get(audit::page)),
            ("/rejections", get(rejections::page)),
            ("/events/{sequence}", get(events::page)),
            ("/search", get(events::search)),
            ("/replay", get(replay::page).post(replay::run)),
            ("/static/console.css", get(stylesheet)),
            ("/static/console.js", get(script)),
            ("/static/favicon.svg", get(favicon)),
        ];
        let mut router = Router::new().route(PREFIX, get(|| async { Redirect::to("/console/") }));
        for (path, handler) in routes {
            router = router.route(&format!("{PREFIX}{path}"), handler);
        }
        router
            .layer(axum::middleware::map_response(security_headers))
            .with_state(self)
    }

    fn app(&self) -> &App {
        &self.inner.app
    }
}

/// No framing, no sniffing, no referrer to other sites, nothing cached, and only the console's own script and
/// stylesheet may run (no inline script, so injected markup cannot execute).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Not "no-referrer": with it, browsers send `Origin: null` on form POSTs.
    set(headers, header::REFERRER_POLICY, "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}

async fn favicon() -> Response {
    asset("image/svg+xml", include_str!("assets/favicon.svg"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// A logged-in operator: the request carried a live session cookie. Pages without one are
/// redirected to the login page; live streams get 401.
pub struct Operator {
    /// The session's key (a digest of the cookie's id).
    key: session::Key,
    /// The session's CSRF token, put in every form.
    csrf: String,
    /// The credential that logged in.
    principal: Arc<Principal>,
    /// The client's address (the TCP peer), for the audit log.
    client: Option<std::net::IpAddr>,
}

impl Operator {
    /// Records `action` on `target` with `outcome` (`ok` or an error label) in the audit log.
    async fn audit(
        &self,
        console: &Console,
        action: &'static str,
        target: impl Into<String>,
        outcome: impl Into<String>,
    ) -> Result<u64, crate::audit::AuditError> {
        console
            .app()
            .audit
            .record(crate::audit::Record {
                credential: self.principal.name.clone(),
                client: self.client,
                action,
                target: target.into(),
                outcome: outcome.into(),
            })
            .await
    }

    /// [`Self::audit`] for an action already done: a failure is logged.
    async fn audit_or_log(
        &self,
        console: &Console,
        action: &'static str,
        target: impl Into<String>,
        outcome: impl Into<String>,
    ) {
        if let Err(error) = self.audit(console, action, target, outcome).await {
            tracing::error!(%error, "audit entry not written");
        }
    }
}

impl FromRequestParts<Console> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        if let Some(mut operator) = console.inner.sessions.operator(&parts.headers) {
            operator.client = parts
                .extensions
                .get::<crate::server::http::ClientAddr>()
                .map(|client| client.0);
            return Ok(operator);
        }
        let live = parts.uri.path().ends_with("/stream") || parts.uri.path().ends_with("/live");
        if live {
            return Err((StatusCode::UNAUTHORIZED, "log in first").into_response());
        }
        Err(Redirect::to("/console/login").into_response())
    }
}

/// A POSTed form's fields, in order (a field may repeat, like the ids of a selection).
pub struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; empty when absent.
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or_default()
    }

    /// Every value of `name`.
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.trim())
    }
}

/// A checked POST: a logged-in operator, a form whose `csrf` field is the session's token, sent
/// from the console's own origin. Anything else is 403 (or a redirect to log in).
pub struct Action {
    operator: Operator,
    form: Form,
}

impl axum::extract::FromRequest<Console> for Action {
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        console: &Console,
    ) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let operator = Operator::from_request_parts(&mut parts, console).await?;
        let forbidden = |why: &str| (StatusCode::FORBIDDEN, why.to_owned()).into_response();
        if !session::same_origin(&parts.headers) {
            return Err(forbidden("cross-site request refused"));
        }
        let body = axum::body::to_bytes(body, 64 * 1024)
            .await
            .map_err(|_| forbidden("unreadable form"))?;
        let form = Form::parse(&body);
        if !session::tokens_match(form.get("csrf"), &operator.csrf) {
            return Err(forbidden("missing or wrong CSRF token: reload the page"));
        }
        Ok(Action { operator, form })
    }
}

/// How often live parts refresh.
const LIVE_INTERVAL: Duration = Duration::from_secs(2);
