//! One error taxonomy for every front end. Each failure the service reports is classified once
//! as an [`ErrorCode`], which decides the HTTP status, the gRPC code, the metric label and the
//! problem+json title together, so the four can never disagree.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tributary_event_log::LogError;

/// What went wrong, as a caller can act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No source (or other named resource) by that name.
    UnknownSource,
    /// The webhook's `Content-Type` is not on its source's `content_types` allow-list.
    UnsupportedMediaType,
    /// The body is over the configured limit.
    PayloadTooLarge,
    /// The body could not be read.
    BadBody,
    /// The webhook failed verification, or a gRPC call had no valid credential.
    Unauthenticated,
    /// Not the provider's envelope, or not JSON.
    Malformed,
    /// The caller's credential does not allow this.
    PermissionDenied,
    /// Too many requests from this source; retry after the `Retry-After` interval.
    RateLimited,
    /// A configured limit (subscriptions, durable consumers, connections) is reached.
    ResourceExhausted,
    /// The adapter took longer than its time budget; retrying later may succeed.
    AdapterTimeout,
    /// The request (reading its body included) took longer than the configured timeout.
    RequestTimeout,
    /// A request argument is invalid.
    InvalidArgument,
    /// The named consumer, dead letter or other resource does not exist.
    NotFound,
    /// The requested sequence was removed by retention.
    OutOfRange,
    /// The adapter failed or panicked; retrying later may succeed.
    AdapterFailed,
    /// The event log cannot write; retrying later may succeed.
    StorageUnavailable,
    /// A bug or an unexpected condition in the service.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::UnknownSource,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PayloadTooLarge,
        ErrorCode::BadBody,
        ErrorCode::Unauthenticated,
        ErrorCode::Malformed,
        ErrorCode::PermissionDenied,
        ErrorCode::RateLimited,
        ErrorCode::ResourceExhausted,
        ErrorCode::AdapterTimeout,
        ErrorCode::RequestTimeout,
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::OutOfRange,
        ErrorCode::AdapterFailed,
        ErrorCode::StorageUnavailable,
        ErrorCode::Internal,
    ];

    /// The HTTP status answered for it.
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorCode::UnknownSource | ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BadBody
            | ErrorCode::Malformed
            | ErrorCode::InvalidArgument
            | ErrorCode::OutOfRange => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::AdapterFailed | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::StorageUnavailable | ErrorCode::AdapterTimeout => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RateLimited | ErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The gRPC code answered for it.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::UnknownSource | ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::UnsupportedMediaType
            | ErrorCode::BadBody
            | ErrorCode::Malformed
            | ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::PayloadTooLarge => tonic::Code::ResourceExhausted,
            ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorCode::OutOfRange => tonic::Code::OutOfRange,
            ErrorCode::AdapterFailed | ErrorCode::Internal => tonic::Code::Internal,
            ErrorCode::StorageUnavailable | ErrorCode::AdapterTimeout => tonic::Code::Unavailable,
            ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorCode::RequestTimeout => tonic::Code::DeadlineExceeded,
            ErrorCode::RateLimited | ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
        }
    }

    /// The `reason` label of `tributary_webhooks_rejected_total` (and of logs).
    pub fn label(self) -> &'static str {
        match self {
            ErrorCode::UnknownSource => "unknown_source",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::BadBody => "bad_body",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Malformed => "malformed",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::AdapterTimeout => "adapter_timeout",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::OutOfRange => "out_of_range",
            ErrorCode::AdapterFailed => "adapter_failed",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// A fixed description for span statuses: never the caller's data.
    pub fn description(self) -> &'static str {
        match self {
            ErrorCode::UnknownSource => "unknown source",
            ErrorCode::UnsupportedMediaType => "unsupported media type",
            ErrorCode::PayloadTooLarge => "payload too large",
            ErrorCode::BadBody => "unreadable body",
            ErrorCode::Unauthenticated => "verification failed",
            ErrorCode::Malformed => "malformed payload",
            ErrorCode::PermissionDenied => "permission denied",
            ErrorCode::RateLimited => "rate limited",
            ErrorCode::ResourceExhausted => "limit reached",
            ErrorCode::AdapterTimeout => "adapter timed out",
            ErrorCode::RequestTimeout => "request timed out",
            ErrorCode::InvalidArgument => "invalid argument",
            ErrorCode::NotFound => "not found",
            ErrorCode::OutOfRange => "out of range",
            ErrorCode::AdapterFailed => "adapter failed",
            ErrorCode::StorageUnavailable => "the event log could not store the webhook",
            ErrorCode::Internal => "internal error",
        }
    }

    /// An RFC 9457 problem+json response with this code's status and `detail`.
    pub fn problem(self, detail: &str) -> Response {
        let status = self.http_status();
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }

    /// A gRPC status with this code and `message`.
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        tonic::Status::new(self.grpc_code(), message)
    }
}

/// An error that knows its [`ErrorCode`] and what may be told to the caller.
pub trait ServiceError: std::fmt::Display {
    /// Its classification.
    fn error_code(&self) -> ErrorCode;

    /// The message for the caller: never a secret, a verification reason or personal data.
    fn public_message(&self) -> String {
        self.to_string()
    }

    /// As a gRPC status.
    fn to_status(&self) -> tonic::Status {
        self.error_code().status(self.public_message())
    }
}

impl ServiceError for LogError {
    fn error_code(&self) -> ErrorCode {
        match self {
            LogError::Invalid(_) => ErrorCode::InvalidArgument,
            LogError::UnknownConsumer(_) | LogError::UnknownDeadLetter(_) => ErrorCode::NotFound,
            _ => ErrorCode::StorageUnavailable,
        }
    }

    fn public_message(&self) -> String {
        match self.error_code() {
            ErrorCode::StorageUnavailable => format!("event log: {self}"),
            _ => self.to_string(),
        }
    }
}

/// Maps a log error onto the gRPC status a client can act on.
pub fn log_status(error: LogError) -> tonic::Status {
    error.to_status()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's status table is the one a provider reads: it must match the taxonomy.
    #[test]
    fn readme_status_table_matches_the_taxonomy() {
        let readme = include_str!("../README.md");
        for code in ErrorCode::ALL {
            if matches!(
                code,
                ErrorCode::InvalidArgument
                    | ErrorCode::PermissionDenied
                    | ErrorCode::ResourceExhausted
                    | ErrorCode::NotFound
                    | ErrorCode::OutOfRange
                    | ErrorCode::Internal
            ) {
                continue; // gRPC-only or never answered to a webhook
            }
            let row = format!("| {} | `{}` |", code.http_status().as_u16(), code.label());
            assert!(
                readme.contains(&row),
                "README's webhook status table lacks the row starting `{row}`"
            );
        }
    }

    #[test]
    fn labels_are_unique() {
        let mut labels: Vec<_> = ErrorCode::ALL.iter().map(|c| c.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ErrorCode::ALL.len());
    }
}
