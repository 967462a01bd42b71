use tributary_model::v1::{Rejection, WebhookRequest};

use crate::reject;

/// A webhook as the adapter sees it: the raw body plus lookups for headers and query values.
pub struct Request<'a> {
    inner: &'a WebhookRequest,
}

impl<'a> Request<'a> {
    /// Wraps a decoded request.
    pub fn new(inner: &'a WebhookRequest) -> Self {
        Self { inner }
    }

    /// The decoded request message.
    pub fn raw(&self) -> &'a WebhookRequest {
        self.inner
    }

    /// The raw body, byte for byte as received (what signatures cover).
    pub fn body(&self) -> &'a [u8] {
        &self.inner.body
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.inner
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The first query parameter with this name, percent-decoding not applied (Arcadia's
    /// allowed characters need none).
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        self.inner
            .query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    /// Whether the host asked to skip verification (dry runs only).
    pub fn skip_verification(&self) -> bool {
        self.inner.skip_verification
    }

    /// The body parsed as JSON, or a `malformed` rejection saying where it broke.
    pub fn json(&self) -> Result<serde_json::Value, Rejection> {
        serde_json::from_slice(self.body())
            .map_err(|e| reject::malformed(format!("body is not valid JSON: {e}")))
    }
}
