//! The rejection log: the last rejected webhooks of each source, in memory, so an operator
//! fixing a provider's signature setup sees why its requests were refused (console,
//! `tributary rejections list`).
//!
//! Bounded: `[http] rejections_kept` entries per configured source, plus one list shared by
//! every unknown source name (callers make those up). Never the body: its size and SHA-256.
//! Header values are kept only for headers that carry no secret ([`SHOWN_HEADERS`]); the others
//! appear by name with a redacted value.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use tributary_model::v1::{Header, RejectedWebhook};

use tributary_event_log::rules::timestamp;

/// The peer of an HTTP connection (address and port), set on each request by the accept
/// loop beside [`crate::server::http::ClientAddr`].
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The list that holds rejections of source names that are not configured.
pub const UNKNOWN_SOURCES: &str = "(unknown source)";

/// Headers whose values are shown: they describe the request and carry no credential.
pub const SHOWN_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "user-agent",
    "host",
    "accept",
    "traceparent",
    "x-forwarded-for",
    "x-request-id",
];

/// Most headers kept per rejection, and the longest value shown: the caller controls both.
const MAX_HEADERS: usize = 64;
const MAX_VALUE: usize = 256;
/// The longest reason kept (an adapter's message, or the requested source name).
const MAX_REASON: usize = 512;

/// The rejection log of one process.
#[derive(Debug)]
pub struct Rejections {
    per_source: usize,
    by_source: Mutex<HashMap<String, VecDeque<RejectedWebhook>>>,
}

impl Rejections {
    /// Keeps the last `per_source` rejections of each source (0: none).
    pub fn new(per_source: usize) -> Self {
        Self {
            per_source,
            by_source: Mutex::default(),
        }
    }

    /// Records a rejected request. `known` is false for a source name that is not configured:
    /// those share one list, so made-up names cannot grow the log.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        source: &str,
        known: bool,
        client: Option<SocketAddr>,
        status: u16,
        code: &str,
        reason: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) {
        if self.per_source == 0 {
            return;
        }
        let entry = RejectedWebhook {
            source: source.chars().take(MAX_REASON).collect(),
            received_at: Some(timestamp(SystemTime::now())),
            client_address: client.map(|c| c.to_string()).unwrap_or_default(),
            status: u32::from(status),
            code: code.to_owned(),
            reason: reason.chars().take(MAX_REASON).collect(),
            headers: redacted(headers),
            body_size: body.len() as u64,
            body_sha256: if body.is_empty() {
                String::new()
            } else {
                hex::encode(Sha256::digest(body))
            },
        };
        let key = if known { source } else { UNKNOWN_SOURCES };
        let mut by_source = match self.by_source.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let list = by_source.entry(key.to_owned()).or_default();
        if list.len() >= self.per_source {
            list.pop_front();
        }
        list.push_back(entry);
    }

    /// The kept rejections of `source` (every source when empty), newest first, at most
    /// `limit`.
    pub fn list(&self, source: &str, limit: usize) -> Vec<RejectedWebhook> {
        let by_source = match self.by_source.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out: Vec<RejectedWebhook> = by_source
            .iter()
            .filter(|(name, _)| source.is_empty() || name.as_str() == source)
            .flat_map(|(_, list)| list.iter().cloned())
            .collect();
        out.sort_by_key(|r| {
            std::cmp::Reverse(
                r.received_at
                    .as_ref()
                    .map(|t| (t.seconds, t.nanos))
                    .unwrap_or_default(),
            )
        });
        out.truncate(limit);
        out
    }
}

/// The request's headers as the log keeps them: values of [`SHOWN_HEADERS`] (cut to
/// [`MAX_VALUE`]), every other value redacted.
fn redacted(headers: &HeaderMap) -> Vec<Header> {
    headers
        .iter()
        .take(MAX_HEADERS)
        .map(|(name, value)| {
            let name = name.as_str().to_owned();
            let value = if SHOWN_HEADERS.contains(&name.as_str()) {
                String::from_utf8_lossy(value.as_bytes())
                    .chars()
                    .take(MAX_VALUE)
                    .collect()
            } else {
                "[redacted]".to_owned()
            };
            Header { name, value }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().expect("value"));
        headers.insert("x-arcadia-token", "secret-value".parse().expect("value"));
        headers
    }

    #[test]
    fn bounded_per_source_with_secrets_redacted_and_no_body() {
        let log = Rejections::new(2);
        for i in 0..3u8 {
            log.record(
                "arcadia",
                true,
                None,
                401,
                "unauthenticated",
                "bad token",
                &headers(),
                &[i],
            );
        }
        log.record(
            "made-up",
            false,
            None,
            404,
            "unknown_source",
            "no source",
            &headers(),
            b"",
        );
        let kept = log.list("arcadia", 10);
        assert_eq!(kept.len(), 2, "the oldest was dropped");
        assert_eq!(kept[0].body_sha256, hex::encode(Sha256::digest([2u8])));
        assert_eq!(kept[0].body_size, 1);
        assert_eq!(
            kept[0]
                .headers
                .iter()
                .map(|h| (h.name.as_str(), h.value.as_str()))
                .collect::<Vec<_>>(),
            [
                ("content-type", "application/json"),
                ("x-arcadia-token", "[redacted]")
            ]
        );
        let unknown = log.list(UNKNOWN_SOURCES, 10);
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].source, "made-up");
        assert_eq!(log.list("", 10).len(), 3);
        assert!(Rejections::new(0).list("", 10).is_empty());
    }
}
