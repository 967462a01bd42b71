//! One error taxonomy for every front end. Each failure the service reports is classified once
//! as an [`ErrorCode`], which decides the HTTP status, the gRPC code, the metric label, the
//! problem+json type and the console's answer together.
//!
//! Operations (admin, adapters, auth, replay, redrive) return domain errors that implement
//! [`ServiceError`], or an [`OpError`] carrying the code. Each edge converts once: the gRPC
//! services with `tonic::Status::from` (the status carries the code in its
//! [`ERROR_CODE_METADATA`] entry), the webhook endpoint with [`ErrorCode::problem`] and the web
//! console with [`ServiceError::http_answer`] (or [`ErrorCode::of_status`] for a status a gRPC
//! operation returned).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tributary_event_log::LogError;

/// The gRPC metadata entry (a trailer on error) naming a status's [`ErrorCode`] by its label,
/// so any client (and the console) reads the code the service chose, not a guess from the
/// gRPC code.
pub const ERROR_CODE_METADATA: &str = "tributary-error-code";

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
    /// The service is shutting down; retry against it (or another instance) later.
    ShuttingDown,
    /// A bug or an unexpected condition in the service.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 18] = [
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
        ErrorCode::ShuttingDown,
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
            ErrorCode::StorageUnavailable | ErrorCode::AdapterTimeout | ErrorCode::ShuttingDown => {
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
            ErrorCode::StorageUnavailable | ErrorCode::AdapterTimeout | ErrorCode::ShuttingDown => {
                tonic::Code::Unavailable
            }
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
            ErrorCode::ShuttingDown => "shutting_down",
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
            ErrorCode::ShuttingDown => "shutting down",
            ErrorCode::Internal => "internal error",
        }
    }

    /// The code named by `label`, as [`label`](Self::label) writes it.
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.label() == label)
    }

    /// The problem+json `type` of this code: a stable URN a client can match on.
    pub fn problem_type(self) -> String {
        format!("urn:tributary:error:{}", self.label())
    }

    /// An RFC 9457 problem+json response with this code's status and `detail`.
    pub fn problem(self, detail: &str) -> Response {
        let status = self.http_status();
        let body = serde_json::json!({
            "type": self.problem_type(),
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

    /// A gRPC status with this code and `message`, naming the code in
    /// [`ERROR_CODE_METADATA`].
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert(
            ERROR_CODE_METADATA,
            tonic::metadata::MetadataValue::from_static(self.label()),
        );
        tonic::Status::with_metadata(self.grpc_code(), message, metadata)
    }

    /// The code a status was made with ([`status`](Self::status)); `Internal` for a status
    /// the service did not classify (a transport failure, a panic in a handler).
    pub fn of_status(status: &tonic::Status) -> Self {
        status
            .metadata()
            .get(ERROR_CODE_METADATA)
            .and_then(|value| value.to_str().ok())
            .and_then(Self::from_label)
            .unwrap_or(ErrorCode::Internal)
    }
}

/// A failed operation: its code and the message the caller may see. What operations return
/// when no richer domain error fits; domain errors convert into it with `From`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OpError {
    code: ErrorCode,
    message: String,
}

impl OpError {
    /// A failure classified as `code`; `message` is shown to the caller as it is.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Any classified error, with its public message.
    pub fn of(error: &(impl ServiceError + ?Sized)) -> Self {
        Self::new(error.error_code(), error.public_message())
    }

    /// The message shown to the caller.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl ServiceError for OpError {
    fn error_code(&self) -> ErrorCode {
        self.code
    }

    fn public_message(&self) -> String {
        self.message.clone()
    }
}

/// The gRPC edge: the one conversion every service handler uses (`?` applies it).
impl From<OpError> for tonic::Status {
    fn from(error: OpError) -> Self {
        error.code.status(error.message)
    }
}

/// A status a gRPC operation returned, classified by the code it was made with: how the web
/// console answers a failure of an operation that speaks gRPC (the live tail's subscription).
impl ServiceError for tonic::Status {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::of_status(self)
    }

    fn public_message(&self) -> String {
        self.message().to_owned()
    }
}

impl From<LogError> for OpError {
    fn from(error: LogError) -> Self {
        Self::of(&error)
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

    /// As the web console answers it: this code's HTTP status and the public message.
    fn http_answer(&self) -> (StatusCode, String) {
        (self.error_code().http_status(), self.public_message())
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
                    | ErrorCode::ShuttingDown
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

    /// Every code as each surface shows it: HTTP status, gRPC code, metric label. The problem
    /// type and the console's answer follow from these; the test reads each surface through
    /// the conversion its edge uses.
    const SURFACES: [(ErrorCode, u16, tonic::Code, &str); 18] = [
        (
            ErrorCode::UnknownSource,
            404,
            tonic::Code::NotFound,
            "unknown_source",
        ),
        (
            ErrorCode::UnsupportedMediaType,
            415,
            tonic::Code::InvalidArgument,
            "unsupported_media_type",
        ),
        (
            ErrorCode::PayloadTooLarge,
            413,
            tonic::Code::ResourceExhausted,
            "payload_too_large",
        ),
        (
            ErrorCode::BadBody,
            400,
            tonic::Code::InvalidArgument,
            "bad_body",
        ),
        (
            ErrorCode::Unauthenticated,
            401,
            tonic::Code::Unauthenticated,
            "unauthenticated",
        ),
        (
            ErrorCode::Malformed,
            400,
            tonic::Code::InvalidArgument,
            "malformed",
        ),
        (
            ErrorCode::PermissionDenied,
            403,
            tonic::Code::PermissionDenied,
            "permission_denied",
        ),
        (
            ErrorCode::RateLimited,
            429,
            tonic::Code::ResourceExhausted,
            "rate_limited",
        ),
        (
            ErrorCode::ResourceExhausted,
            429,
            tonic::Code::ResourceExhausted,
            "resource_exhausted",
        ),
        (
            ErrorCode::AdapterTimeout,
            503,
            tonic::Code::Unavailable,
            "adapter_timeout",
        ),
        (
            ErrorCode::RequestTimeout,
            408,
            tonic::Code::DeadlineExceeded,
            "request_timeout",
        ),
        (
            ErrorCode::InvalidArgument,
            400,
            tonic::Code::InvalidArgument,
            "invalid_argument",
        ),
        (ErrorCode::NotFound, 404, tonic::Code::NotFound, "not_found"),
        (
            ErrorCode::OutOfRange,
            400,
            tonic::Code::OutOfRange,
            "out_of_range",
        ),
        (
            ErrorCode::AdapterFailed,
            500,
            tonic::Code::Internal,
            "adapter_failed",
        ),
        (
            ErrorCode::StorageUnavailable,
            503,
            tonic::Code::Unavailable,
            "storage_unavailable",
        ),
        (
            ErrorCode::ShuttingDown,
            503,
            tonic::Code::Unavailable,
            "shutting_down",
        ),
        (ErrorCode::Internal, 500, tonic::Code::Internal, "internal"),
    ];

    #[tokio::test]
    async fn every_code_maps_the_same_way_on_every_surface() {
        assert_eq!(
            SURFACES.map(|(code, ..)| code),
            ErrorCode::ALL,
            "the table names every code once, in order"
        );
        for (code, http, grpc, label) in SURFACES {
            let http = StatusCode::from_u16(http).expect("a valid status");
            let message = "what the caller is told";

            // The metric label.
            assert_eq!(code.label(), label);
            assert_eq!(ErrorCode::from_label(label), Some(code));

            // The webhook endpoint: problem+json.
            let response = code.problem(message);
            assert_eq!(response.status(), http, "{label}: problem status");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/problem+json"
            );
            let body = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .expect("problem body");
            let problem: serde_json::Value = serde_json::from_slice(&body).expect("problem json");
            assert_eq!(
                problem,
                serde_json::json!({
                    "type": format!("urn:tributary:error:{label}"),
                    "title": http.canonical_reason().expect("a reason"),
                    "status": http.as_u16(),
                    "detail": message,
                }),
                "{label}: problem body"
            );

            // The gRPC edge, and the code read back from the status as a client receives it.
            let status = tonic::Status::from(OpError::new(code, message));
            assert_eq!(status.code(), grpc, "{label}: gRPC code");
            assert_eq!(status.message(), message);
            let mut headers = axum::http::HeaderMap::new();
            status.add_header(&mut headers).expect("status headers");
            let received = tonic::Status::from_header_map(&headers).expect("a status");
            assert_eq!(received.code(), grpc);
            assert_eq!(
                ErrorCode::of_status(&received),
                code,
                "{label}: code read back"
            );

            // The web console: a domain error, and a status returned by a gRPC operation.
            assert_eq!(
                OpError::new(code, message).http_answer(),
                (http, message.to_owned()),
                "{label}: console answer"
            );
            assert_eq!(
                received.http_answer(),
                (http, message.to_owned()),
                "{label}: console answer to a status"
            );
        }
    }

    /// A status the service did not classify (a transport failure) is an internal error, never
    /// a guess from its gRPC code.
    #[test]
    fn an_unclassified_status_is_internal() {
        let status = tonic::Status::unauthenticated("from elsewhere");
        assert_eq!(ErrorCode::of_status(&status), ErrorCode::Internal);
        assert_eq!(
            status.http_answer(),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "from elsewhere".to_owned()
            )
        );
    }

    /// Operations convert domain errors with their own code and public message.
    #[test]
    fn domain_errors_keep_their_code() {
        let error = OpError::from(LogError::UnknownConsumer("billing".into()));
        assert_eq!(error.error_code(), ErrorCode::NotFound);
        assert_eq!(
            error.message(),
            LogError::UnknownConsumer("billing".into()).to_string()
        );
        let error = OpError::from(LogError::Invalid("bad".into()));
        assert_eq!(error.error_code(), ErrorCode::InvalidArgument);
    }

    #[test]
    fn labels_are_unique() {
        let mut labels: Vec<_> = ErrorCode::ALL.iter().map(|c| c.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ErrorCode::ALL.len());
    }
}
