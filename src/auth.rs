//! Who may call the gRPC services, and what each caller may do.
//!
//! Each consuming team gets a credential (`[[grpc.credentials]]`): a bearer token (stored in the config as is, or
//! as `sha256:<hex>` of the token, or read from a file or environment variable) with scopes:
//! the consumer names (prefixes) it may use, the sources and event types it may read, and
//! whether it may administer. The interceptor authenticates every call (constant-time
//! comparison of SHA-256 digests) and puts the caller's [`Principal`] in the request's
//! extensions; each RPC then checks the scope it needs.
//!
//! With no credentials configured every caller is an anonymous administrator: that is only
//! allowed when the gRPC listener is on loopback, or with the explicit `insecure` switch (see
//! [`crate::server`]).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Status};
use tributary_model::v1::Filter;

use crate::error::{ErrorCode, OpError};

/// `[[grpc.credentials]]`: one consuming team's token and scopes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// Who holds it, for logs and errors (not a secret).
    pub name: String,
    /// The token, or `sha256:<64 hex digits>` of it. Exactly one of `token`, `token_file`,
    /// `token_env` is given.
    pub token: Option<String>,
    /// A file holding the token (or its `sha256:` form); surrounding whitespace is ignored.
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the token (or its `sha256:` form).
    pub token_env: Option<String>,
    /// Durable consumer names it may use and acknowledge: exact names, or prefixes ending in
    /// `*` (`"billing-*"`). Empty: no durable consumers.
    #[serde(default)]
    pub consumers: Vec<String>,
    /// Sources it may read. Empty: every source.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Event types it may read: exact, or domain prefixes ending in `*` (`"consent.*"`).
    /// Empty: every type.
    #[serde(default)]
    pub types: Vec<String>,
    /// May call `Admin` and `Adapters` (dead letters with bodies, consumers of any team,
    /// reload), and so may also read everything and use any consumer name: the scopes above
    /// are ignored.
    #[serde(default)]
    pub admin: bool,
    /// May read personal data in the clear: raw webhook bodies (`GetRawWebhook`, the
    /// console's raw view) and dead letters' raw items unredacted. Separate from `admin`: an
    /// administrator without it gets PERMISSION_DENIED or the redacted form.
    #[serde(default)]
    pub personal_data: bool,
    /// `Subscribe` streams (and health watches do not count here) this credential may hold at
    /// once; default [`DEFAULT_MAX_SUBSCRIPTIONS`].
    #[serde(default)]
    pub max_subscriptions: Option<usize>,
    /// Durable consumers inside this credential's `consumers` scopes that may exist; default
    /// [`DEFAULT_MAX_CONSUMERS`] (for an admin credential: only `grpc.max_consumers`).
    #[serde(default)]
    pub max_consumers: Option<usize>,
    /// Entries (sources plus types) one subscription filter may have; default
    /// [`DEFAULT_MAX_FILTER_ENTRIES`]. Filtering costs entries x events x subscribers.
    #[serde(default)]
    pub max_filter_entries: Option<usize>,
}

/// Default `max_subscriptions` of a credential: a quarter of the default global cap, so one
/// team cannot take every subscription.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 256;
/// Default `max_consumers` of a non-admin credential.
pub const DEFAULT_MAX_CONSUMERS: usize = 32;
/// Default `max_filter_entries` of every caller.
pub const DEFAULT_MAX_FILTER_ENTRIES: usize = 64;

/// A credential's quotas, with its own count of open subscriptions.
#[derive(Debug, Clone)]
struct Quota {
    max_subscriptions: usize,
    subscriptions: Arc<Semaphore>,
    max_consumers: Option<usize>,
    max_filter_entries: usize,
}

impl Quota {
    fn of(config: Option<&CredentialConfig>) -> Self {
        let max_subscriptions =
            config
                .and_then(|c| c.max_subscriptions)
                .unwrap_or(if config.is_some() {
                    DEFAULT_MAX_SUBSCRIPTIONS
                } else {
                    Semaphore::MAX_PERMITS
                });
        let max_consumers = match config {
            Some(config) if config.max_consumers.is_some() => config.max_consumers,
            Some(config) if !config.admin => Some(DEFAULT_MAX_CONSUMERS),
            _ => None,
        };
        Quota {
            max_subscriptions,
            subscriptions: Arc::new(Semaphore::new(
                max_subscriptions.min(Semaphore::MAX_PERMITS),
            )),
            max_consumers,
            max_filter_entries: config
                .and_then(|c| c.max_filter_entries)
                .unwrap_or(DEFAULT_MAX_FILTER_ENTRIES),
        }
    }
}

/// An authenticated caller and its scopes.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The credential's name; empty for the anonymous administrator.
    pub name: String,
    consumers: Vec<String>,
    sources: Vec<String>,
    types: Vec<String>,
    admin: bool,
    personal_data: bool,
    quota: Quota,
}

impl Principal {
    /// The caller when no credentials are configured (loopback or explicitly insecure).
    fn anonymous_admin() -> Self {
        Principal {
            name: String::new(),
            consumers: vec!["*".to_owned()],
            sources: Vec::new(),
            types: Vec::new(),
            admin: true,
            personal_data: true,
            quota: Quota::of(None),
        }
    }

    /// Whether this caller may read personal data in the clear (`personal_data = true`).
    pub fn may_read_personal_data(&self) -> bool {
        self.personal_data
    }

    /// Refuses unless this caller may read personal data in the clear.
    pub fn require_personal_data(&self) -> Result<(), OpError> {
        if self.personal_data {
            Ok(())
        } else {
            Err(OpError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "credential `{}` has no personal_data scope (raw bodies)",
                    self.name
                ),
            ))
        }
    }

    /// One of this credential's subscriptions (`max_subscriptions`), held while the stream
    /// lives; RESOURCE_EXHAUSTED for this credential only when all are taken.
    pub fn take_subscription(&self) -> Result<OwnedSemaphorePermit, OpError> {
        Arc::clone(&self.quota.subscriptions)
            .try_acquire_owned()
            .map_err(|_| {
                OpError::new(
                    ErrorCode::ResourceExhausted,
                    format!(
                        "credential `{}` holds its {} subscriptions (max_subscriptions); \
                         close one or retry later",
                        self.name, self.quota.max_subscriptions
                    ),
                )
            })
    }

    /// Refuses a filter with more entries (sources plus types) than `max_filter_entries`.
    pub fn require_filter_size(&self, filter: &Filter) -> Result<(), OpError> {
        let entries = filter.sources.len() + filter.types.len();
        if entries > self.quota.max_filter_entries {
            return Err(OpError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "the filter has {entries} entries; credential `{}` may use {} \
                     (max_filter_entries)",
                    self.name, self.quota.max_filter_entries
                ),
            ));
        }
        Ok(())
    }

    /// Refuses one more durable consumer when `existing` (all consumers' names) holds this
    /// credential's `max_consumers` already: those inside its `consumers` scopes count.
    pub fn require_consumer_quota<'a>(
        &self,
        existing: impl Iterator<Item = &'a str>,
    ) -> Result<(), OpError> {
        let Some(max) = self.quota.max_consumers else {
            return Ok(());
        };
        let own = existing
            .filter(|name| self.consumers.iter().any(|scope| covers(scope, name)))
            .count();
        if own >= max {
            return Err(OpError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "credential `{}` has {own} durable consumers (max_consumers {max}); delete \
                     unused ones with `tributary consumers delete`",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// The principal of `request`, as the interceptor left it.
    pub fn of<T>(request: &Request<T>) -> Result<Arc<Principal>, OpError> {
        request
            .extensions()
            .get::<Arc<Principal>>()
            .cloned()
            .ok_or_else(|| {
                OpError::new(
                    ErrorCode::Unauthenticated,
                    "missing or invalid bearer token",
                )
            })
    }

    /// Whether this caller may administer (the web console admits only those).
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Refuses unless this caller may administer.
    pub fn require_admin(&self) -> Result<(), OpError> {
        if self.admin {
            Ok(())
        } else {
            Err(OpError::new(
                ErrorCode::PermissionDenied,
                format!("credential `{}` has no admin scope", self.name),
            ))
        }
    }

    /// Refuses unless this caller may use the durable consumer `name`.
    pub fn require_consumer(&self, name: &str) -> Result<(), OpError> {
        if self.consumers.iter().any(|scope| covers(scope, name)) {
            Ok(())
        } else {
            Err(OpError::new(
                ErrorCode::PermissionDenied,
                format!("credential `{}` may not use consumer `{name}`", self.name),
            ))
        }
    }

    /// Refuses a read filter that would deliver anything outside this caller's scopes. An
    /// empty filter means "everything", so a scoped caller must name what it reads.
    pub fn require_readable(&self, filter: &Filter) -> Result<(), OpError> {
        if !self.sources.is_empty() {
            if filter.sources.is_empty() {
                return Err(self.denied("sources", &self.sources));
            }
            if let Some(source) = filter.sources.iter().find(|s| !self.sources.contains(s)) {
                return Err(OpError::new(
                    ErrorCode::PermissionDenied,
                    format!("credential `{}` may not read source `{source}`", self.name),
                ));
            }
        }
        if !self.types.is_empty() {
            if filter.types.is_empty() {
                return Err(self.denied("types", &self.types));
            }
            if let Some(wanted) = filter
                .types
                .iter()
                .find(|wanted| !self.types.iter().any(|scope| covers(scope, wanted)))
            {
                return Err(OpError::new(
                    ErrorCode::PermissionDenied,
                    format!("credential `{}` may not read type `{wanted}`", self.name),
                ));
            }
        }
        Ok(())
    }

    fn denied(&self, what: &str, allowed: &[String]) -> OpError {
        OpError::new(
            ErrorCode::PermissionDenied,
            format!(
                "credential `{}` may read only these {what}: {}; name them in the filter",
                self.name,
                allowed.join(", ")
            ),
        )
    }
}

/// Whether `scope` (exact, or a prefix ending in `*`) covers `wanted` (itself exact or a
/// prefix pattern: `statement.*` covers `statement.created` and `statement.*`).
fn covers(scope: &str, wanted: &str) -> bool {
    match scope.strip_suffix('*') {
        Some(prefix) => wanted.starts_with(prefix),
        None => scope == wanted,
    }
}

/// A configured credential, ready to check tokens against.
#[derive(Debug)]
struct Credential {
    digest: [u8; 32],
    principal: Arc<Principal>,
}

/// Authenticates gRPC calls: `authorization: Bearer <token>`.
#[derive(Clone, Debug)]
pub struct Authenticator {
    credentials: Arc<Vec<Credential>>,
    anonymous: Arc<Principal>,
}

impl Authenticator {
    /// Resolves every credential's token (file, environment, hashed or plain). Refuses empty
    /// tokens, malformed digests, and two credentials with the same token or name.
    pub fn new(configs: &[CredentialConfig]) -> anyhow::Result<Self> {
        let mut credentials: Vec<Credential> = Vec::with_capacity(configs.len());
        for config in configs {
            let digest = token_digest(config)
                .with_context(|| format!("grpc.credentials `{}`", config.name))?;
            if config.name.trim().is_empty() {
                bail!("grpc.credentials: every credential needs a name");
            }
            if credentials
                .iter()
                .any(|c| c.principal.name == config.name || c.digest == digest)
            {
                bail!(
                    "grpc.credentials `{}`: the name or the token is used twice",
                    config.name
                );
            }
            let principal = if config.admin {
                Principal {
                    name: config.name.clone(),
                    personal_data: config.personal_data,
                    quota: Quota::of(Some(config)),
                    ..Principal::anonymous_admin()
                }
            } else {
                Principal {
                    name: config.name.clone(),
                    consumers: config.consumers.clone(),
                    sources: config.sources.clone(),
                    types: config.types.clone(),
                    admin: false,
                    personal_data: config.personal_data,
                    quota: Quota::of(Some(config)),
                }
            };
            credentials.push(Credential {
                digest,
                principal: Arc::new(principal),
            });
        }
        Ok(Self {
            credentials: Arc::new(credentials),
            anonymous: Arc::new(Principal::anonymous_admin()),
        })
    }

    /// Whether any credential is configured (otherwise every caller is an administrator).
    pub fn is_enforcing(&self) -> bool {
        !self.credentials.is_empty()
    }

    /// Whether some credential has the admin scope (the web console's login needs one).
    pub fn has_admin_credential(&self) -> bool {
        self.credentials.iter().any(|c| c.principal.admin)
    }

    /// The configured credential whose token is `token` (constant-time comparison, like the
    /// gRPC interceptor's); never the anonymous administrator: with no credentials configured
    /// no token is valid. For the web console's login.
    pub fn credential_for(&self, token: &str) -> Option<Arc<Principal>> {
        if self.credentials.is_empty() {
            return None;
        }
        self.authenticate(Some(token))
    }

    /// Whether an HTTP `Authorization` header value (`Bearer <token>`) names an administrator
    /// (with no credentials configured, every caller is one). For `/metrics` on a shared port.
    pub fn bearer_is_admin(&self, authorization: Option<&str>) -> bool {
        let presented = authorization.and_then(|value| value.strip_prefix("Bearer "));
        self.authenticate(presented)
            .is_some_and(|principal| principal.is_admin())
    }

    fn authenticate(&self, presented: Option<&str>) -> Option<Arc<Principal>> {
        if self.credentials.is_empty() {
            return Some(Arc::clone(&self.anonymous));
        }
        let digest: [u8; 32] = Sha256::digest(presented?.as_bytes()).into();
        // Every credential is compared, so the time taken does not say which one matched.
        let mut found = None;
        for credential in self.credentials.iter() {
            if bool::from(credential.digest.ct_eq(&digest)) {
                found = Some(Arc::clone(&credential.principal));
            }
        }
        found
    }
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let principal = self.authenticate(presented).ok_or_else(|| {
            OpError::new(
                ErrorCode::Unauthenticated,
                "missing or invalid bearer token",
            )
        })?;
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

/// An interceptor that authenticates, then requires the admin scope: for whole services that
/// only operators may call.
#[derive(Clone, Debug)]
pub struct AdminOnly(pub Authenticator);

impl tonic::service::Interceptor for AdminOnly {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let request = self.0.call(request)?;
        Principal::of(&request)?.require_admin()?;
        Ok(request)
    }
}

/// The SHA-256 of a credential's token, from wherever the config says it is.
fn token_digest(config: &CredentialConfig) -> anyhow::Result<[u8; 32]> {
    let value = match (&config.token, &config.token_file, &config.token_env) {
        (Some(token), None, None) => token.clone(),
        (None, Some(path), None) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read token_file {}", path.display()))?,
        (None, None, Some(variable)) => std::env::var(variable)
            .with_context(|| format!("environment variable {variable} is not set"))?,
        _ => bail!("give exactly one of token, token_file, token_env"),
    };
    let value = value.trim();
    if value.is_empty() {
        bail!("the token is empty");
    }
    if let Some(hex_digest) = value.strip_prefix("sha256:") {
        let bytes = hex::decode(hex_digest)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .context("sha256: must be followed by 64 hex digits")?;
        return Ok(bytes);
    }
    if value.len() < 16 {
        bail!("the token is shorter than 16 characters");
    }
    Ok(Sha256::digest(value.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(name: &str, token: &str) -> CredentialConfig {
        CredentialConfig {
            name: name.to_owned(),
            token: Some(token.to_owned()),
            token_file: None,
            token_env: None,
            consumers: vec!["billing-*".to_owned(), "audit".to_owned()],
            sources: vec!["arcadia".to_owned()],
            types: vec!["statement.*".to_owned(), "meter.created".to_owned()],
            admin: false,
            personal_data: false,
            max_subscriptions: None,
            max_consumers: None,
            max_filter_entries: None,
        }
    }

    #[test]
    fn tokens_plain_or_hashed_authenticate_their_own_principal() {
        let hashed = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(b"second-team-token-xyz"))
        );
        let auth = Authenticator::new(&[
            credential("billing", "billing-team-token-1"),
            credential("second", &hashed),
        ])
        .expect("valid");
        let found = |token| auth.authenticate(Some(token)).map(|p| p.name.clone());
        assert_eq!(found("billing-team-token-1").as_deref(), Some("billing"));
        assert_eq!(found("second-team-token-xyz").as_deref(), Some("second"));
        assert_eq!(found(hashed.as_str()), None, "the digest is not the token");
        assert_eq!(found("billing-team-token-2"), None);
        assert!(auth.authenticate(None).is_none());
    }

    #[test]
    fn empty_short_or_ambiguous_tokens_are_refused() {
        for bad in ["", "   ", "short", "sha256:abcd"] {
            let error = Authenticator::new(&[credential("team", bad)]).expect_err(bad);
            assert!(format!("{error:#}").contains("grpc.credentials `team`"));
        }
        let both = CredentialConfig {
            token_env: Some("X".into()),
            ..credential("team", "a-long-enough-token")
        };
        assert!(Authenticator::new(&[both]).is_err());
        let twice = [
            credential("a", "a-long-enough-token"),
            credential("b", "a-long-enough-token"),
        ];
        assert!(Authenticator::new(&twice).is_err());
    }

    #[test]
    fn scopes_cover_consumers_sources_and_types() {
        let auth = Authenticator::new(&[credential("billing", "billing-team-token-1")]).unwrap();
        let principal = auth.authenticate(Some("billing-team-token-1")).unwrap();
        assert!(principal.require_consumer("billing-invoices").is_ok());
        assert!(principal.require_consumer("audit").is_ok());
        assert!(principal.require_consumer("audit-2").is_err());
        assert!(principal.require_consumer("lending").is_err());
        assert!(principal.require_admin().is_err());

        let filter = |sources: &[&str], types: &[&str]| Filter {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            types: types.iter().map(|s| s.to_string()).collect(),
        };
        let ok = |f: Filter| principal.require_readable(&f).is_ok();
        assert!(ok(filter(&["arcadia"], &["statement.*"])));
        assert!(ok(filter(
            &["arcadia"],
            &["statement.created", "meter.created"]
        )));
        assert!(!ok(filter(&[], &["statement.*"])), "all sources");
        assert!(!ok(filter(&["arcadia"], &[])), "all types");
        assert!(!ok(filter(&["klavi"], &["statement.*"])));
        assert!(!ok(filter(&["arcadia"], &["meter.*"])));
        assert!(!ok(filter(&["arcadia"], &["*"])));
        let code = tonic::Status::from(
            principal
                .require_readable(&filter(&["klavi"], &["statement.*"]))
                .unwrap_err(),
        )
        .code();
        assert_eq!(code, tonic::Code::PermissionDenied);
    }

    #[test]
    fn without_credentials_everyone_is_an_administrator() {
        let auth = Authenticator::new(&[]).unwrap();
        assert!(!auth.is_enforcing());
        let principal = auth.authenticate(None).unwrap();
        assert!(principal.require_admin().is_ok());
        assert!(principal.require_consumer("anything").is_ok());
        assert!(principal.require_readable(&Filter::default()).is_ok());
        assert!(auth.credential_for("any-token-at-all-here").is_none());
        assert!(!auth.has_admin_credential());
    }

    #[test]
    fn the_console_login_finds_configured_credentials_only() {
        let admin = CredentialConfig {
            admin: true,
            ..credential("operators", "operators-token-123")
        };
        let auth = Authenticator::new(&[credential("billing", "billing-team-token-1"), admin])
            .expect("valid");
        assert!(auth.has_admin_credential());
        let found = auth.credential_for("operators-token-123").expect("admin");
        assert!(found.is_admin());
        let consumer = auth
            .credential_for("billing-team-token-1")
            .expect("consumer");
        assert!(!consumer.is_admin());
        assert!(auth.credential_for("operators-token-124").is_none());
    }

    #[test]
    fn quotas_are_per_credential_with_defaults() {
        let small = CredentialConfig {
            max_subscriptions: Some(1),
            max_consumers: Some(2),
            max_filter_entries: Some(3),
            ..credential("billing", "billing-team-token-1")
        };
        let auth = Authenticator::new(&[small, credential("other", "other-team-token-22")])
            .expect("valid");
        let billing = auth.authenticate(Some("billing-team-token-1")).unwrap();
        let other = auth.authenticate(Some("other-team-token-22")).unwrap();
        let held = billing.take_subscription().expect("first");
        assert!(billing.take_subscription().is_err());
        assert!(other.take_subscription().is_ok(), "another credential");
        drop(held);
        assert!(billing.take_subscription().is_ok());

        let names = ["billing-1", "lending-1", "audit", "billing-2"];
        assert!(
            billing
                .require_consumer_quota(names[..2].iter().copied())
                .is_ok()
        );
        assert!(
            billing
                .require_consumer_quota(names.iter().copied())
                .is_err()
        );

        let filter = |n: usize| Filter {
            sources: vec!["arcadia".to_owned(); n],
            types: Vec::new(),
        };
        assert!(billing.require_filter_size(&filter(3)).is_ok());
        assert!(billing.require_filter_size(&filter(4)).is_err());
        assert!(
            other
                .require_filter_size(&filter(DEFAULT_MAX_FILTER_ENTRIES))
                .is_ok()
        );
        assert!(
            other
                .require_filter_size(&filter(DEFAULT_MAX_FILTER_ENTRIES + 1))
                .is_err()
        );
        assert!(!billing.may_read_personal_data());
    }
}
