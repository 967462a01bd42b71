//! Who may call the gRPC services: bearer tokens, compared in constant time.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// Checks `authorization: Bearer <token>` against the configured tokens in constant time.
#[derive(Clone)]
pub struct ConsumerAuth {
    tokens: Arc<Vec<String>>,
}

impl ConsumerAuth {
    /// Accepts any of `tokens`; with none, every call is let through.
    pub fn new(tokens: Vec<String>) -> Self {
        Self {
            tokens: Arc::new(tokens),
        }
    }
}

impl tonic::service::Interceptor for ConsumerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.tokens.is_empty() {
            return Ok(request);
        }
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let valid = self.tokens.iter().fold(false, |ok, token| {
            ok | bool::from(token.as_bytes().ct_eq(presented.as_bytes()))
        });
        if valid {
            Ok(request)
        } else {
            Err(Status::unauthenticated("missing or invalid bearer token"))
        }
    }
}
