use std::sync::OnceLock;

use tributary_model::v1::{Header, Rejection, Stage, WebhookRequest};
use tributary_model::well_known::Timestamp;
use tributary_plugin_abi::{
    ByteSlice, HeaderView, REQUEST_HAS_RECEIVED_AT, REQUEST_SKIP_VERIFICATION, RequestView,
};

use crate::reject;

/// A webhook as the adapter sees it: the raw body plus lookups for headers and query values.
///
/// Borrows the request either from a decoded `WebhookRequest` ([`Request::new`], tests and
/// in-process callers) or, across the plugin boundary, straight from the host's memory (ABI v2
/// passes a `RequestView`): nothing is decoded or copied on the way in.
pub struct Request<'a> {
    source: &'a str,
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: Headers<'a>,
    body: &'a [u8],
    received_at: Option<Timestamp>,
    skip_verification: bool,
    stage: Stage,
    /// The message this request was made from, if any.
    message: Option<&'a WebhookRequest>,
    /// The message built on first use of [`Request::raw`] for a request from a view.
    built: OnceLock<WebhookRequest>,
}

/// Header (name, value) pairs: the message's own, or checked UTF-8 from a view.
enum Headers<'a> {
    Message(&'a [Header]),
    Pairs(Vec<(&'a str, &'a str)>),
}

impl<'a> Request<'a> {
    /// Wraps a decoded request.
    pub fn new(inner: &'a WebhookRequest) -> Self {
        Self {
            source: &inner.source,
            method: &inner.method,
            path: &inner.path,
            query: &inner.query,
            headers: Headers::Message(&inner.headers),
            body: &inner.body,
            received_at: inner.received_at,
            skip_verification: inner.skip_verification,
            stage: inner.stage(),
            message: Some(inner),
            built: OnceLock::new(),
        }
    }

    /// Borrows a request the host passed across the C boundary (ABI v2). Fails when a text
    /// field is not UTF-8 or the stage is unknown.
    ///
    /// # Safety
    /// Every pointer of `view` must be valid for reads of its length (or null with length 0)
    /// for `'a`, and the memory must not change during `'a`.
    pub(crate) unsafe fn from_view(view: &'a RequestView) -> Result<Self, String> {
        // SAFETY: forwarded from this function's contract.
        let text = |field: &'static str, slice: ByteSlice| -> Result<&'a str, String> {
            // SAFETY: forwarded from this function's contract.
            let bytes = unsafe { bytes(slice) };
            std::str::from_utf8(bytes).map_err(|_| format!("request {field} is not UTF-8"))
        };
        let views: &'a [HeaderView] = if view.headers.is_null() || view.headers_len == 0 {
            &[]
        } else {
            // SAFETY: the host passes `headers_len` initialised headers valid for `'a`.
            unsafe { std::slice::from_raw_parts(view.headers, view.headers_len) }
        };
        let headers = views
            .iter()
            .map(|h| Ok((text("header name", h.name)?, text("header value", h.value)?)))
            .collect::<Result<Vec<_>, String>>()?;
        let stage = i32::try_from(view.stage)
            .ok()
            .and_then(|stage| Stage::try_from(stage).ok())
            .ok_or_else(|| format!("unknown request stage {}", view.stage))?;
        Ok(Self {
            source: text("source", view.source)?,
            method: text("method", view.method)?,
            path: text("path", view.path)?,
            query: text("query", view.query)?,
            headers: Headers::Pairs(headers),
            // SAFETY: forwarded from this function's contract.
            body: unsafe { bytes(view.body) },
            received_at: (view.flags & REQUEST_HAS_RECEIVED_AT != 0).then_some(Timestamp {
                seconds: view.received_at_seconds,
                nanos: view.received_at_nanos,
            }),
            skip_verification: view.flags & REQUEST_SKIP_VERIFICATION != 0,
            stage,
            message: None,
            built: OnceLock::new(),
        })
    }

    /// The request as a `WebhookRequest` message. Across the plugin boundary the message is
    /// built (body copied) on first use: prefer the accessors ([`Request::body`],
    /// [`Request::header`], [`Request::received_at`]...), which borrow.
    pub fn raw(&self) -> &WebhookRequest {
        if let Some(message) = self.message {
            return message;
        }
        self.built.get_or_init(|| WebhookRequest {
            source: self.source.to_owned(),
            method: self.method.to_owned(),
            path: self.path.to_owned(),
            query: self.query.to_owned(),
            headers: self
                .headers()
                .map(|(name, value)| Header {
                    name: name.to_owned(),
                    value: value.to_owned(),
                })
                .collect(),
            body: self.body.to_vec(),
            received_at: self.received_at,
            skip_verification: self.skip_verification,
            stage: self.stage as i32,
        })
    }

    /// The source that received the webhook.
    pub fn source(&self) -> &'a str {
        self.source
    }

    /// The HTTP method.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request path.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The raw query string, without '?'.
    pub fn query(&self) -> &'a str {
        self.query
    }

    /// The raw body, byte for byte as received (what signatures cover).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Every header as (name, value), in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        let (message, pairs) = match &self.headers {
            Headers::Message(headers) => (*headers, &[][..]),
            Headers::Pairs(pairs) => (&[][..], pairs.as_slice()),
        };
        message
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .chain(pairs.iter().copied())
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        match &self.headers {
            Headers::Message(headers) => headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str()),
            Headers::Pairs(pairs) => pairs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, value)| *value),
        }
    }

    /// The first query parameter with this name, percent-decoding not applied (Arcadia's
    /// allowed characters need none).
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    /// When the host received the webhook (what signed timestamps are checked against); `None`
    /// when the host gave no time.
    pub fn received_at(&self) -> Option<&Timestamp> {
        self.received_at.as_ref()
    }

    /// Which part of the work the host asks for (verify, normalize, or both).
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Whether the host asked to skip verification (dry runs only).
    pub fn skip_verification(&self) -> bool {
        self.skip_verification
    }

    /// The body parsed as JSON, or a `malformed` rejection saying where it broke.
    pub fn json(&self) -> Result<serde_json::Value, Rejection> {
        serde_json::from_slice(self.body())
            .map_err(|e| reject::malformed(format!("body is not valid JSON: {e}")))
    }
}

/// The bytes of a slice the host passed.
///
/// # Safety
/// `slice.ptr` must be valid for reads of `slice.len` bytes for `'a` (or null with length 0).
unsafe fn bytes<'a>(slice: ByteSlice) -> &'a [u8] {
    if slice.ptr.is_null() || slice.len == 0 {
        &[]
    } else {
        // SAFETY: forwarded from this function's contract.
        unsafe { std::slice::from_raw_parts(slice.ptr, slice.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> WebhookRequest {
        WebhookRequest {
            source: "acme".into(),
            method: "POST".into(),
            path: "/webhooks/acme".into(),
            query: "a=1&b".into(),
            headers: vec![
                Header {
                    name: "x-sig".into(),
                    value: "abc".into(),
                },
                Header {
                    name: "content-type".into(),
                    value: "application/json".into(),
                },
            ],
            body: b"{}".to_vec(),
            received_at: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            skip_verification: true,
            stage: Stage::Verify as i32,
        }
    }

    fn view_of<'a>(message: &'a WebhookRequest, headers: &'a [HeaderView]) -> RequestView {
        let received = message.received_at.unwrap_or_default();
        RequestView {
            source: ByteSlice::new(message.source.as_bytes()),
            method: ByteSlice::new(message.method.as_bytes()),
            path: ByteSlice::new(message.path.as_bytes()),
            query: ByteSlice::new(message.query.as_bytes()),
            headers: headers.as_ptr(),
            headers_len: headers.len(),
            body: ByteSlice::new(&message.body),
            received_at_seconds: received.seconds,
            received_at_nanos: received.nanos,
            stage: message.stage as u32,
            flags: REQUEST_HAS_RECEIVED_AT | REQUEST_SKIP_VERIFICATION,
        }
    }

    fn header_views(message: &WebhookRequest) -> Vec<HeaderView> {
        message
            .headers
            .iter()
            .map(|h| HeaderView {
                name: ByteSlice::new(h.name.as_bytes()),
                value: ByteSlice::new(h.value.as_bytes()),
            })
            .collect()
    }

    #[test]
    fn a_view_reads_like_the_message_it_shows() {
        let message = message();
        let headers = header_views(&message);
        let view = view_of(&message, &headers);
        // SAFETY: the view points into `message` and `headers`, alive and unchanged here.
        let from_view = unsafe { Request::from_view(&view) }.expect("valid view");
        let from_message = Request::new(&message);
        for request in [&from_view, &from_message] {
            assert_eq!(request.header("X-SIG"), Some("abc"));
            assert_eq!(request.header("missing"), None);
            assert_eq!(request.query_param("a"), Some("1"));
            assert_eq!(request.query_param("b"), Some(""));
            assert_eq!(request.body(), b"{}");
            assert_eq!(request.received_at().map(|t| t.nanos), Some(5));
            assert_eq!(request.stage(), Stage::Verify);
            assert!(request.skip_verification());
            assert_eq!(request.headers().count(), 2);
            assert_eq!(request.raw(), &message);
        }
    }

    #[test]
    fn a_view_with_invalid_text_or_stage_is_refused() {
        let message = message();
        let bad = [0xff_u8, 0xfe];
        let mut headers = header_views(&message);
        headers[0].value = ByteSlice::new(&bad);
        let view = view_of(&message, &headers);
        // SAFETY: as above.
        let error = unsafe { Request::from_view(&view) }.err();
        assert_eq!(error.as_deref(), Some("request header value is not UTF-8"));

        let headers = header_views(&message);
        let mut view = view_of(&message, &headers);
        view.stage = 9;
        view.flags = 0;
        // SAFETY: as above.
        let error = unsafe { Request::from_view(&view) }.err();
        assert_eq!(error.as_deref(), Some("unknown request stage 9"));
        view.stage = 0;
        // SAFETY: as above.
        let request = unsafe { Request::from_view(&view) }.expect("valid");
        assert_eq!(request.received_at(), None);
        assert!(!request.skip_verification());
    }
}
