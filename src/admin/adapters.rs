//! The `Adapters` gRPC service: the dry-run `Normalize`, `ListAdapters`, `ReloadAdapters` and
//! the shadow rollout of a candidate adapter (`StartShadow`, `GetShadow`, `PromoteShadow`,
//! `AbortShadow`; [`crate::sources::shadow`]).

use std::sync::Arc;
use std::time::SystemTime;

use tonic::{Request, Response, Status};
use tributary_model::v1::{
    AbortShadowRequest, GetShadowRequest, PromoteShadowRequest, ShadowStatus, StartShadowRequest,
};
use tributary_model::v1::{
    AdapterResult, ConfiguredSource, ListAdaptersRequest, ListAdaptersResponse, LoadedAdapter,
    NormalizeRequest, NormalizeResponse, Rejection, RejectionKind, ReloadAdaptersRequest,
    ReloadAdaptersResponse, WebhookRequest, adapter_result::Outcome,
};

use crate::app::{App, timestamp};
use crate::error::{ErrorCode, OpError};
use crate::ingest::{self, IngestError};
use crate::proto::adapters_server::Adapters;
use crate::sources::shadow::ShadowError;

/// Runs adapters without storing anything, and shows or reloads what is loaded.
#[derive(Clone)]
pub struct AdaptersService {
    app: App,
}

impl AdaptersService {
    /// Works on `app`'s sources.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl Adapters for AdaptersService {
    async fn normalize(
        &self,
        request: Request<NormalizeRequest>,
    ) -> Result<Response<NormalizeResponse>, Status> {
        let request = request.into_inner();
        let source = self
            .app
            .sources
            .for_dry_run(&request.source)
            .map_err(|message| OpError::new(ErrorCode::UnknownSource, message))?;
        let webhook = WebhookRequest {
            source: source.name.clone(),
            method: "POST".to_owned(),
            path: format!("/webhooks/{}", source.name),
            query: request.query,
            headers: request.headers,
            body: request.body,
            received_at: Some(timestamp(SystemTime::now())),
            skip_verification: request.skip_verification,
            ..WebhookRequest::default()
        };
        let outcome =
            match ingest::normalize(&source, &webhook, self.app.limits.adapter_timeout).await {
                Ok(normalized) => Outcome::Normalized(normalized),
                Err(IngestError::Unauthenticated(reason)) => Outcome::Rejection(Rejection {
                    kind: RejectionKind::Unauthenticated as i32,
                    reason,
                }),
                Err(IngestError::Malformed(reason)) => Outcome::Rejection(Rejection {
                    kind: RejectionKind::Malformed as i32,
                    reason,
                }),
                Err(error) => return Err(OpError::of(&error).into()),
            };
        Ok(Response::new(NormalizeResponse {
            result: Some(AdapterResult {
                outcome: Some(outcome),
                timings: None,
                verified_by: None,
            }),
        }))
    }

    async fn list_adapters(
        &self,
        _request: Request<ListAdaptersRequest>,
    ) -> Result<Response<ListAdaptersResponse>, Status> {
        Ok(Response::new(self.list()))
    }

    async fn reload_adapters(
        &self,
        request: Request<ReloadAdaptersRequest>,
    ) -> Result<Response<ReloadAdaptersResponse>, Status> {
        let caller = crate::audit::Caller::of(&request);
        super::audited::action(&self.app, &caller, "adapters.reload", "", self.reload()).await
    }

    async fn start_shadow(
        &self,
        request: Request<StartShadowRequest>,
    ) -> Result<Response<ShadowStatus>, Status> {
        let request = request.into_inner();
        Ok(Response::new(
            self.start_shadow(&request.source, &request.candidate)
                .await?,
        ))
    }

    async fn get_shadow(
        &self,
        request: Request<GetShadowRequest>,
    ) -> Result<Response<ShadowStatus>, Status> {
        let source = request.into_inner().source;
        Ok(Response::new(self.shadow(&source)?))
    }

    async fn promote_shadow(
        &self,
        request: Request<PromoteShadowRequest>,
    ) -> Result<Response<ShadowStatus>, Status> {
        let source = request.into_inner().source;
        Ok(Response::new(self.promote_shadow(&source).await?))
    }

    async fn abort_shadow(
        &self,
        request: Request<AbortShadowRequest>,
    ) -> Result<Response<ShadowStatus>, Status> {
        let source = request.into_inner().source;
        Ok(Response::new(self.abort_shadow(&source)?))
    }
}

/// The code of each refusal: what the caller can act on.
fn shadow_error(error: ShadowError) -> OpError {
    let code = match &error {
        ShadowError::UnknownSource(_) => ErrorCode::UnknownSource,
        ShadowError::NotRunning(_) | ShadowError::NoSuchVersion { .. } => ErrorCode::NotFound,
        ShadowError::AlreadyRunning(_)
        | ShadowError::OtherAdapter { .. }
        | ShadowError::Load(_)
        | ShadowError::Create(..) => ErrorCode::InvalidArgument,
    };
    OpError::new(code, error.to_string())
}

/// The operations themselves, as plain calls: the gRPC handlers above and the web console
/// ([`crate::console`]) both go through these (callers have checked the admin scope).
impl AdaptersService {
    /// The plugins serving now, the configured sources (with their start-up warnings) and the
    /// libraries that failed to load.
    pub fn list(&self) -> ListAdaptersResponse {
        let sources = &self.app.sources;
        let adapters = sources
            .plugins()
            .iter()
            .map(|plugin| LoadedAdapter {
                info: Some(plugin.info().clone()),
                abi_version: plugin.abi_version(),
                file: plugin.file().display().to_string(),
                sha256: plugin.sha256().to_owned(),
                loaded_at: Some(timestamp(plugin.loaded_at())),
                panics: plugin.panics(),
            })
            .collect();
        let load_failures = sources.load_failures();
        let configured = sources
            .all()
            .iter()
            .map(|source| ConfiguredSource {
                name: source.name.clone(),
                adapter: source.adapter.plugin().info().name.clone(),
                warnings: source.adapter.warnings().to_vec(),
                version: source.adapter.plugin().info().version.clone(),
                verification: source.adapter.instance_info().verification,
                secrets: source.adapter.instance_info().secrets.clone(),
            })
            .collect();
        ListAdaptersResponse {
            adapters,
            sources: configured,
            load_failures,
        }
    }

    /// Starts shadowing `source` with `candidate` (a library file or a version of its adapter
    /// in the plugin directory).
    pub async fn start_shadow(
        &self,
        source: &str,
        candidate: &str,
    ) -> Result<ShadowStatus, OpError> {
        let sources = Arc::clone(&self.app.sources);
        let (source, candidate) = (source.to_owned(), candidate.to_owned());
        let runtime = tokio::runtime::Handle::current();
        // Loading runs library initialisers and hashes files: keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            let _runtime = runtime.enter();
            sources.start_shadow(&source, &candidate)
        })
        .await
        .map_err(|e| OpError::new(ErrorCode::Internal, format!("shadow failed: {e}")))?
        .map_err(shadow_error)
    }

    /// The shadow of `source`: counts and the last differing webhooks.
    pub fn shadow(&self, source: &str) -> Result<ShadowStatus, OpError> {
        self.app.sources.shadow_status(source).map_err(shadow_error)
    }

    /// Every shadow running.
    pub fn shadows(&self) -> Vec<ShadowStatus> {
        self.app.sources.shadow_statuses()
    }

    /// Swaps the candidate in as `source`'s adapter and ends the shadow.
    pub async fn promote_shadow(&self, source: &str) -> Result<ShadowStatus, OpError> {
        let sources = Arc::clone(&self.app.sources);
        let source = source.to_owned();
        tokio::task::spawn_blocking(move || sources.promote_shadow(&source))
            .await
            .map_err(|e| OpError::new(ErrorCode::Internal, format!("promote failed: {e}")))?
            .map_err(shadow_error)
    }

    /// Drops the candidate shadowing `source`.
    pub fn abort_shadow(&self, source: &str) -> Result<ShadowStatus, OpError> {
        self.app.sources.abort_shadow(source).map_err(shadow_error)
    }

    /// Rescans the plugin directory and swaps in new or rebuilt libraries.
    pub async fn reload(&self) -> Result<ReloadAdaptersResponse, OpError> {
        let sources = Arc::clone(&self.app.sources);
        // Loading runs library initialisers and hashes files: keep it off the async workers.
        let report = tokio::task::spawn_blocking(move || sources.reload())
            .await
            .map_err(|e| OpError::new(ErrorCode::Internal, format!("reload failed: {e}")))?;
        Ok(ReloadAdaptersResponse {
            loaded: report.loaded,
            failed: report.failed,
            swapped: report.swapped,
        })
    }
}
