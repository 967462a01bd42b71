//! Administration: the `Admin` gRPC service (durable consumers, dead letters and their
//! redrive) and the `Adapters` service. The CLI and any other admin front end go through these.

pub mod adapters;
pub mod audited;
pub mod raw;
pub mod redact;
pub mod redrive;
pub mod rekey;
pub mod replay;

use std::pin::Pin;

use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tributary_model::v1::{
    Consumer, DeadLetter, DeleteConsumerRequest, DeleteConsumerResponse, GetRawWebhookRequest,
    ListAuditEntriesRequest, ListAuditEntriesResponse, ListConsumersRequest, ListConsumersResponse,
    ListDeadLettersRequest, ListDeadLettersResponse, ListRejectionsRequest, ListRejectionsResponse,
    RawWebhook, RedriveDeadLettersRequest, RedriveDeadLettersResponse, RedriveOutcome,
    RekeyArchiveRequest, RekeyArchiveResponse, ReplayProgress, ReplayRequest, ResetConsumerRequest,
    get_raw_webhook_request::Target, reset_consumer_request::Position,
};

use crate::app::App;
use crate::audit::Caller;
use crate::auth::Principal;
use crate::error::{ErrorCode, OpError};
use crate::proto::admin_server::Admin;
use redact::Redactor;

/// Dead letters returned (or redriven) per call at most.
const MAX_PAGE: usize = 1000;
/// Dead letters redriven per call by default.
const REDRIVE_PAGE: usize = 100;

/// The admin service, on the same sources and log as the rest.
#[derive(Clone)]
pub struct AdminService {
    app: App,
}

impl AdminService {
    /// Administers `app`'s log.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// The progress messages of one `Replay` call.
type ReplayStream = Pin<Box<dyn Stream<Item = Result<ReplayProgress, Status>> + Send>>;

#[tonic::async_trait]
impl Admin for AdminService {
    type ReplayStream = ReplayStream;

    async fn get_raw_webhook(
        &self,
        request: Request<GetRawWebhookRequest>,
    ) -> Result<Response<RawWebhook>, Status> {
        let caller = Caller::of(&request);
        let principal = Principal::of(&request)?;
        let target = request.into_inner().target;
        let described = match &target {
            Some(Target::Sequence(sequence)) => format!("sequence {sequence}"),
            Some(Target::EventId(id)) => format!("event {id}"),
            Some(Target::ArchiveId(id)) => format!("archive entry {id}"),
            None => String::new(),
        };
        let read = async {
            principal.require_personal_data()?;
            let target = target.ok_or_else(|| {
                OpError::new(
                    ErrorCode::InvalidArgument,
                    "give sequence, event_id or archive_id",
                )
            })?;
            Ok::<_, Status>(
                raw::raw_webhook(&self.app, target)
                    .await
                    .map_err(|error| OpError::of(&error))?,
            )
        };
        audited::personal_data_read(&self.app, &caller, "raw.read", described, read).await
    }

    async fn replay(
        &self,
        request: Request<ReplayRequest>,
    ) -> Result<Response<Self::ReplayStream>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let known: Result<(), Status> = match self.app.sources.get(&request.source) {
            Some(_) => Ok(()),
            None => Err(OpError::new(
                ErrorCode::NotFound,
                format!("no source named `{}`", request.source),
            )
            .into()),
        };
        self.app
            .audit
            .record_or_log(caller.record("replay", request.source.clone(), &known))
            .await;
        known?;
        let (progress, updates) = tokio::sync::mpsc::channel(16);
        let (out, stream) = tokio::sync::mpsc::channel(16);
        let app = self.app.clone();
        tokio::spawn(async move {
            let forward = async {
                let mut updates = updates;
                while let Some(update) = updates.recv().await {
                    if out.send(Ok(update)).await.is_err() {
                        break;
                    }
                }
            };
            let run = async {
                let result = replay::replay(&app, &request, &progress).await;
                drop(progress);
                result
            };
            let ((), result) = tokio::join!(forward, run);
            let last = result.map_err(|error| OpError::of(&error).into());
            let _ = out.send(last).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }

    async fn rekey_archive(
        &self,
        request: Request<RekeyArchiveRequest>,
    ) -> Result<Response<RekeyArchiveResponse>, Status> {
        let caller = Caller::of(&request);
        let principal = Principal::of(&request)?;
        let request = request.into_inner();
        let result: Result<RekeyArchiveResponse, Status> = async {
            // It decrypts every entry it re-seals.
            principal.require_personal_data()?;
            Ok(rekey::rekey(&self.app, &request)
                .await
                .map_err(|error| OpError::of(&error))?)
        }
        .await;
        let walked = if request.dead_letters {
            "dead letters"
        } else {
            "archive"
        };
        let target = match &result {
            Ok(done) => format!(
                "{walked} after {}: examined {}, rewritten {}, failed {}",
                request.after_id, done.examined, done.rewritten, done.failed
            ),
            Err(_) => format!("{walked} after {}", request.after_id),
        };
        self.app
            .audit
            .record_or_log(caller.record("archive.rekey", target, &result))
            .await;
        Ok(Response::new(result?))
    }

    async fn list_rejections(
        &self,
        request: Request<ListRejectionsRequest>,
    ) -> Result<Response<ListRejectionsResponse>, Status> {
        Ok(Response::new(self.rejections(&request.into_inner())))
    }

    async fn list_consumers(
        &self,
        _request: Request<ListConsumersRequest>,
    ) -> Result<Response<ListConsumersResponse>, Status> {
        Ok(Response::new(self.consumers().await?))
    }

    async fn reset_consumer(
        &self,
        request: Request<ResetConsumerRequest>,
    ) -> Result<Response<Consumer>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let name = request.name.clone();
        audited::action(
            &self.app,
            &caller,
            "consumer.reset",
            name,
            self.reset(request),
        )
        .await
    }

    async fn delete_consumer(
        &self,
        request: Request<DeleteConsumerRequest>,
    ) -> Result<Response<DeleteConsumerResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let name = request.name.clone();
        audited::action(
            &self.app,
            &caller,
            "consumer.delete",
            name,
            self.delete(request),
        )
        .await
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let caller = Caller::of(&request);
        let principal = Principal::of(&request)?;
        let request = request.into_inner();
        if !(request.include_raw && request.unredacted) {
            return Ok(Response::new(
                self.dead_letters_as(&principal, request).await?,
            ));
        }
        let target = format!("after id {}", request.after_id);
        let read = self.dead_letters_as(&principal, request);
        audited::personal_data_read(
            &self.app,
            &caller,
            "dead_letters.read_unredacted",
            target,
            read,
        )
        .await
    }

    async fn redrive_dead_letters(
        &self,
        request: Request<RedriveDeadLettersRequest>,
    ) -> Result<Response<RedriveDeadLettersResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let target = redrive_target(&request);
        let redrive = self.redrive_page(request);
        audited::action(&self.app, &caller, "dead_letters.redrive", target, redrive).await
    }

    async fn list_audit_entries(
        &self,
        request: Request<ListAuditEntriesRequest>,
    ) -> Result<Response<ListAuditEntriesResponse>, Status> {
        let request = request.into_inner();
        let limit = match request.limit {
            0 => 100,
            n => n as usize,
        };
        let entries = self
            .app
            .audit
            .list(request.after_id, limit)
            .await
            .map_err(|error| {
                tracing::error!(%error, "audit log not read");
                OpError::new(
                    ErrorCode::StorageUnavailable,
                    "the audit log cannot be read",
                )
            })?;
        Ok(Response::new(ListAuditEntriesResponse { entries }))
    }
}

/// The operations themselves, as plain calls: the gRPC handlers above and the web console
/// ([`crate::console`]) both go through these (callers have checked the admin scope).
impl AdminService {
    /// The last rejected webhooks kept in memory, newest first (`limit` 0: 100, at most 1,000).
    pub fn rejections(&self, request: &ListRejectionsRequest) -> ListRejectionsResponse {
        let limit = match request.limit {
            0 => 100,
            n => (n as usize).min(1000),
        };
        ListRejectionsResponse {
            rejections: self.app.rejections.list(&request.source, limit),
        }
    }

    /// Every durable consumer with its acknowledged sequence and lag.
    pub async fn consumers(&self) -> Result<ListConsumersResponse, OpError> {
        let consumers = tributary_event_log::filtered::consumers(self.app.log.as_ref()).await?;
        Ok(ListConsumersResponse { consumers })
    }

    /// Moves a consumer to after a sequence, or to just before a time.
    pub async fn reset(&self, request: ResetConsumerRequest) -> Result<Consumer, OpError> {
        let log = &self.app.log;
        let after = match request.position {
            Some(Position::AfterSequence(sequence)) => sequence,
            Some(Position::ToTime(time)) => log.sequence_before_time(time).await?,
            None => {
                return Err(OpError::new(
                    ErrorCode::InvalidArgument,
                    "give after_sequence or to_time",
                ));
            }
        };
        let consumer = log.reset_consumer(&request.name, after).await?;
        Ok(tributary_event_log::filtered::counted(log.as_ref(), consumer).await?)
    }

    /// Deletes a consumer; `deleted` is false when there was none.
    pub async fn delete(
        &self,
        request: DeleteConsumerRequest,
    ) -> Result<DeleteConsumerResponse, OpError> {
        let deleted = self.app.log.delete_consumer(&request.name).await?;
        Ok(DeleteConsumerResponse { deleted })
    }

    /// A page of dead letters as `principal` may see them: raw bodies only on request,
    /// redacted unless `unredacted` is asked by a credential with the personal_data scope.
    pub async fn dead_letters_as(
        &self,
        principal: &Principal,
        request: ListDeadLettersRequest,
    ) -> Result<ListDeadLettersResponse, OpError> {
        if request.include_raw && request.unredacted {
            principal.require_personal_data()?;
        }
        self.dead_letters(request).await
    }

    /// A page of dead letters, raw bodies redacted (and only on request; as received with
    /// `unredacted`, which [`Self::dead_letters_as`] allows only with the personal_data scope).
    pub async fn dead_letters(
        &self,
        request: ListDeadLettersRequest,
    ) -> Result<ListDeadLettersResponse, OpError> {
        let limit = match request.limit {
            0 => 100,
            n => (n as usize).min(MAX_PAGE),
        };
        let include_resolved = request.include_resolved;
        let (source, reason, raw_id) = (&request.source, &request.reason, request.raw_id);
        let mut dead_letters = self
            .scan(request.after_id, limit, |d| {
                (include_resolved || d.resolved_at.is_none())
                    && (source.is_empty() || &d.source == source)
                    && d.reason.contains(reason.as_str())
                    && (raw_id == 0 || d.raw_id == raw_id)
            })
            .await?;
        for letter in &mut dead_letters {
            self.present(letter, request.include_raw, request.unredacted);
        }
        dead_letters.truncate(limit);
        Ok(ListDeadLettersResponse { dead_letters })
    }

    /// Redrives the given unresolved dead letters, or one page of all of them (continue from
    /// `next_after_id` until it is 0).
    pub async fn redrive_page(
        &self,
        request: RedriveDeadLettersRequest,
    ) -> Result<RedriveDeadLettersResponse, OpError> {
        if request.ids.len() > MAX_PAGE {
            return Err(OpError::new(
                ErrorCode::InvalidArgument,
                format!("at most {MAX_PAGE} dead letter ids per call"),
            ));
        }
        // One page at a time: a redrive of "all" never holds every body in memory.
        let (letters, next_after_id) = if request.ids.is_empty() {
            let limit = match request.limit {
                0 => REDRIVE_PAGE,
                n => (n as usize).min(MAX_PAGE),
            };
            let letters = self
                .scan(request.after_id, limit, |d| d.resolved_at.is_none())
                .await?;
            let next = match letters.last() {
                Some(last) if letters.len() == limit => last.id,
                _ => 0,
            };
            (letters, next)
        } else {
            (self.unresolved(&request.ids).await?, 0)
        };
        let mut outcomes = Vec::with_capacity(letters.len());
        for letter in letters {
            outcomes.push(self.redrive(letter).await?);
        }
        Ok(RedriveDeadLettersResponse {
            outcomes,
            next_after_id,
        })
    }
}

impl AdminService {
    /// Dead letters after `after` that `keep` selects, oldest first, at most `limit`.
    async fn scan(
        &self,
        mut after: u64,
        limit: usize,
        keep: impl Fn(&DeadLetter) -> bool,
    ) -> Result<Vec<DeadLetter>, OpError> {
        let mut out = Vec::new();
        while out.len() < limit {
            let page = self.app.log.dead_letters(after, MAX_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            out.extend(page.into_iter().filter(|d| keep(d)));
        }
        out.truncate(limit);
        Ok(out)
    }

    /// The unresolved dead letters among `ids`.
    async fn unresolved(&self, ids: &[u64]) -> Result<Vec<DeadLetter>, OpError> {
        let out = self
            .scan(0, ids.len(), |d| {
                d.resolved_at.is_none() && ids.contains(&d.id)
            })
            .await?;
        if let Some(missing) = ids.iter().find(|id| !out.iter().any(|d| d.id == **id)) {
            return Err(OpError::new(
                ErrorCode::NotFound,
                format!("no unresolved dead letter {missing}"),
            ));
        }
        Ok(out)
    }

    async fn redrive(&self, letter: DeadLetter) -> Result<RedriveOutcome, OpError> {
        let id = letter.id;
        let result = redrive::redrive(&self.app, letter)
            .await
            .map_err(|error| OpError::of(&error))?;
        Ok(RedriveOutcome {
            id,
            resolved: result.resolved,
            sequences: result.sequences,
            reason: result.reason,
        })
    }
}

/// What a redrive targets, for the audit log: its ids, or the page after an id.
pub fn redrive_target(request: &RedriveDeadLettersRequest) -> String {
    if request.ids.is_empty() {
        format!("unresolved after id {}", request.after_id)
    } else {
        let ids: Vec<String> = request.ids.iter().map(u64::to_string).collect();
        format!("ids {}", ids.join(","))
    }
}

impl AdminService {
    /// A dead letter as shown to an operator: raw body only on request, redacted with what its
    /// adapter declares safe to show and as personal data.
    fn present(&self, letter: &mut DeadLetter, include_raw: bool, unredacted: bool) {
        let opened = match &self.app.archive {
            Some(archive) => archive.open_dead_letter(letter).is_ok(),
            None => letter.raw_key_id.is_empty(),
        };
        letter.raw = if include_raw && !opened {
            br#""[sealed: the archive key that sealed it is not configured]""#.to_vec()
        } else if include_raw && unredacted {
            std::mem::take(&mut letter.raw)
        } else if include_raw {
            let (personal, display) = self
                .app
                .sources
                .plugins()
                .iter()
                .find(|plugin| plugin.info().name == letter.adapter)
                .map(|plugin| {
                    let info = plugin.info();
                    (
                        info.personal_data_fields.clone(),
                        info.display_fields.clone(),
                    )
                })
                .unwrap_or_default();
            Redactor::new(&personal, &display).redact_json(&letter.raw)
        } else {
            Vec::new()
        };
    }
}
