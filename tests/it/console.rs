//! The operators' web console and the CLI that follows the stream: a real headless Chromium
//! driven over WebDriver (`chromedriver`) against the real binary, the console's session and
//! CSRF rules over plain HTTP, and `tributary events` against a running server.

mod browser;
mod cli;
mod driver;
mod http;
mod shadow;

use crate::support::Server;

/// The operators' credential: its token is the console's login.
pub const ADMIN_TOKEN: &str = "operators-console-token-0001";
/// A consuming team's credential (no admin scope): refused by the console.
pub const CONSUMER_TOKEN: &str = "billing-console-token-0002";

/// A config with the operators' listener, an admin and a consumer credential, and no rate limit,
/// followed by `sources` (TOML tables).
pub fn console_config(sources: &str) -> String {
    format!(
        "[http]\nrate_limit_per_second = 0\n[ops]\nhttp_listen = \"127.0.0.1:0\"\n\
         [[grpc.credentials]]\nname = \"operators\"\ntoken = \"{ADMIN_TOKEN}\"\nadmin = true\n\
         [[grpc.credentials]]\nname = \"billing\"\ntoken = \"{CONSUMER_TOKEN}\"\n\
         consumers = [\"billing-*\"]\n{sources}"
    )
}

/// The console's base URL on `server`'s operators' listener.
pub fn console_url(server: &Server) -> String {
    format!(
        "http://{}/console",
        server.ops_http.expect("ops_http listener")
    )
}
