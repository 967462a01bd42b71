//! Helpers for an adapter's own tests (feature `testing`; enable it on the dev-dependency):
//! webhook requests as the host hands them to an adapter, and provider-style signatures.
//!
//! ```ignore
//! use tributary_plugin_sdk::testing::{sign_hex, webhook};
//!
//! let signature = sign_hex(b"s3cret", &[BODY]);
//! let raw = webhook(BODY).header("X-Acme-Signature", &signature).received_at(1_704_067_200).build();
//! adapter.verify(&Request::new(&raw))?;
//! ```

use tributary_model::v1::{Header, WebhookRequest};
use tributary_model::well_known::Timestamp;

/// A webhook request with `body` and nothing else yet; add headers, a query string and a
/// receive time, then [`WebhookBuilder::build`].
pub fn webhook(body: impl Into<Vec<u8>>) -> WebhookBuilder {
    WebhookBuilder {
        request: WebhookRequest {
            body: body.into(),
            ..Default::default()
        },
    }
}

/// Builds a [`WebhookRequest`] the way the host fills one in.
#[derive(Debug, Clone)]
pub struct WebhookBuilder {
    request: WebhookRequest,
}

impl WebhookBuilder {
    /// Adds a header; its name is lowercased, as the host passes names on (HTTP/2 style).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request.headers.push(Header {
            name: name.to_ascii_lowercase(),
            value: value.to_owned(),
        });
        self
    }

    /// Adds each `(name, value)` pair with [`WebhookBuilder::header`], in order.
    pub fn headers(self, headers: &[(&str, &str)]) -> Self {
        headers
            .iter()
            .fold(self, |builder, (name, value)| builder.header(name, value))
    }

    /// The raw query string, without the `?`.
    pub fn query(mut self, query: &str) -> Self {
        self.request.query = query.to_owned();
        self
    }

    /// When the host received the webhook, in seconds since the Unix epoch.
    pub fn received_at(mut self, seconds: i64) -> Self {
        self.request.received_at = Some(Timestamp { seconds, nanos: 0 });
        self
    }

    /// The request.
    pub fn build(self) -> WebhookRequest {
        self.request
    }
}

/// Lowercase hex HMAC-SHA256 of the concatenated `parts` keyed with `key`: the signature a
/// provider sends with most webhooks.
pub fn sign_hex(key: &[u8], parts: &[&[u8]]) -> String {
    hex::encode(crate::verify::hmac_sha256(key, parts))
}
